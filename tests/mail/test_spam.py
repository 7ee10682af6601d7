"""Every sample mail, composed with real headers by the engine, passes SpamAssassin and Gmail.

Each kind in each locale is assembled as the dispatcher would send it and
fed to ``spamassassin -L -t`` (local rules only, no network). A score of
2.0 or more means the template or copy needs work — not this test.
"""

from __future__ import annotations

import email
import email.policy
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

import pytest

from notifier.authoring import samples
from notifier.flows import kinds
from notifier.mail import mail_size, render
from notifier.recipient import Recipient
from notifier.service import Notifier
from notifier.settings import Settings
from tests.conftest import TEST_ENCRYPTION_KEY

SPAMASSASSIN = shutil.which("spamassassin")
KINDS = sorted(kinds.KINDS)
LOCALES = ["en", "nl"]
LIMIT = 2.0
_SCORE = re.compile(r"^X-Spam-Status: \w+, score=(-?[\d.]+)", re.MULTILINE)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(SPAMASSASSIN is None, reason="spamassassin is not installed"),
]


@dataclass(frozen=True)
class Scored:
    message: EmailMessage
    score: float
    report: str


def compose(engine: Notifier, kind: str, locale: str) -> bytes:
    """The message exactly as the dispatcher would hand it to the SMTP server."""
    sample = samples.load(samples.path(render.DEFAULT_TEMPLATES_DIR, kind))
    customer = sample["customer"]
    recipient = Recipient(customer["id"], customer["email"], customer["name"], locale)
    letter = engine.assembler.assemble(
        f"spam-{kind}-{locale}", kind, recipient, samples.send_context(sample)
    )
    return letter.envelope.data


def score(data: bytes, home: Path) -> Scored:
    assert SPAMASSASSIN is not None
    result = subprocess.run(
        [SPAMASSASSIN, "-L", "-t"],
        input=data,
        capture_output=True,
        timeout=120,
        check=True,
        env={**os.environ, "HOME": str(home)},
    )
    output = result.stdout.decode("utf-8", errors="replace")
    found = _SCORE.search(output)
    assert found is not None, output[:2000]
    parsed = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    report = output[output.find("Content analysis details") :][:2000]
    return Scored(parsed, float(found.group(1)), report)


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[tuple[str, str], Scored]]:
    """Every kind in every locale, scored by SpamAssassin, two or more at a time."""
    folder = tmp_path_factory.mktemp("spam")
    settings = Settings(
        database_url=f"sqlite:///{folder / 'notifier.db'}",
        smtp_host="127.0.0.1",
        smtp_tls="none",
        secret_key="test-secret-key",
        encryption_key=TEST_ENCRYPTION_KEY,
        base_url="https://mail.winparts.example",
    )
    engine = Notifier(settings)
    try:
        messages = {(k, loc): compose(engine, k, loc) for k in KINDS for loc in LOCALES}
    finally:
        engine.close()
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        results = pool.map(lambda data: score(data, folder), messages.values())
        yield dict(zip(messages, results, strict=True))


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("kind", KINDS)
def test_spamassassin_scores_it_below_two(
    scored: dict[tuple[str, str], Scored], kind: str, locale: str
) -> None:
    result = scored[(kind, locale)]
    assert result.score < LIMIT, result.report


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("kind", KINDS)
def test_gmail_shows_all_of_it(
    scored: dict[tuple[str, str], Scored], kind: str, locale: str
) -> None:
    message = scored[(kind, locale)].message
    html = message.get_body(preferencelist=("html",))
    assert html is not None
    assert len(html.get_content().encode()) < mail_size.WARN_FROM
    assert message["Content-Language"] == locale
