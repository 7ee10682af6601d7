"""The retry policy as a table: permanent gives up, transient backs off, old mail gives up."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from notifier import errors
from notifier.delivery import retry

FIRST = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
MAX_AGE = timedelta(days=3)
TRANSIENT = errors.TransientDeliveryError("try again later", smtp_code=451)


def after(
    attempts: int, *, jitter: float = 0.5, elapsed: timedelta = timedelta(0)
) -> timedelta | None:
    """The delay ``next_attempt`` picks, counted from ``now``; None when it gives up."""
    now = FIRST + elapsed
    at = retry.next_attempt(attempts, TRANSIENT, FIRST, now, max_age=MAX_AGE, jitter=jitter)
    return None if at is None else at - now


@pytest.mark.parametrize(
    "error",
    [
        errors.PermanentDeliveryError("no such user", smtp_code=550),
        errors.PermanentDeliveryError("message rejected", smtp_code=554),
        errors.PermanentDeliveryError("render failed"),
    ],
)
@pytest.mark.parametrize("attempts", [0, 1, 5])
def test_permanent_errors_are_never_retried(error: errors.DeliveryError, attempts: int) -> None:
    assert retry.next_attempt(attempts, error, FIRST, FIRST, max_age=MAX_AGE, jitter=0.5) is None


@pytest.mark.parametrize(
    ("attempts", "delay"),
    [
        (0, timedelta(minutes=1)),
        (1, timedelta(minutes=1)),
        (2, timedelta(minutes=2)),
        (3, timedelta(minutes=4)),
        (4, timedelta(minutes=8)),
        (5, timedelta(minutes=16)),
        (6, timedelta(minutes=32)),
        (7, timedelta(hours=1)),
        (8, timedelta(hours=1)),
        (30, timedelta(hours=1)),
        (10_000, timedelta(hours=1)),
    ],
)
def test_backoff_doubles_from_a_minute_up_to_an_hour(attempts: int, delay: timedelta) -> None:
    # jitter 0.5 is the middle of the spread: the undisturbed delay.
    assert after(attempts) == delay


@pytest.mark.parametrize(
    ("jitter", "factor"),
    [(0.0, 0.75), (0.25, 0.875), (0.5, 1.0), (0.75, 1.125), (0.999, 1.2495)],
)
@pytest.mark.parametrize("base", [timedelta(minutes=1), timedelta(minutes=8), timedelta(hours=1)])
def test_jitter_spreads_each_delay_by_a_quarter(
    jitter: float, factor: float, base: timedelta
) -> None:
    attempts = {timedelta(minutes=1): 1, timedelta(minutes=8): 4, timedelta(hours=1): 9}[base]
    delay = after(attempts, jitter=jitter)
    assert delay is not None
    assert delay.total_seconds() == pytest.approx(base.total_seconds() * factor, abs=0.001)
    assert base * 0.75 <= delay < base * 1.25


@pytest.mark.parametrize("jitter", [0.0, 0.5, 0.999])
@pytest.mark.parametrize("attempts", range(1, 15))
def test_delays_never_shrink_as_attempts_grow(attempts: int, jitter: float) -> None:
    earlier, later = after(attempts, jitter=jitter), after(attempts + 1, jitter=jitter)
    assert earlier is not None and later is not None
    assert earlier <= later


@pytest.mark.parametrize(
    ("elapsed", "attempts", "jitter", "retried"),
    [
        (timedelta(0), 1, 0.5, True),
        (timedelta(days=2, hours=23), 9, 0.5, True),  # the retry lands exactly at the limit
        (timedelta(days=2, hours=23), 9, 0.501, False),  # a moment past it
        (timedelta(days=2, hours=23, minutes=30), 9, 0.0, False),
        (timedelta(days=3), 1, 0.0, False),
        (timedelta(days=30), 1, 0.0, False),
    ],
)
def test_gives_up_when_the_retry_would_pass_the_max_age(
    elapsed: timedelta, attempts: int, jitter: float, retried: bool
) -> None:
    assert (after(attempts, jitter=jitter, elapsed=elapsed) is not None) is retried


def test_the_answer_keeps_the_time_zone_and_lies_after_now() -> None:
    now = FIRST + timedelta(minutes=5)
    at = retry.next_attempt(3, TRANSIENT, FIRST, now, max_age=MAX_AGE, jitter=0.0)
    assert at is not None and at.tzinfo is not None and at > now


def test_a_zero_max_age_never_retries() -> None:
    assert retry.next_attempt(1, TRANSIENT, FIRST, FIRST, max_age=timedelta(0), jitter=0.0) is None
