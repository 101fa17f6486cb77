"""When a keyring is due for rotation (pure): ``spec.secretRotation.intervalMinutes`` of key age,
or a cron ``schedule``, which wins when set.

The cron dialect is the classic five fields, evaluated in UTC::

    minute        0-59
    hour          0-23
    day of month  1-31
    month         1-12 or jan-dec
    day of week   0-7 or sun-sat (0 and 7 are Sunday)

Each field is ``*`` or a comma-separated list of ``N``, ``N-M``, ``*/S``, ``N-M/S`` or ``N/S``
(from N to the field's end, every S). As in cron, when both day fields are restricted (neither
starts with ``*``) a day matches if either does. Not supported, and refused with a message rather
than ignored: ``@daily``-style macros (the CRD requires five fields anyway), ``?``, ``L``, ``W``
and ``#``, seconds or year fields, and time zones.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

UTC = datetime.UTC
MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
# Long enough for any satisfiable expression: February 29th on a given weekday recurs within 28
# years, so a schedule with no match in that span never fires.
SEARCH_DAYS = 366 * 29
_ITEM = re.compile(r"^(?P<range>\*|[a-z0-9]+(?:-[a-z0-9]+)?)(?:/(?P<step>[0-9]+))?$")


class ScheduleError(ValueError):
    """The rotation schedule cannot be used; the message says why."""


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()
    names_from: int = 0


_FIELDS = (
    _Field("minute", 0, 59),
    _Field("hour", 0, 23),
    _Field("day of month", 1, 31),
    _Field("month", 1, 12, MONTH_NAMES, 1),
    _Field("day of week", 0, 7, DAY_NAMES, 0),
)


def _number(text: str, spec: _Field) -> int:
    if text.isdigit():
        value = int(text)
    elif text in spec.names:
        value = spec.names.index(text) + spec.names_from
    else:
        raise ScheduleError(f"{spec.name}: {text!r} is not a number or a name")
    if not spec.low <= value <= spec.high:
        raise ScheduleError(f"{spec.name}: {value} is outside {spec.low}-{spec.high}")
    return value


def _parse_field(text: str, spec: _Field) -> frozenset[int]:
    values: set[int] = set()
    for item in text.lower().split(","):
        found = _ITEM.match(item)
        if not found:
            raise ScheduleError(f"{spec.name}: {item!r} is not N, N-M, */S, N-M/S or N/S")
        step = int(found["step"]) if found["step"] is not None else 1
        if step < 1:
            raise ScheduleError(f"{spec.name}: the step in {item!r} must be at least 1")
        part = found["range"]
        if part == "*":
            low, high = spec.low, spec.high
        elif "-" in part:
            first, last = part.split("-")
            low, high = _number(first, spec), _number(last, spec)
            if low > high:
                raise ScheduleError(f"{spec.name}: the range {item!r} runs backwards")
        else:
            low = _number(part, spec)
            high = spec.high if found["step"] is not None else low
        values.update(range(low, high + 1, step))
    return frozenset(values)


@dataclass(frozen=True)
class CronSchedule:
    expression: str
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    """0 is Sunday (a 7 in the expression is folded into 0)."""
    days_restricted: bool
    weekdays_restricted: bool

    @classmethod
    def parse(cls, expression: str) -> CronSchedule:
        fields = expression.split()
        if len(fields) != 5:
            raise ScheduleError(
                f"schedule {expression!r} must have 5 fields "
                "(minute hour day-of-month month day-of-week), not "
                f"{len(fields)}"
            )
        try:
            minutes, hours, days, months, weekdays = (
                _parse_field(text, spec) for text, spec in zip(fields, _FIELDS, strict=True)
            )
        except ScheduleError as exc:
            raise ScheduleError(f"schedule {expression!r}: {exc}") from None
        schedule = cls(
            expression=" ".join(fields),
            minutes=tuple(sorted(minutes)),
            hours=tuple(sorted(hours)),
            days=days,
            months=months,
            weekdays=frozenset(day % 7 for day in weekdays),
            days_restricted=not fields[2].startswith("*"),
            weekdays_restricted=not fields[4].startswith("*"),
        )
        if schedule._next_day(datetime.date(2000, 1, 1)) is None:
            raise ScheduleError(f"schedule {expression!r} never matches a date")
        return schedule

    def _day_matches(self, day: datetime.date) -> bool:
        if day.month not in self.months:
            return False
        in_month = day.day in self.days
        in_week = (day.weekday() + 1) % 7 in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return in_month or in_week
        return in_month and in_week

    def _next_day(self, start: datetime.date) -> datetime.date | None:
        day = start
        for _ in range(SEARCH_DAYS):
            if self._day_matches(day):
                return day
            day += datetime.timedelta(days=1)
        return None

    def next_after(self, moment: float) -> float:
        """The first minute the schedule names strictly after ``moment`` (a Unix time)."""
        start = datetime.datetime.fromtimestamp(moment, UTC).replace(
            second=0, microsecond=0
        ) + datetime.timedelta(minutes=1)
        day: datetime.date | None = start.date()
        while day is not None:
            day = self._next_day(day)
            if day is None:
                break
            today = day == start.date()
            for hour in self.hours:
                if today and hour < start.hour:
                    continue
                for minute in self.minutes:
                    if today and hour == start.hour and minute < start.minute:
                        continue
                    at = datetime.datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)
                    return at.timestamp()
            day += datetime.timedelta(days=1)
        raise ScheduleError(f"schedule {self.expression!r} has no time after {moment}")


@dataclass(frozen=True)
class RotationSchedule:
    """A ring is due once ``next_rotation(since)`` has passed, ``since`` being when its active
    key was made."""

    interval_seconds: float
    cron: CronSchedule | None = None

    @classmethod
    def from_spec(cls, rotation: Mapping[str, Any]) -> RotationSchedule:
        """From ``spec.secretRotation`` (the CRD's defaults applied, or not)."""
        minutes = rotation.get("intervalMinutes", 1440)
        if not isinstance(minutes, int | float) or isinstance(minutes, bool) or minutes <= 0:
            raise ScheduleError(f"intervalMinutes must be a positive number, not {minutes!r}")
        expression = rotation.get("schedule")
        cron = CronSchedule.parse(str(expression)) if expression else None
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
