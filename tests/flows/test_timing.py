"""The send window and the review cap as tables, across daylight-saving days in Amsterdam."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from notifier.flows import timing
from notifier.settings import SendWindow

AMS = ZoneInfo("Europe/Amsterdam")
DAY = SendWindow.parse("09:00-20:00")


def ams(
    year: int, month: int, day: int, hour: int, minute: int, second: int = 0, us: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, us, tzinfo=AMS)


def utc(year: int, month: int, day: int, hour: int, minute: int) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def instant(moment: datetime) -> datetime:
    """The moment in UTC: aware datetimes in a DST gap or fold never compare equal across zones."""
    return moment.astimezone(UTC)


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        pytest.param(ams(2026, 11, 23, 0, 0), ams(2026, 11, 23, 9, 0), id="midnight"),
        pytest.param(ams(2026, 11, 23, 8, 0), ams(2026, 11, 23, 9, 0), id="before"),
        pytest.param(
            ams(2026, 11, 23, 8, 59, 59, 999999), ams(2026, 11, 23, 9, 0), id="just-before"
        ),
        pytest.param(ams(2026, 11, 23, 9, 0), ams(2026, 11, 23, 9, 0), id="at-open"),
        pytest.param(ams(2026, 11, 23, 9, 0, 1), ams(2026, 11, 23, 9, 0, 1), id="just-after-open"),
        pytest.param(ams(2026, 11, 23, 14, 37, 12), ams(2026, 11, 23, 14, 37, 12), id="inside"),
        pytest.param(
            ams(2026, 11, 23, 19, 59, 59, 999999),
            ams(2026, 11, 23, 19, 59, 59, 999999),
            id="just-before-close",
        ),
        pytest.param(ams(2026, 11, 23, 20, 0), ams(2026, 11, 24, 9, 0), id="at-close"),
        pytest.param(ams(2026, 11, 23, 22, 15), ams(2026, 11, 24, 9, 0), id="after"),
        pytest.param(ams(2026, 11, 23, 23, 59, 59), ams(2026, 11, 24, 9, 0), id="last-second"),
        pytest.param(ams(2026, 11, 29, 21, 0), ams(2026, 11, 30, 9, 0), id="sunday-evening"),
        pytest.param(ams(2026, 12, 31, 21, 0), ams(2027, 1, 1, 9, 0), id="new-year"),
        pytest.param(ams(2028, 2, 28, 20, 30), ams(2028, 2, 29, 9, 0), id="leap-day"),
    ],
)
def test_next_opening_of_a_nine_to_eight_window(moment: datetime, expected: datetime) -> None:
    opening = timing.next_opening(moment, DAY, AMS)
    assert instant(opening) == instant(expected)
    assert opening.astimezone(AMS).replace(tzinfo=None) == expected.replace(tzinfo=None)


# 2026-03-29: 02:00 CET becomes 03:00 CEST. 2026-10-25: 03:00 CEST becomes 02:00 CET.
@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        pytest.param(utc(2026, 3, 28, 20, 0), utc(2026, 3, 29, 7, 0), id="spring-eve-after-close"),
        pytest.param(utc(2026, 3, 29, 0, 30), utc(2026, 3, 29, 7, 0), id="spring-before-gap"),
        pytest.param(utc(2026, 3, 29, 1, 30), utc(2026, 3, 29, 7, 0), id="spring-after-gap"),
        pytest.param(utc(2026, 3, 29, 6, 59), utc(2026, 3, 29, 7, 0), id="spring-08:59-cest"),
        pytest.param(utc(2026, 3, 29, 7, 0), utc(2026, 3, 29, 7, 0), id="spring-at-open"),
        pytest.param(utc(2026, 3, 29, 17, 59), utc(2026, 3, 29, 17, 59), id="spring-19:59-cest"),
        pytest.param(utc(2026, 3, 29, 18, 0), utc(2026, 3, 30, 7, 0), id="spring-at-close"),
        pytest.param(utc(2026, 10, 24, 19, 0), utc(2026, 10, 25, 8, 0), id="fall-eve-after-close"),
        pytest.param(utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 8, 0), id="fall-first-02:30"),
        pytest.param(utc(2026, 10, 25, 1, 30), utc(2026, 10, 25, 8, 0), id="fall-second-02:30"),
        pytest.param(utc(2026, 10, 25, 7, 30), utc(2026, 10, 25, 8, 0), id="fall-08:30-cet"),
        pytest.param(utc(2026, 10, 25, 8, 0), utc(2026, 10, 25, 8, 0), id="fall-at-open"),
        pytest.param(utc(2026, 10, 25, 18, 59), utc(2026, 10, 25, 18, 59), id="fall-19:59-cet"),
        pytest.param(utc(2026, 10, 25, 19, 0), utc(2026, 10, 26, 8, 0), id="fall-at-close"),
    ],
)
def test_the_window_follows_daylight_saving(moment: datetime, expected: datetime) -> None:
    opening = timing.next_opening(moment, DAY, AMS)
    assert opening == expected
    assert opening.tzinfo is UTC  # the answer keeps the moment's zone


def test_the_answer_keeps_the_zone_of_the_moment() -> None:
    local = timing.next_opening(ams(2026, 11, 23, 22, 0), DAY, AMS)
    assert local.tzinfo is AMS and local.hour == 9


@pytest.mark.parametrize(
    ("window", "moment", "expected"),
    [
        ("08:30-17:45", ams(2026, 11, 23, 8, 29), ams(2026, 11, 23, 8, 30)),
        ("08:30-17:45", ams(2026, 11, 23, 8, 30), ams(2026, 11, 23, 8, 30)),
        ("08:30-17:45", ams(2026, 11, 23, 12, 0), ams(2026, 11, 23, 12, 0)),
        ("08:30-17:45", ams(2026, 11, 23, 17, 44, 59), ams(2026, 11, 23, 17, 44, 59)),
        ("08:30-17:45", ams(2026, 11, 23, 17, 45), ams(2026, 11, 24, 8, 30)),
        ("08:30-17:45", ams(2026, 3, 28, 18, 0), ams(2026, 3, 29, 8, 30)),
        ("08:30-17:45", ams(2026, 10, 24, 18, 0), ams(2026, 10, 25, 8, 30)),
        ("09:00-24:00", ams(2026, 11, 23, 23, 59, 59), ams(2026, 11, 23, 23, 59, 59)),
        ("09:00-24:00", ams(2026, 11, 24, 0, 0), ams(2026, 11, 24, 9, 0)),
        ("00:00-06:00", ams(2026, 11, 23, 5, 59), ams(2026, 11, 23, 5, 59)),
        ("00:00-06:00", ams(2026, 11, 23, 6, 0), ams(2026, 11, 24, 0, 0)),
        ("00:00-06:00", ams(2026, 11, 23, 23, 0), ams(2026, 11, 24, 0, 0)),
        # 02:30 does not exist on 2026-03-29; like RFC 5545 the skipped time is read with
        # the offset before the gap, i.e. as 03:30 CEST.
        ("02:30-06:00", ams(2026, 3, 29, 1, 0), utc(2026, 3, 29, 1, 30)),
        # 02:30 happens twice on 2026-10-25: the window opens at the first one.
        ("02:30-06:00", ams(2026, 10, 25, 0, 0), utc(2026, 10, 25, 0, 30)),
    ],
)
def test_other_windows(window: str, moment: datetime, expected: datetime) -> None:
    assert instant(timing.next_opening(moment, SendWindow.parse(window), AMS)) == instant(expected)


@pytest.mark.parametrize(
    "moment",
    [
        ams(2026, 11, 23, 0, 0),
        ams(2026, 11, 23, 3, 17, 5),
        ams(2026, 11, 23, 23, 59, 59),
        utc(2026, 3, 29, 1, 0),  # the first instant of summer time
        utc(2026, 10, 25, 0, 30),  # the first 02:30
        utc(2026, 10, 25, 1, 30),  # the second 02:30
    ],
)
def test_an_always_open_window_never_delays(moment: datetime) -> None:
    always = SendWindow.parse("00:00-24:00")
    assert always.always
    assert timing.next_opening(moment, always, AMS) is moment


MOMENTS = st.datetimes(
    min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)
)


@settings(deadline=None, max_examples=300)
@given(moment=MOMENTS, start=st.integers(4 * 60, 23 * 60 - 1), length=st.integers(1, 20 * 60))
def test_the_opening_is_the_first_instant_inside_the_window(
    moment: datetime, start: int, length: int
) -> None:
    end = min(start + length, 24 * 60)
    window = SendWindow(
        time(start // 60, start % 60), None if end == 24 * 60 else time(end // 60, end % 60)
    )
    opening = timing.next_opening(moment, window, AMS)
    local = opening.astimezone(AMS).time()
    assert opening >= moment
    assert opening - moment < timedelta(hours=25)
    assert window.start <= local and (window.end is None or local < window.end)
    if opening != moment:
        assert local == window.start
        before = moment.astimezone(AMS).time()
        assert before < window.start or (window.end is not None and before >= window.end)


@pytest.mark.parametrize(
    ("last", "new", "cap_days", "allowed"),
    [
        pytest.param(None, ams(2026, 11, 23, 10, 0), 90, True, id="first-pair"),
        pytest.param(ams(2026, 11, 23, 10, 0), ams(2026, 11, 23, 10, 0), 0, True, id="cap-off"),
        pytest.param(
            ams(2026, 1, 1, 10, 0), ams(2026, 1, 2, 10, 0), 0, True, id="cap-off-next-day"
        ),
        pytest.param(
            ams(2026, 11, 23, 10, 0), ams(2027, 2, 21, 10, 0), 90, True, id="exactly-90-days"
        ),
        pytest.param(
            ams(2026, 11, 23, 10, 0, 1), ams(2027, 2, 21, 10, 0), 90, False, id="a-second-short"
        ),
        pytest.param(ams(2026, 10, 24, 10, 0), ams(2026, 11, 23, 10, 0), 90, False, id="30-days"),
        pytest.param(
            ams(2026, 11, 23, 10, 0), ams(2026, 11, 23, 10, 0), 1, False, id="same-moment"
        ),
        pytest.param(ams(2026, 11, 22, 10, 0), ams(2026, 11, 23, 10, 0), 1, True, id="cap-1-day"),
        # events arriving out of order: the cap holds in both directions
        pytest.param(
            ams(2026, 12, 23, 10, 0), ams(2026, 11, 23, 10, 0), 90, False, id="later-pair"
        ),
        pytest.param(
            ams(2027, 3, 1, 10, 0), ams(2026, 11, 23, 10, 0), 90, True, id="much-later-pair"
        ),
        # days are 24 hours of real time, also across the switch to winter time
        pytest.param(utc(2026, 8, 1, 8, 0), utc(2026, 10, 30, 8, 0), 90, True, id="across-dst"),
        pytest.param(
            utc(2026, 8, 1, 8, 0), utc(2026, 10, 30, 7, 59), 90, False, id="across-dst-short"
        ),
    ],
)
def test_review_cap(last: datetime | None, new: datetime, cap_days: int, allowed: bool) -> None:
    assert timing.review_cap_allows(last, new, cap_days) is allowed


def test_review_cap_counts_real_time_for_local_datetimes() -> None:
    last = ams(2026, 8, 1, 10, 0)  # 08:00 UTC (CEST)
    new = ams(2026, 10, 30, 9, 0)  # 08:00 UTC (CET): exactly 90 days later
    assert instant(new) - instant(last) == timedelta(days=90)
    assert timing.review_cap_allows(last, new, 90)
