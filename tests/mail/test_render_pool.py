"""Rendering in worker processes (``NOTIFIER_RENDER_PROCESSES``): same mail, every core."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from pathlib import Path

from notifier.clock import FrozenClock
from notifier.service import Notifier
from tests.conftest import customer, event, order
from tests.processes import notifier_env
from tests.smtpd import SmtpServer, body_of

_LIKE_THE_NOTIFIER_SCRIPT = """
import asyncio
import json
from notifier.cli import main  # what the installed ``notifier`` script runs first


async def render_one_and_list_modules(pool):
    from datetime import UTC, datetime
    from notifier.authoring import samples
    from notifier.content import TEMPLATES_DIR
    from notifier.mail.assembly import Letter
    from notifier.mail.pool import Item
    from notifier.recipient import Recipient

    sample = samples.load(samples.path(TEMPLATES_DIR, "order_confirmation"))
    reader = Recipient("C1", "jan@example.nl", "Jan", "nl", email_index="x", token_generation="g")
    item = Item("m1", "order_confirmation", reader, samples.send_context(sample))
    [letter] = await pool.submit([item], datetime(2026, 12, 4, tzinfo=UTC))
    assert isinstance(letter, Letter), letter
    listing = pool._executor.submit(eval, "sorted(__import__('sys').modules)")
    return await asyncio.wrap_future(listing)


if __name__ == "__main__":
    from notifier.mail.assembly import MailSettings
    from notifier.mail.pool import RenderPool
    from notifier.settings import Settings

    pool = RenderPool(MailSettings.of(Settings()), ["test-secret-key"], 1)
    try:
        print(json.dumps(asyncio.run(render_one_and_list_modules(pool))))
    finally:
        pool.close()
"""


async def test_a_render_pool_delivers_the_same_mail_and_isolates_failures(
    make_engine: Callable[..., Notifier], smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    engine = make_engine(render_processes=2)
    for number in range(12):
        engine.handle_event(
            event(
                "order.placed",
                locale=("nl", "en")[number % 2],
                customer=customer(("nl", "en")[number % 2], id=f"P{number}"),
                order=order(id=f"O-{number}", number=f"WP-{number}"),
            )
        )
    engine.send_message(
        {
            "id": "broken-later",
            "kind": "order_confirmation",
            "to": customer(id="P99"),
            "context": {"order": order(), "data": {}},
        }
    )
    # Break that one message's stored context the way an old release might have left it.
    from notifier.store import outbox

    with engine.database.transaction() as session:
        row = outbox.get(session, "broken-later")
        assert row is not None
        row.context = engine.sealer.seal_json({"order": "not an order"})

    assert await engine.dispatch_due() == 13
    assert len(smtp_server.received) == 12
    languages = sorted(str(r.message["Content-Language"]) for r in smtp_server.received)
    assert languages == ["en"] * 6 + ["nl"] * 6
    first = smtp_server.received[0].message
    assert parsedate_to_datetime(str(first["Date"])) == clock.now()  # the parent's clock
    assert "<html lang=" in body_of(first, "html")
    broken = engine.get_message("broken-later")
    assert broken.status == "failed" and (broken.last_error or "").startswith("render:")
    # The chunks carried the store's recipients, and unpickling them loaded nothing of the store.
    assert engine.render_pool is not None
    listing = engine.render_pool._executor.submit(eval, "sorted(__import__('sys').modules)")
    assert not {"notifier.store", "sqlalchemy"} & set(listing.result(timeout=30))


def test_a_render_process_of_the_notifier_command_holds_the_renderer_not_the_engine(
    tmp_path: Path,
) -> None:
    """Each render process re-imports the main script (spawn), then unpickles its chunks:
    neither may load the engine. About 50 MB a process, when every module came with them."""
    script = tmp_path / "notifier_script.py"
    script.write_text(_LIKE_THE_NOTIFIER_SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=notifier_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    modules = set(json.loads(done.stdout))
    assert {"notifier.cli", "notifier.mail.render", "jinja2"} <= modules  # it built its assembler
    engine = {"notifier.service", "notifier.store", "notifier.web", "sqlalchemy", "fastapi"}
    engine |= {"pydantic", "pydantic_settings"}  # the settings arrive as plain values
    assert not modules & engine, modules & engine
