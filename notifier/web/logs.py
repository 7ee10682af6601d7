"""Access logs without secrets: the signed tokens in mail links never reach a log line."""

from __future__ import annotations

import logging
import re

from notifier.flows import privacy

_TOKEN_LINK = re.compile(r"/(?:unsubscribe|preferences|confirm)/")
"""Where ``privacy.redact_link_tokens`` finds tokens: tested first, as most lines have none."""


class RedactLinkTokens(logging.Filter):
    """Rewrites uvicorn's access-log arguments so ``/unsubscribe/<token>`` logs as ``<token>``."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and any(
            isinstance(arg, str) and _TOKEN_LINK.search(arg) for arg in args
        ):
            record.args = tuple(
                privacy.redact_link_tokens(arg) if isinstance(arg, str) else arg for arg in args
            )
        return True


def install() -> None:
    """Attach the filter to uvicorn's access logger once per process."""
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactLinkTokens) for f in access.filters):
        access.addFilter(RedactLinkTokens())
