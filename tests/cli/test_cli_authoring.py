"""Tests for the workshop commands of notifier.cli: templates check, send-test and i18n.

The commands run in-process through click's runner, with the environment an
operator would set; send-test talks to the real aiosmtpd server fixture.
"""

from __future__ import annotations

import gettext
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from babel.messages import pofile
from click.testing import CliRunner, Result

from notifier import cli
from notifier.authoring import samples
from notifier.mail import i18n, render
from tests import ROOT
from tests.conftest import TEST_ENCRYPTION_KEY
from tests.smtpd import SmtpServer, free_port

TESTER = "marketing@winparts.example"


@dataclass(frozen=True)
class Project:
    """A scratch copy of the project as a marketer has it: babel.cfg, templates/, locales/ …"""

    root: Path

    @property
    def templates(self) -> Path:
        return self.root / "templates"

    @property
    def locales(self) -> Path:
        return self.root / "locales"

    def catalog(self, locale: str) -> Path:
        return self.locales / locale / i18n.CATALOG_PATH

    def folders(self) -> list[str]:
        return ["--templates-dir", str(self.templates), "--locales-dir", str(self.locales)]


@pytest.fixture
def project(tmp_path: Path) -> Project:
    shutil.copytree(render.DEFAULT_TEMPLATES_DIR, tmp_path / "templates")
    shutil.copytree(i18n.DEFAULT_LOCALES_DIR, tmp_path / "locales")
    shutil.copy(ROOT / "babel.cfg", tmp_path / "babel.cfg")
    # babel.cfg also extracts the strings of the Python code and web pages.
    shutil.copytree(
        ROOT / "notifier", tmp_path / "notifier", ignore=shutil.ignore_patterns("__pycache__")
    )
    return Project(tmp_path)


@pytest.fixture(autouse=True)
def environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No stray NOTIFIER_* settings or .env file; keys and database in the test's folder."""
    for name in [name for name in os.environ if name.startswith("NOTIFIER_")]:
        monkeypatch.delenv(name)
    workdir = tmp_path / "work"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    monkeypatch.setenv("NOTIFIER_DATABASE_URL", f"sqlite:///{workdir / 'notifier.db'}")
    monkeypatch.setenv("NOTIFIER_SECRET_KEY", "test-secret-key")
    monkeypatch.setenv("NOTIFIER_ENCRYPTION_KEY", TEST_ENCRYPTION_KEY)
    yield


@pytest.fixture
def smtp_env(smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch) -> SmtpServer:
    monkeypatch.setenv("NOTIFIER_SMTP_HOST", smtp_server.host)
    monkeypatch.setenv("NOTIFIER_SMTP_PORT", str(smtp_server.port))
    monkeypatch.setenv("NOTIFIER_SMTP_TLS", "none")
    return smtp_server


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli.main, list(args), catch_exceptions=False)


def translations(path: Path) -> dict[str, object]:
    with path.open("rb") as handle:
        return {
            message.id if isinstance(message.id, str) else message.id[0]: message.string
            for message in pofile.read_po(handle)
            if message.id
        }


# -- templates check -------------------------------------------------------------------------


def test_check_passes_on_the_shipped_templates() -> None:
    result = invoke("templates", "check")
    assert result.exit_code == 0, result.output
    assert result.output == "7 templates × 2 locales: all good\n"  # noqa: RUF001


