"""When a keyring is due for rotation (pure): ``spec.secretRotation.intervalMinutes`` of key age,
or a cron ``schedule``, which wins when set.

The cron dialect is croniter's (https://github.com/pallets-eco/croniter), five fields, in UTC::

    minute        0-59
    hour          0-23
    day of month  1-31, or L (the month's last day)
    month         1-12 or jan-dec
    day of week   0-7 or sun-sat (0 and 7 are Sunday), or e.g. fri#2 (the second Friday)

with lists, ranges (a range that runs backwards wraps around), ``*/S`` and ``N-M/S`` steps, and
``?`` as ``*``. As in cron, when both day fields are restricted a day matches if either does.
Refused with a message rather than ignored: another number of fields (``@daily``-style macros,
seconds or year fields), values out of range, a step of 0, and an expression that never names a
date (``0 0 30 feb *``).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from croniter import CroniterBadDateError, CroniterError, croniter

from .spec import SecretRotationSpec

UTC = datetime.UTC
# Where a new expression is first tried, to refuse one that never names a date.
_PROBE_START = datetime.datetime(2000, 1, 1, tzinfo=UTC)


class ScheduleError(ValueError):
    """The rotation schedule cannot be used; the message says why."""


@dataclass(frozen=True)
class CronSchedule:
    expression: str

    @classmethod
    def parse(cls, expression: str) -> CronSchedule:
        fields = expression.split()
        if len(fields) != 5:
            raise ScheduleError(
                f"schedule {expression!r} must have 5 fields "
                "(minute hour day-of-month month day-of-week), not "
                f"{len(fields)}"
            )
        schedule = cls(" ".join(fields))
        try:
            croniter(schedule.expression, _PROBE_START).get_next(float)
        except CroniterBadDateError:
            raise ScheduleError(f"schedule {expression!r} never matches a date") from None
        except (CroniterError, ValueError) as exc:
            raise ScheduleError(f"schedule {expression!r}: {exc}") from None
        return schedule

    def next_after(self, moment: float) -> float:
        """The first minute the schedule names strictly after ``moment`` (a Unix time)."""
        start = datetime.datetime.fromtimestamp(moment, UTC)
        try:
            return float(croniter(self.expression, start).get_next(float))
        except CroniterError as exc:
            raise ScheduleError(f"schedule {self.expression!r} has no time after {moment}") from exc


@dataclass(frozen=True)
class RotationSchedule:
    """A ring is due once ``next_rotation(since)`` has passed, ``since`` being when its active
    key was made."""

    interval_seconds: float
    cron: CronSchedule | None = None

    @classmethod
    def from_spec(cls, rotation: SecretRotationSpec) -> RotationSchedule:
        """From ``spec.secretRotation``."""
        minutes = rotation.interval_minutes
        if minutes <= 0:
            raise ScheduleError(f"intervalMinutes must be a positive number, not {minutes!r}")
        expression = rotation.schedule
        cron = CronSchedule.parse(expression) if expression else None
        return cls(interval_seconds=float(minutes) * 60.0, cron=cron)

    def next_rotation(self, since: float) -> float:
        if self.cron is not None:
            return self.cron.next_after(since)
        return since + self.interval_seconds

    def describe(self) -> str:
        if self.cron is not None:
            return f"cron {self.cron.expression} (UTC)"
        minutes = self.interval_seconds / 60.0
        return f"every {minutes:g} minutes of key age"
