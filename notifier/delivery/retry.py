"""When to try a failed delivery again. A pure policy, tested by a table."""

from __future__ import annotations

from datetime import datetime, timedelta

from notifier.errors import DeliveryError

FIRST_DELAY = timedelta(minutes=1)
LONGEST_DELAY = timedelta(hours=1)
JITTER = 0.25
"""Each delay is spread by ±25% so a burst of failures does not retry in lockstep."""


def next_attempt(
    attempts: int,
    error: DeliveryError,
    first_attempt_at: datetime,
    now: datetime,
    *,
    max_age: timedelta,
    jitter: float,
) -> datetime | None:
    """The time of the next try after ``attempts`` failed ones, or None to give up.

    Permanent errors are never retried. Transient ones back off exponentially
    from one minute to at most an hour, until ``max_age`` has passed since the
    first attempt. ``jitter`` is a number in [0, 1) drawn by the caller.
    """
    if error.permanent:
        return None
    exponent = max(attempts - 1, 0)
    delay: timedelta = min(FIRST_DELAY * (1 << min(exponent, 20)), LONGEST_DELAY)
    delay *= 1 - JITTER + 2 * JITTER * jitter
    retry_at = now + delay
    if retry_at - first_attempt_at > max_age:
        return None
    return retry_at
