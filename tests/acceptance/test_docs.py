"""The operator's and the marketer's guides hold to the product they describe.

docs/deployment.md is copied into servers by hand, so every setting it names
must be one notifier reads, its systemd units must be units, and the commands
they start must exist with the options written. docs/templates.md promises a
change of copy in at most five steps, shown with screenshots that must exist.
"""

from __future__ import annotations

import configparser
import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from notifier import cli
from notifier.settings import PROJECT_DIR, known_variables

DOCS = PROJECT_DIR / "docs"
DEPLOYMENT = DOCS / "deployment.md"
TEMPLATES = DOCS / "templates.md"

MISSPELT = "NOTIFIER_SMPT_HOST"
"""The misspelling deployment.md shows being warned about: the one name meant not to exist."""


SETTINGS = "## Settings and keys: `/etc/notifier/notifier.env`"


def section(path: Path, heading: str) -> str:
    """The text under ``heading`` up to the next heading of the same or a higher level.

    A ``#`` line inside a fenced block is a shell comment, not a heading.
    """
    level = len(heading.split(" ", 1)[0])
    lines, inside, fenced = [], False, False
    for line in path.read_text(encoding="utf-8").splitlines():
        fenced ^= line.startswith("```")
        marks = len(line) - len(line.lstrip("#"))
        if not fenced and line == heading:
            inside = True
        elif inside and not fenced and 0 < marks <= level and line[marks : marks + 1] == " ":
            break
        elif inside:
            lines.append(line)
    assert inside, f"no {heading!r} in {path}"
    return "\n".join(lines)


def units() -> list[configparser.ConfigParser]:
    """The ``ini`` blocks of deployment.md headed by a path under /etc/systemd, each parsed."""
    text = DEPLOYMENT.read_text(encoding="utf-8")
    blocks = re.findall(r"```ini\n(# /etc/systemd/system/.*?)```", text, re.S)
    parsed = []
    for block in blocks:
        unit = configparser.ConfigParser(strict=False, interpolation=None)
        unit.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys are cased
        unit.read_string(block)
        parsed.append(unit)
    return parsed


def test_every_setting_the_deployment_guide_names_is_one_notifier_reads() -> None:
    named = set(re.findall(r"\bNOTIFIER_[A-Z0-9_]+", DEPLOYMENT.read_text(encoding="utf-8")))
    assert MISSPELT in named, "the guide no longer shows the misspelling warning"
    assert named - {MISSPELT} <= set(known_variables()), sorted(
        named - {MISSPELT} - set(known_variables())
    )


@pytest.mark.parametrize(
    "heading",
    [
        "## systemd units",
        "### PostgreSQL with TLS",
        "### The relay: STARTTLS and credentials",
        SETTINGS,
        "## Reverse proxy (nginx)",
        "## Backups",
        "## Upgrading",
    ],
)
def test_the_deployment_guide_has_each_section_the_operator_needs(heading: str) -> None:
    assert section(DEPLOYMENT, heading).strip()


def test_the_guide_covers_secret_key_files_trusted_proxies_and_db_upgrade() -> None:
    assert "NOTIFIER_KEY_FILE" in section(DEPLOYMENT, SETTINGS)
    assert "NOTIFIER_TRUSTED_PROXIES" in section(DEPLOYMENT, "## Reverse proxy (nginx)")
    assert "notifier db upgrade" in " ".join(section(DEPLOYMENT, "## Upgrading").split())
    backups = section(DEPLOYMENT, "## Backups")
    assert "database" in backups.lower() and "key store" in backups.lower()


def test_the_systemd_units_start_serve_and_worker_with_options_that_exist() -> None:
    started = []
    for unit in units():
        assert {"Unit", "Service", "Install"} <= set(unit.sections()), unit.sections()
        assert unit["Install"]["WantedBy"] == "multi-user.target"
        # A bad setting exits 2 (a configuration error): restarting would loop.
        assert unit["Service"]["RestartPreventExitStatus"] == "2"
        program, *args = shlex.split(unit["Service"]["ExecStart"])
        assert Path(program).name == "notifier", program
        # --help is eager, but an option the command lacks still fails the parse.
        result = CliRunner().invoke(cli.main, [*args, "--help"])
        assert result.exit_code == 0, (args, result.output)
        started.append(args[0])
    assert sorted(started) == ["serve", "worker"]


WALKTHROUGH = "## Change the copy"


def test_a_change_of_copy_in_both_languages_takes_at_most_five_steps() -> None:
    steps = re.findall(r"^(\d+)\. ", section(TEMPLATES, WALKTHROUGH), re.M)
    assert steps, f"no numbered steps under {WALKTHROUGH!r}"
    assert [int(step) for step in steps] == list(range(1, len(steps) + 1)), steps
    assert len(steps) <= 5, steps


def test_every_image_the_marketers_guide_shows_exists() -> None:
    images = re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", TEMPLATES.read_text(encoding="utf-8"))
    assert any(image in section(TEMPLATES, WALKTHROUGH) for image in images), (
        "the walkthrough shows no screenshot of the preview"
    )
    missing = [image for image in images if not (TEMPLATES.parent / image).is_file()]
    assert missing == [], missing
