"""When mail may go out: the send window and the review cap. Pure functions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from notifier.settings import SendWindow


def next_opening(moment: datetime, window: SendWindow, zone: ZoneInfo) -> datetime:
    """The first instant at or after ``moment`` that lies inside the local send window.

    Computed in local time so the window follows daylight saving; the result
    keeps ``moment``'s time zone.
    """
    if window.always:
        return moment
    local = moment.astimezone(zone)
    opens = local.replace(
        hour=window.start.hour, minute=window.start.minute, second=0, microsecond=0
    )
    if window.end is None:
        closes = (local + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    else:
        closes = local.replace(
            hour=window.end.hour, minute=window.end.minute, second=0, microsecond=0
        )
    if local < opens:
        return _in_zone(opens, zone).astimezone(moment.tzinfo)
    if local < closes:
        return moment
    tomorrow = (local + timedelta(days=1)).replace(
        hour=window.start.hour, minute=window.start.minute, second=0, microsecond=0
    )
    return _in_zone(tomorrow, zone).astimezone(moment.tzinfo)


def _in_zone(wall: datetime, zone: ZoneInfo) -> datetime:
    """Re-attach ``zone`` to a wall-clock time so its UTC offset is the one valid on that day."""
    return wall.replace(tzinfo=None).replace(tzinfo=zone)


def review_cap_allows(last_pair_at: datetime | None, new_pair_at: datetime, cap_days: int) -> bool:
    """A new review pair is allowed when the last one lies ``cap_days`` or more before it."""
    if cap_days == 0 or last_pair_at is None:
        return True
    # In UTC: two datetimes of one ZoneInfo subtract as wall-clock time, an hour off across DST.
    return abs(new_pair_at.astimezone(UTC) - last_pair_at.astimezone(UTC)) >= timedelta(
        days=cap_days
    )
