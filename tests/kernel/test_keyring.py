"""Where the keys come from: never beside the database in production, loudly so in development."""

from __future__ import annotations

import json
import logging
import stat
from pathlib import Path

import pytest

from notifier import errors, keyring, settings
from tests.processes import notifier_env, refused, run
from tests.smtpd import free_port


def production_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A real relay configured and no key set: what a careless production start looks like."""
    env = notifier_env(
        database_url=f"sqlite:///{tmp_path / 'notifier.db'}",
        smtp_host="127.0.0.1",
        smtp_port=str(free_port()),
        smtp_tls="none",
        **extra,
    )
    del env["NOTIFIER_SECRET_KEY"], env["NOTIFIER_ENCRYPTION_KEY"]
    return env


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_production_refuses_keys_beside_the_database(tmp_path: Path, command: str) -> None:
    args = [command, "--port", str(free_port())] if command == "serve" else [command]
    message = refused(args, tmp_path, production_env(tmp_path))
    assert message.startswith("Error: NOTIFIER_SECRET_KEY: a real SMTP host (NOTIFIER_SMTP_HOST)")
    assert "NOTIFIER_KEY_FILE outside the database's folder" in message
    assert not (tmp_path / keyring.KEYS_FILE).exists()
    # One key set, the other missing: the message names the missing one.
    half = production_env(tmp_path) | {"NOTIFIER_SECRET_KEY": "s"}
    assert refused(args, tmp_path, half).startswith("Error: NOTIFIER_ENCRYPTION_KEY: ")


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_production_refuses_a_key_file_inside_the_database_folder(
    tmp_path: Path, command: str
) -> None:
    inside = tmp_path / "keys" / "notifier.keys"
    keyring.write_new(inside)
    args = [command, "--port", str(free_port())] if command == "serve" else [command]
    env = production_env(tmp_path, key_file=str(inside))
    assert refused(args, tmp_path, env).strip() == (
        f"Error: NOTIFIER_KEY_FILE: {inside} is inside the database's folder; "
        "keep the keys where a copy of the data does not reach"
    )


def test_production_takes_a_key_file_outside_the_database_folder(tmp_path: Path) -> None:
    data, secrets = tmp_path / "data", tmp_path / "secrets"
    data.mkdir()
    key_file = secrets / "notifier.keys"
    keyring.write_new(key_file)
    config = settings.load(
        database_url=f"sqlite:///{data / 'notifier.db'}", smtp_host="relay", key_file=key_file
    )
    keys = keyring.resolve(config)
    stored = json.loads(key_file.read_text())
    assert keys == keyring.Keys([stored["secret_key"]], [stored["encryption_key"]])
    assert list(data.iterdir()) == []
    # A key in the environment wins over the file's; the file supplies the other.
    chosen = config.model_copy(update={"encryption_key": "new-key,old-key"})
    assert keyring.resolve(chosen).encryption_keys == ["new-key", "old-key"]
    assert keyring.resolve(chosen).secret_keys == [stored["secret_key"]]


def test_a_missing_or_malformed_key_file_is_a_setting_error(tmp_path: Path) -> None:
    missing = tmp_path / "elsewhere" / "none.keys"
    config = settings.load(database_url="sqlite:///:memory:", smtp_host="relay", key_file=missing)
    with pytest.raises(errors.ConfigurationError, match="NOTIFIER_KEY_FILE: cannot read") as info:
        keyring.resolve(config)
    assert info.value.variable == "NOTIFIER_KEY_FILE"
    missing.parent.mkdir()
    missing.write_text('{"secret_key": "s"}')
    with pytest.raises(errors.ConfigurationError, match="not a keys file"):
        keyring.resolve(config)


def test_keys_new_writes_a_file_only_its_owner_reads_and_never_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "vault" / "notifier.keys"
    env = notifier_env()
    result = run(["keys", "new", str(path)], tmp_path, env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"wrote {path}; set NOTIFIER_KEY_FILE={path}"
    assert (mode(path), mode(path.parent)) == (0o600, 0o700)
    before = path.read_bytes()
    again = run(["keys", "new", str(path)], tmp_path, env)
    assert again.returncode == 1 and "exists already" in again.stderr
    assert path.read_bytes() == before


def test_development_keys_are_0600_and_every_start_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = settings.load(database_url=f"sqlite:///{tmp_path / 'notifier.db'}")
    with caplog.at_level(logging.WARNING, logger="notifier.keyring"):
        first = keyring.resolve(config)
        second = keyring.resolve(config)
    assert first == second
    assert mode(tmp_path / keyring.KEYS_FILE) == 0o600
    said = [record.getMessage() for record in caplog.records]
    assert len(said) == 2
    assert said[0].startswith(f"keys.development path={tmp_path / 'notifier.keys'} generated=true")
    assert said[1].startswith(f"keys.development path={tmp_path / 'notifier.keys'} generated=false")
    assert "production needs NOTIFIER_SECRET_KEY and NOTIFIER_ENCRYPTION_KEY" in said[0]


def test_a_read_only_command_makes_no_key_file_in_any_mode(tmp_path: Path) -> None:
    for smtp_host in (None, "relay"):
        config = settings.load(
            database_url=f"sqlite:///{tmp_path / 'notifier.db'}", smtp_host=smtp_host
        )
        keys = keyring.resolve(config, create=False)
        assert keys.secret_keys and keys.encryption_keys
        assert list(tmp_path.iterdir()) == []
