"""The rotation schedule (pure): key age in minutes, or a five-field cron expression in UTC."""

from __future__ import annotations

import calendar
import time

import pytest
from checkout_operator.schedule import CronSchedule, RotationSchedule, ScheduleError
from checkout_operator.spec import SecretRotationSpec, decode_spec


def at(stamp: str) -> float:
    """``2026-11-25 21:07`` as a Unix time (UTC)."""
    return float(calendar.timegm(time.strptime(stamp, "%Y-%m-%d %H:%M")))


def stamp(moment: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M %a", time.gmtime(moment))


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("* * * * *", "2026-11-25 21:07", "2026-11-25 21:08 Wed"),
        ("0 3 * * *", "2026-11-25 21:07", "2026-11-26 03:00 Thu"),
        ("0 3 * * *", "2026-11-26 02:59", "2026-11-26 03:00 Thu"),
        ("0 3 * * *", "2026-11-26 03:00", "2026-11-27 03:00 Fri"),
        ("*/15 * * * *", "2026-11-25 21:07", "2026-11-25 21:15 Wed"),
        ("5,35 9-10 * * *", "2026-11-25 10:36", "2026-11-26 09:05 Thu"),
        ("0 0 1 * *", "2026-11-25 21:07", "2026-12-01 00:00 Tue"),
        ("0 0 1 jan *", "2026-11-25 21:07", "2027-01-01 00:00 Fri"),
        ("30 4 * * sun", "2026-11-25 21:07", "2026-11-29 04:30 Sun"),
        ("30 4 * * 7", "2026-11-25 21:07", "2026-11-29 04:30 Sun"),
        ("0 12 * * mon-fri", "2026-11-27 12:00", "2026-11-30 12:00 Mon"),
        # Both day fields restricted: either one matching is enough, as in cron.
        ("0 0 13 * fri", "2026-11-25 21:07", "2026-11-27 00:00 Fri"),
        ("0 0 29 2 *", "2026-11-25 21:07", "2028-02-29 00:00 Tue"),
        ("0 6/8 * * *", "2026-11-25 21:07", "2026-11-25 22:00 Wed"),
        ("0 0 * * 1-5/2", "2026-11-25 21:07", "2026-11-27 00:00 Fri"),
        # croniter's additions: the month's last day, the n-th weekday, ? as *.
        ("0 0 L * *", "2026-11-25 21:07", "2026-11-30 00:00 Mon"),
        ("0 0 * * fri#2", "2026-11-25 21:07", "2026-12-11 00:00 Fri"),
        ("0 0 ? * *", "2026-11-25 21:07", "2026-11-26 00:00 Thu"),
    ],
)
def test_the_next_time_a_cron_expression_names(expression: str, after: str, expected: str) -> None:
    assert stamp(CronSchedule.parse(expression).next_after(at(after) + 30)) == expected


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("61 * * * *", "schedule '61 * * * *': .*out of range"),
        ("* 24 * * *", "out of range"),
        ("* * 0 * *", "out of range"),
        ("* * * 13 *", "out of range"),
        ("* * * * 8", "out of range"),
        ("* * * foo *", "schedule '* * * foo *': .*not acceptable"),
        ("*/0 * * * *", "step '0'"),
        ("@daily", "must have 5 fields"),
        ("0 0 * * * 2026", "must have 5 fields"),
        ("0 0 30 feb *", "never matches a date"),
    ],
)
def test_what_cron_cannot_mean_is_refused_with_a_reason(expression: str, message: str) -> None:
    with pytest.raises(ScheduleError, match=message.replace("*", r"\*").replace(r".\*", ".*")):
        CronSchedule.parse(expression)


def rotation(section: dict[str, object]) -> SecretRotationSpec:
    return decode_spec({"secretRotation": section}).secret_rotation


def test_a_schedule_is_key_age_unless_a_cron_expression_is_given() -> None:
    made = at("2026-11-25 21:07")
    by_age = RotationSchedule.from_spec(rotation({"intervalMinutes": 1440}))
    assert by_age.next_rotation(made) == made + 86400
    assert by_age.describe() == "every 1440 minutes of key age"
    assert RotationSchedule.from_spec(rotation({})).next_rotation(made) == made + 86400

    by_cron = RotationSchedule.from_spec(rotation({"intervalMinutes": 5, "schedule": "0 3 * * *"}))
    assert stamp(by_cron.next_rotation(made)) == "2026-11-26 03:00 Thu"
    assert by_cron.describe() == "cron 0 3 * * * (UTC)"

    with pytest.raises(ScheduleError, match="intervalMinutes"):
        RotationSchedule.from_spec(rotation({"intervalMinutes": 0}))