def test_check_verbose_says_which_templates_are_compiled_and_which_fall_back(
    project: Project,
) -> None:
    shipped = invoke("templates", "check", "--verbose")
    assert shipped.exit_code == 0, shipped.output
    kinds = render.Renderer(render.DEFAULT_TEMPLATES_DIR, i18n.DEFAULT_LOCALES_DIR).kinds()
    compiled = [f"{kind}.mjml.j2: compiled once per shape" for kind in kinds]
    assert shipped.output.splitlines()[:-1] == compiled

    # A filter over per-mail data cannot be deferred: that template is rendered per mail.
    file = project.templates / "review_service.mjml.j2"
    original = '{{ _("How was our service?") }}'
    assert original in file.read_text()
    file.write_text(file.read_text().replace(original, "{{ (order.number ~ 'x')|upper }}"))
    result = invoke("templates", "check", "--verbose", *project.folders())
    assert result.exit_code == 0, result.output
    [fallback] = [line for line in result.output.splitlines() if "per mail" in line]
    assert fallback.startswith("review_service.mjml.j2: rendered per mail: ")
    assert len(fallback) > len("review_service.mjml.j2: rendered per mail: ")


def test_check_fails_naming_file_and_line(project: Project) -> None:
    catalog = project.catalog("nl")
    catalog.write_text(
        catalog.read_text(encoding="utf-8").replace('msgstr "Neem een kijkje"', 'msgstr ""'),
        encoding="utf-8",
    )
    signoff = project.templates / "partials" / "signoff.mjml.j2"
    signoff.write_text(signoff.read_text(encoding="utf-8").replace("}}<br />", "}<br />"))
    result = invoke("templates", "check", *project.folders())
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[-1] == "7 templates × 2 locales: 2 problems"  # noqa: RUF001
    assert lines[0].startswith(f"{project.locales}/nl/LC_MESSAGES/messages.po:")
    assert lines[0].endswith(": untranslated: 'Take a look'")
    assert lines[1].startswith(f"{signoff}:4: ")


def test_check_fails_on_a_template_reading_an_optional_field_unguarded(project: Project) -> None:
    """A shop may send an order without address (kinds table): the README's first curl does."""
    address = project.templates / "partials" / "address.mjml.j2"
    address.write_text(
        "<mj-section><mj-column>\n"
        "  <mj-text>{{ order.shipping_address.city }}</mj-text>\n"
        "</mj-column></mj-section>\n",
        encoding="utf-8",
    )
    result = invoke("templates", "check", *project.folders())
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        f"{address}:2: order.shipping_address is optional (kinds table) but read unguarded; "
        "put what reads it inside {% if order.shipping_address is given %}…{% endif %}",
        f"{address}:2: order.shipping_address.city is optional (kinds table) but read "
        "unguarded; put what reads it inside "
        "{% if order.shipping_address.city is given %}…{% endif %}",
        "7 templates × 2 locales: 2 problems",  # noqa: RUF001
    ]


def test_check_prints_paths_relative_to_the_working_directory(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project.root)
    (project.templates / "review_service.mjml.j2").unlink()
    result = invoke(
        "templates", "check", "--templates-dir", "templates", "--locales-dir", "locales"
    )
    assert result.exit_code == 1
    assert result.output.splitlines()[0].startswith("templates/review_service.mjml.j2:1: ")


