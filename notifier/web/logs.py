"""Access logs without secrets: the signed tokens in mail links never reach a log line."""

from __future__ import annotations

import logging

from notifier.flows import privacy


class RedactLinkTokens(logging.Filter):
    """Rewrites uvicorn's access-log arguments so ``/unsubscribe/<token>`` logs as ``<token>``."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                privacy.redact_link_tokens(arg) if isinstance(arg, str) else arg
                for arg in record.args
            )
        return True


def install() -> None:
    """Attach the filter to uvicorn's access logger once per process."""
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactLinkTokens) for f in access.filters):
        access.addFilter(RedactLinkTokens())
