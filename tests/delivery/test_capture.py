"""The development inbox keeps captured mail where only the engine's user reads it."""

from __future__ import annotations

import stat
from pathlib import Path

from notifier.delivery.capture import Inbox


def test_captured_mail_is_readable_by_its_owner_only(tmp_path: Path, loose_umask: None) -> None:
    inbox = Inbox(tmp_path / "inbox")
    mail_id = inbox.keep(b"Subject: hallo\r\n\r\nBeste Zoe\r\n")
    assert stat.S_IMODE((tmp_path / "inbox").stat().st_mode) == 0o700
    kept = tmp_path / "inbox" / f"{mail_id}.eml"
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert kept.read_bytes().endswith(b"Beste Zoe\r\n")
