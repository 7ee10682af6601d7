"""Process-wide logging, the same in the CLI and in each process of ``serve --workers``."""

from __future__ import annotations

import logging

FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
LEVEL_VARIABLE = "NOTIFIER_LOG_LEVEL"
"""How ``serve --workers`` hands its level (``--verbose`` or not) to the processes it spawns."""


def configure(level: int | str = logging.INFO) -> None:
    """Log to stderr at ``level``, without the per-job and per-SMTP-command chatter.

    aiosmtpd's transcripts (``mail.log``) name addresses, so they stay out too.
    """
    logging.basicConfig(level=level, format=FORMAT)
    for noisy in ("apscheduler", "mail.log"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
