"""The embedded Python API as docs/python-api.md shows it: its example runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from notifier import ConfigurationError, MessageStatus, Notifier, Settings
from notifier.store import db
from tests import ROOT

DOC = ROOT / "docs" / "python-api.md"


def test_the_documented_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)
    assert len(blocks) == 1
    exec(compile(blocks[0], str(DOC), "exec"), {"__name__": "python_api_example"})
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "order_confirmation scheduled"
    assert printed[1].startswith("customer.email - not a deliverable email address")
    assert printed[2] == "scheduled"


def test_without_upgrade_one_line_says_what_to_call(tmp_path: Path) -> None:
    engine = Notifier(
        Settings(database_url=f"sqlite:///{tmp_path / 'notifier.db'}", render_processes=0)
    )
    try:
        event = {
            "id": "e-1",
            "type": "customer.updated",
            "customer": {"id": "C1", "email": "a@example.nl"},
        }
        for call in (lambda: engine.handle_event(event), lambda: engine.get_message("m-1")):
            with pytest.raises(ConfigurationError) as raised:
                call()
            assert str(raised.value) == db.NO_SCHEMA
            assert "upgrade_database()" in str(raised.value)
    finally:
        engine.close()


def test_answers_are_typed(tmp_path: Path) -> None:
    engine = Notifier(
        Settings(database_url=f"sqlite:///{tmp_path / 'notifier.db'}", render_processes=0)
    )
    engine.upgrade_database()
    try:
        answer = engine.handle_event(
            {
                "id": "evt-1",
                "type": "newsletter.subscribed",
                "customer": {"id": "C1", "email": "jan@example.nl", "locale": "nl"},
            }
        )
        statuses = [message.status for message in answer.event.messages]
        assert statuses and all(isinstance(status, MessageStatus) for status in statuses)
        assert answer.body["messages"][0]["status"] == statuses[0].value
    finally:
        engine.close()
