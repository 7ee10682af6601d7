"""A campaign's mail filled into its blank is, byte for byte, the mail rendered for the recipient.

Both ways over both locales, one-object and per-locale content, with first
names that a text part could wrap or a filler could mangle (markup,
ampersands, quotes, non-ASCII, long and many-worded names, none), ids of
several lengths (so tokens of several lengths), 8bit and quoted-printable
bodies; the per-mail side renders every mail from its template
(``compile_shapes=False``), as before compiled shapes and blanks.
"""

from __future__ import annotations

import types
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from itsdangerous.timed import TimestampSigner

from notifier.authoring import samples
from notifier.clock import FrozenClock
from notifier.flows import newsletter_content
from notifier.mail import campaign_letters, compose, render
from notifier.mail.assembly import Assembler, MailSettings
from notifier.recipient import Recipient
from notifier.settings import Settings
from tests.conftest import TEST_ENCRYPTION_KEY

FIRST_NAMES: list[str | None] = [
    "Jan",
    "Zoë",
    "Anne & Marie",
    "<b>Bold</b> \"quoted\" 'single'",
    "Daniël-Jean Ünal Ørsted Çelik",
    "Bartholomeus " * 9 + "Maximiliaan",
    "A" * 90,
    "€ 5 & > 3",
    None,
    "   ",
    "two  spaces",
    " leading",
    "back\\slash",
    "tab\tname",
    "nbsp\xa0name",
    "\ue010",
]
IDS = ["C1", "C10823", "customer-" + "7" * 40]
LOCALES = ["nl", "en", "nl_BE", "en_GB", "de"]


def _settings(tmp_path: Path) -> Settings:
    return Settings(
        database_url=f"sqlite:///{tmp_path / 'unused.db'}",
        smtp_host="127.0.0.1",
        secret_key="test-secret-key",
        encryption_key=TEST_ENCRYPTION_KEY,
        base_url="https://notifier.test",
        api_tokens=["test-token"],
        render_processes=0,
    )


def _assembler(tmp_path: Path, blanks: bool) -> Assembler:
    made = Assembler.from_settings(
        MailSettings.of(_settings(tmp_path)),
        ["test-secret-key"],
        FrozenClock(datetime(2026, 12, 3, tzinfo=UTC)),
    )
    if blanks:
        return made
    settings = _settings(tmp_path)
    per_mail = render.Renderer(settings.templates_dir, settings.locales_dir, compile_shapes=False)
    return Assembler(
        MailSettings.of(settings),
        per_mail,
        made.composer,
        made.preference_tokens,
        made.confirm_tokens,
        campaign_blanks=False,
    )


def _contexts() -> list[dict[str, Any]]:
    sample = samples.load(samples.path(render.DEFAULT_TEMPLATES_DIR, "newsletter"))
    content = sample["newsletter"]
    english = {**content, "title": "Ready for winter & more", "intro": "Cold nights.\nShort days."}
    return [
        {"newsletter": content, "subjects": {}, newsletter_content.FALLBACK_KEY: None},
        {
            "newsletter": {"nl": content, "en": english},
            "subjects": {"en": "Winter <3", "nl": "Winter — klaar?"},
            newsletter_content.FALLBACK_KEY: "en",
        },
    ]


@pytest.fixture
def fixed_boundary(monkeypatch: pytest.MonkeyPatch) -> None:
    """The MIME boundary and the tokens' timestamps fixed, so both ways can be compared."""
    monkeypatch.setattr(compose, "secrets", types.SimpleNamespace(token_hex=lambda _n: "b" * 32))
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda _self: 1_796_000_000)


@pytest.mark.parametrize("eight_bit", [False, True])
def test_filled_campaign_mail_is_the_rendered_mail(
    tmp_path: Path, fixed_boundary: None, eight_bit: bool
) -> None:
    filled, rendered = _assembler(tmp_path, True), _assembler(tmp_path, False)
    filled.renderer.compile_all()  # as a worker does at start: the template version is known
    filled.composer.encoding.eight_bit = rendered.composer.encoding.eight_bit = eight_bit
    compared = 0
    for context in _contexts():
        for locale in LOCALES:
            for number, first_name in enumerate(FIRST_NAMES):
                for customer_id in IDS:
                    recipient = Recipient(
                        customer_id,
                        f"{customer_id}@example.nl",
                        None if first_name is None else f"{first_name} de Vries",
                        locale,
                        first_name=first_name,
                        token_generation="g2" if number % 2 else "",
                    )
                    key = f"campaign-7-{customer_id}"
                    ours = filled.assemble(key, "newsletter", recipient, context)
                    theirs = rendered.assemble(key, "newsletter", recipient, context)
                    assert ours == theirs, (locale, first_name, customer_id)
                    compared += 1
    letters = filled.campaign_letters
    assert letters is not None
    assert compared == letters.counts["filled"] + letters.counts["per_mail"]
    assert letters.counts["filled"] > compared * 0.6
    made = letters.counts["blanks"]
    for locale in LOCALES:  # names and ids of the same lengths: every blank is there already
        recipient = Recipient("C9", "c9@example.nl", "Kim", locale, first_name="Kim")
        assert filled.assemble("k", "newsletter", recipient, _contexts()[0]) == rendered.assemble(
            "k", "newsletter", recipient, _contexts()[0]
        )
    assert letters.counts["blanks"] == made


def test_a_name_the_text_might_change_is_rendered_per_mail() -> None:
    assert campaign_letters.name_shape("Anne Marie") == (4, 5)
    assert campaign_letters.name_shape(None) is None
    assert campaign_letters.name_shape("  ") is None
    for odd in ("two  spaces", " leading", "back\\slash", "tab\tname", "nbsp\xa0x", "\ue010"):
        assert campaign_letters.name_shape(odd) is False, odd


def test_a_campaign_showing_another_customer_value_is_rendered_per_mail(
    tmp_path: Path, fixed_boundary: None
) -> None:
    templates = tmp_path / "templates"
    templates.mkdir()
    for path in render.DEFAULT_TEMPLATES_DIR.rglob("*.j2"):
        target = templates / path.relative_to(render.DEFAULT_TEMPLATES_DIR)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(path.read_text())
    newsletter = templates / "newsletter.mjml.j2"
    newsletter.write_text(
        newsletter.read_text().replace(
            '{% include "partials/greeting.mjml.j2" %}',
            '{% include "partials/greeting.mjml.j2" %}<mj-text>{{ customer.email }}</mj-text>',
        )
    )
    settings = _settings(tmp_path).model_copy(update={"templates_dir": templates})
    assembler = Assembler.from_settings(
        MailSettings.of(settings),
        ["test-secret-key"],
        FrozenClock(datetime(2026, 12, 3, tzinfo=UTC)),
    )
    context = _contexts()[0]
    for customer_id in ("C1", "C2"):
        recipient = Recipient(
            customer_id, f"{customer_id}@example.nl", None, "nl", first_name="Jan"
        )
        letter = assembler.assemble(f"k-{customer_id}", "newsletter", recipient, context)
        assert f"{customer_id}@example.nl".encode() in letter.envelope.data.split(b"\r\n\r\n", 1)[1]
    assert assembler.campaign_letters is not None
    assert assembler.campaign_letters.counts["filled"] == 0
