"""When a campaign runs: once at ``send_at`` or by a cron expression in the shop's time zone."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

from notifier import errors

_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")


def parse_cron(expression: str, zone: ZoneInfo) -> CronTrigger:
    """A standard five-field crontab expression (0 or 7 = Sunday) in ``zone``.

    APScheduler 3 numbers weekdays from Monday = 0, so numeric weekdays are
    spelled out as names before it sees them.
    """
    fields = expression.split()
    if len(fields) != 5:
        raise errors.InvalidInput("a crontab expression has five fields: m h dom mon dow", "cron")
    fields[4] = re.sub(r"\d+", _weekday_name, fields[4])
    try:
        return CronTrigger(
            minute=fields[0],
            hour=fields[1],
            day=fields[2],
            month=fields[3],
            day_of_week=fields[4],
            timezone=zone,
        )
    except (ValueError, IndexError) as exc:
        raise errors.InvalidInput(f"not a crontab expression: {exc}", "cron") from exc


def _weekday_name(match: re.Match[str]) -> str:
    number = int(match[0])
    if number > 7:
        raise errors.InvalidInput(f"no weekday {number} (0-7, 0 and 7 are Sunday)", "cron")
    return _WEEKDAYS[number]


def next_run(cron: str | None, after: datetime, zone: ZoneInfo) -> datetime | None:
    """The first cron fire time strictly after ``after``; None for a one-shot campaign."""
    if cron is None:
        return None
    fire: datetime | None = parse_cron(cron, zone).get_next_fire_time(
        None, after + timedelta(microseconds=1)
    )
    return fire