def test_check_reads_the_folders_from_the_settings(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFIER_TEMPLATES_DIR", str(project.templates))
    monkeypatch.setenv("NOTIFIER_LOCALES_DIR", str(project.locales))
    (project.templates / "review_service.mjml.j2").unlink()
    result = invoke("templates", "check")
    assert result.exit_code == 1
    assert "6 templates × 2 locales: 1 problem" in result.output  # noqa: RUF001


# -- send-test -------------------------------------------------------------------------------


def test_send_test_delivers_one_marked_mail(smtp_env: SmtpServer) -> None:
    result = invoke("send-test", "order_confirmation", "--to", TESTER, "--locale", "nl")
    assert result.exit_code == 0, result.output
    [received] = smtp_env.received
    assert received.recipients == [TESTER]
    message = received.message
    assert str(message["Subject"]) == "[TEST] Bedankt voor je bestelling WP-1001"
    assert message["X-Notifier-Test"] is not None
    assert str(message["Message-ID"]) in result.output
    html = message.get_body(preferencelist=("html",))
    assert html is not None and "Remblokkenset vooras Bosch BP1234" in html.get_content()


def test_send_test_with_another_sample_and_locale(smtp_env: SmtpServer, tmp_path: Path) -> None:
    sample = samples.load(samples.path(render.DEFAULT_TEMPLATES_DIR, "shipping_notice"))
    sample["data"]["carrier"] = "DHL"
    own = tmp_path / "dhl.json"
    own.write_text(json.dumps(sample), encoding="utf-8")
    result = invoke(
        "send-test", "shipping_notice", "--to", TESTER, "--locale", "en", "--sample", str(own)
    )
    assert result.exit_code == 0, result.output
    [received] = smtp_env.received
    assert str(received.message["Subject"]) == "[TEST] Your order WP-1002 is on its way"
    assert "DHL" in received.data.decode()


def test_send_test_refuses_an_unknown_kind(smtp_env: SmtpServer) -> None:
    result = invoke("send-test", "order_confirmaton", "--to", TESTER)
    assert result.exit_code == 1
    assert "unknown kind 'order_confirmaton'" in result.output
    assert "Traceback" not in result.output
    assert smtp_env.received == []


def test_send_test_names_a_missing_sample_file(smtp_env: SmtpServer, tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    result = invoke("send-test", "newsletter", "--to", TESTER, "--sample", str(missing))
    assert result.exit_code == 1
    assert f"Error: {missing}: no such sample file" in result.output


def test_send_test_names_the_line_of_bad_json(smtp_env: SmtpServer, tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{\n  "data": {},\n  "order": {"number": "WP-1",}\n}\n', encoding="utf-8")
    result = invoke("send-test", "newsletter", "--to", TESTER, "--sample", str(broken))
    assert result.exit_code == 1
    assert f"Error: {broken}:3: not valid JSON" in result.output
    assert "Traceback" not in result.output


def test_send_test_reports_a_refusal_by_the_server(smtp_env: SmtpServer) -> None:
    smtp_env.fail_next("550 5.1.1 mailbox unavailable")
    result = invoke("send-test", "review_service", "--to", TESTER, "--locale", "nl")
    assert result.exit_code == 1
    assert "the SMTP server did not take the mail" in result.output
    assert "550" in result.output
    assert "Traceback" not in result.output


def test_send_test_reports_a_server_that_is_not_there(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFIER_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("NOTIFIER_SMTP_PORT", str(free_port()))
    monkeypatch.setenv("NOTIFIER_SMTP_TLS", "none")
    result = invoke("send-test", "review_service", "--to", TESTER)
    assert result.exit_code == 1
    assert "the SMTP server did not take the mail" in result.output
    assert "Traceback" not in result.output


def test_send_test_needs_an_smtp_server() -> None:
    result = invoke("send-test", "review_service", "--to", TESTER)
    assert result.exit_code == 1
    assert "NOTIFIER_SMTP_HOST is not set" in result.output


# -- i18n --------------------------------------------------------------------------------------


def test_extract_update_compile_keeps_the_translations(project: Project) -> None:
    before = {locale: translations(project.catalog(locale)) for locale in ("en", "nl")}
    pot = project.locales / "messages.pot"
    pot.unlink()

    extracted = invoke(
        "i18n",
        "extract",
        "--mapping",
        str(project.root / "babel.cfg"),
        "--locales-dir",
        str(project.locales),
    )
    assert extracted.exit_code == 0, extracted.output
    assert set(translations(pot)) == set(before["nl"])

    updated = invoke("i18n", "update", "--locales-dir", str(project.locales))
    assert updated.exit_code == 0, updated.output
    assert "0 to translate or check" in updated.output
    for locale in ("en", "nl"):
        assert translations(project.catalog(locale)) == before[locale]

    compiled = invoke("i18n", "compile", "--locales-dir", str(project.locales))
    assert compiled.exit_code == 0, compiled.output
    with project.catalog("nl").with_suffix(".mo").open("rb") as mo:
        assert gettext.GNUTranslations(mo).gettext("Take a look") == "Neem een kijkje"
    assert invoke("templates", "check", *project.folders()).exit_code == 0


def test_a_changed_string_comes_back_fuzzy_and_a_new_one_empty(project: Project) -> None:
    kind = project.templates / "newsletter.mjml.j2"
    text = kind.read_text(encoding="utf-8")
    text = text.replace('_("Take a look")', '_("Take a closer look")')
    text = text.replace(
        "{% endblock %}\n{% block content %}",
        '{% endblock %}\n{% block content %}\n{# #}{{ _("Brand new line") }}',
        1,
    )
    kind.write_text(text, encoding="utf-8")

    mapping = ["--mapping", str(project.root / "babel.cfg"), "--locales-dir", str(project.locales)]
    assert invoke("i18n", "extract", *mapping).exit_code == 0
    updated = invoke("i18n", "update", "--locales-dir", str(project.locales))
    assert "2 to translate or check" in updated.output

    with project.catalog("nl").open("rb") as handle:
        catalog = pofile.read_po(handle)
    closer, new = catalog.get("Take a closer look"), catalog.get("Brand new line")
    assert closer is not None and closer.fuzzy and closer.string == "Neem een kijkje"
    assert new is not None and new.string == "" and not new.fuzzy

    result = invoke("templates", "check", *project.folders())
    assert result.exit_code == 1
    assert "fuzzy: 'Take a closer look'" in result.output
    assert "untranslated: 'Brand new line'" in result.output


def test_a_third_language_added_by_a_marketer_alone(project: Project) -> None:
    result = invoke("i18n", "init", "de", "--locales-dir", str(project.locales))
    assert result.exit_code == 0, result.output
    catalog = project.catalog("de")
    text = catalog.read_text(encoding="utf-8")
    assert "Language: de\\n" in text
    for english, german in [
        ("Email preferences", "E-Mail-Einstellungen"),
        ("Take a look", "Jetzt ansehen"),
    ]:
        entry = f'msgid "{english}"\nmsgstr ""'
        assert entry in text
        text = text.replace(entry, f'msgid "{english}"\nmsgstr "{german}"')
    catalog.write_text(text, encoding="utf-8")

    renderer = render.Renderer(project.templates, project.locales)
    assert renderer.locales() == ["de", "en", "nl"]
    sample = samples.load(samples.path(project.templates, "newsletter"))
    mail = renderer.render("newsletter", "de_AT", sample)
    assert mail.locale == "de"
    assert '<html lang="de"' in mail.html
    assert "E-Mail-Einstellungen" in mail.html and "Jetzt ansehen" in mail.html
    # Untranslated strings fall back to the English source text.
    assert "Unsubscribe from these emails" in mail.html
    assert "Prices include VAT. While stocks last." in mail.text

    checked = invoke("templates", "check", *project.folders())
    assert checked.exit_code == 1
    assert "7 templates × 3 locales:" in checked.output  # noqa: RUF001
    assert f"{catalog}:" in checked.output and "untranslated: 'Hello,'" in checked.output


def test_init_refuses_an_existing_language_and_a_non_locale(project: Project) -> None:
    again = invoke("i18n", "init", "nl", "--locales-dir", str(project.locales))
    assert again.exit_code == 1 and "exists already" in again.output
    nonsense = invoke("i18n", "init", "dutch!", "--locales-dir", str(project.locales))
    assert nonsense.exit_code == 1 and "not a locale" in nonsense.output


def test_update_without_a_template_says_what_to_run(project: Project) -> None:
    (project.locales / "messages.pot").unlink()
    result = invoke("i18n", "update", "--locales-dir", str(project.locales))
    assert result.exit_code == 1
    assert "run `notifier i18n extract` first" in result.output
