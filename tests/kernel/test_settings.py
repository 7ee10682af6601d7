"""Settings from the environment: durations, send window, tokens, errors naming the variable."""

from __future__ import annotations

import os
from datetime import time, timedelta
from pathlib import Path

import pytest

from notifier import errors, settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No NOTIFIER_* variable, ``.env`` or ``notifier.toml`` of the developer's leaks in."""
    for name in list(os.environ):
        if name.startswith("NOTIFIER_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3d", timedelta(days=3)),
        ("10d", timedelta(days=10)),
        ("12h", timedelta(hours=12)),
        ("30m", timedelta(minutes=30)),
        ("45s", timedelta(seconds=45)),
        ("0s", timedelta(0)),
        ("0d", timedelta(0)),
        (" 7 d ", timedelta(days=7)),
        ("400d", timedelta(days=400)),
    ],
)
def test_durations(text: str, expected: timedelta) -> None:
    assert settings.parse_duration(text) == expected


@pytest.mark.parametrize(
    "value", [timedelta(hours=2), 7200, 7200.0], ids=["timedelta", "int", "float"]
)
def test_durations_from_python_values(value: timedelta | int | float) -> None:
    assert settings.parse_duration(value) == timedelta(hours=2)


@pytest.mark.parametrize(
    "text", ["", "d", "3", "3w", "3D", "-1d", "+1d", "1.5h", "3 days", "d3", "3dd", "3d12h", "soon"]
)
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        settings.parse_duration(text)


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("09:00-20:00", time(9, 0), time(20, 0)),
        ("08:30-17:45", time(8, 30), time(17, 45)),
        ("8:30-17:45", time(8, 30), time(17, 45)),
        (" 09:00 - 20:00 ", time(9, 0), time(20, 0)),
        ("00:00-06:00", time(0, 0), time(6, 0)),
        ("09:00-24:00", time(9, 0), None),
        ("00:00-24:00", time(0, 0), None),
        ("23:59-24:00", time(23, 59), None),
    ],
)
def test_send_windows(text: str, start: time, end: time | None) -> None:
    window = settings.SendWindow.parse(text)
    assert (window.start, window.end) == (start, end)
    assert window.always is (text == "00:00-24:00")
    assert settings.SendWindow.parse(str(window)).start == start


@pytest.mark.parametrize(
    "text",
    [
        "20:00-09:00",  # over midnight is not supported: say it, do not guess
        "09:00-09:00",
        "25:00-26:00",
        "24:00-24:00",
        "09:60-20:00",
        "09:00-20:60",
        "00:00-24:01",
        "9-17",
        "0900-2000",
        "09:00",
        "09:00-20:00-21:00",
        "09:00 to 20:00",
        "",
        "always",
    ],
)
def test_bad_send_windows(text: str) -> None:
    with pytest.raises(ValueError):
        settings.SendWindow.parse(text)


def test_defaults() -> None:
    loaded = settings.load()
    assert loaded.database_url == "sqlite:///notifier.db"
    assert loaded.smtp_tls == "starttls" and loaded.capture_mode
    assert loaded.from_ == "Winparts <service@winparts.example>"
    assert loaded.base_url == "http://127.0.0.1:8025"
    assert loaded.api_tokens == []
    assert str(loaded.send_window) == "09:00-20:00"
    assert loaded.review_products_delay == timedelta(days=3)
    assert loaded.review_service_delay == timedelta(days=10)
    assert loaded.review_from == "delivered"
    assert loaded.review_cap_days == 90
    assert loaded.timezone == "Europe/Amsterdam" and loaded.default_locale == "nl"


def test_environment_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFIER_API_TOKENS", " first , second,,third ,")
    monkeypatch.setenv("NOTIFIER_FROM", "Winparts Service <service@shop.example>")
    monkeypatch.setenv("NOTIFIER_FROM_NEWSLETTER", "Winparts Nieuws <nieuws@shop.example>")
    monkeypatch.setenv("NOTIFIER_SEND_WINDOW", "08:30-17:45")
    monkeypatch.setenv("NOTIFIER_REVIEW_PRODUCTS_DELAY", "12h")
    monkeypatch.setenv("NOTIFIER_REVIEW_SERVICE_DELAY", "30m")
    monkeypatch.setenv("NOTIFIER_REVIEW_FROM", "shipped")
    monkeypatch.setenv("NOTIFIER_REVIEW_CAP_DAYS", "0")
    monkeypatch.setenv("NOTIFIER_SMTP_ALLOW_PLAINTEXT", "1")
    monkeypatch.setenv("NOTIFIER_BASE_URL", "https://mail.shop.example/")
    loaded = settings.load()
    assert loaded.api_tokens == ["first", "second", "third"]
    assert loaded.from_ == "Winparts Service <service@shop.example>"
    assert loaded.from_newsletter == "Winparts Nieuws <nieuws@shop.example>"
    assert str(loaded.send_window) == "08:30-17:45"
    assert loaded.review_products_delay == timedelta(hours=12)
    assert loaded.review_service_delay == timedelta(minutes=30)
    assert loaded.review_from == "shipped"
    assert loaded.review_cap_days == 0
    assert loaded.smtp_allow_plaintext is True
    assert loaded.base_url == "https://mail.shop.example"


def test_reply_to_per_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "NOTIFIER_REPLY_TO_KINDS",
        "newsletter=Redactie <redactie@shop.example>, review_products = reviews@shop.example,",
    )
    assert settings.load().reply_to_kinds == {
        "newsletter": "Redactie <redactie@shop.example>",
        "review_products": "reviews@shop.example",
    }
    monkeypatch.setenv("NOTIFIER_REPLY_TO_KINDS", "redactie@shop.example")
    with pytest.raises(errors.ConfigurationError) as caught:
        settings.load()
    assert caught.value.variable == "NOTIFIER_REPLY_TO_KINDS"


def test_a_single_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFIER_API_TOKENS", "only-one")
    assert settings.load().api_tokens == ["only-one"]


def test_always_open_window_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFIER_SEND_WINDOW", "00:00-24:00")
    assert settings.load().send_window.always


def test_a_dotenv_file_is_read_and_the_environment_wins(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text("NOTIFIER_SHOP_NAME=Dotenv\nNOTIFIER_DEFAULT_LOCALE=en\n")
    monkeypatch.setenv("NOTIFIER_DEFAULT_LOCALE", "nl")
    loaded = settings.load()
    assert loaded.shop_name == "Dotenv"
    assert loaded.default_locale == "nl"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("NOTIFIER_REVIEW_PRODUCTS_DELAY", "soon"),
        ("NOTIFIER_REVIEW_SERVICE_DELAY", "10 days"),
        ("NOTIFIER_RETRY_MAX_AGE", "-1d"),
        ("NOTIFIER_SEND_WINDOW", "20:00-09:00"),
        ("NOTIFIER_SEND_WINDOW", "25:00-26:00"),
        ("NOTIFIER_SMTP_TLS", "ssl"),
        ("NOTIFIER_SMTP_PORT", "smtp"),
        ("NOTIFIER_SMTP_CONNECTIONS", "0"),
        ("NOTIFIER_TIMEZONE", "Europe/Atlantis"),
        ("NOTIFIER_TIMEZONE", "../../etc/passwd"),
        ("NOTIFIER_REVIEW_FROM", "paid"),
        ("NOTIFIER_REVIEW_CAP_DAYS", "-1"),
        ("NOTIFIER_REVIEW_CAP_DAYS", "ninety"),
        ("NOTIFIER_SMTP_ALLOW_PLAINTEXT", "perhaps"),
    ],
)
def test_a_bad_value_names_its_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(errors.ConfigurationError) as caught:
        settings.load()
    assert caught.value.variable == variable
    assert caught.value.message.startswith(f"{variable}:")


@pytest.mark.parametrize("value", ["1000000000d", "99999999999999999999s"])
def test_a_huge_duration_names_its_variable(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("NOTIFIER_REVIEW_PRODUCTS_DELAY", value)
    with pytest.raises(errors.ConfigurationError) as caught:
        settings.load()
    assert caught.value.variable == "NOTIFIER_REVIEW_PRODUCTS_DELAY"


def test_overrides_are_checked_like_the_environment() -> None:
    with pytest.raises(errors.ConfigurationError) as caught:
        settings.load(send_window="20:00-09:00")
    assert caught.value.variable == "NOTIFIER_SEND_WINDOW"
    assert settings.load(review_products_delay="12h").review_products_delay == timedelta(hours=12)


def test_settings_properties() -> None:
    loaded = settings.load(database_url="sqlite:////var/lib/notifier/notifier.db")
    assert loaded.is_sqlite and loaded.sqlite_path == Path("/var/lib/notifier/notifier.db")
    assert loaded.data_dir == Path("/var/lib/notifier")
    postgres = settings.load(database_url="postgresql+psycopg://db/notifier", smtp_host="smtp.x")
    assert not postgres.is_sqlite and postgres.sqlite_path is None and not postgres.capture_mode
    assert settings.load(database_url="sqlite:///:memory:").sqlite_path is None
    assert str(settings.load().zone) == "Europe/Amsterdam"


def test_unknown_variables_are_named_with_the_closest_known_one() -> None:
    environ = {
        "NOTIFIER_SMPT_HOST": "relay",
        "notifier_databse_url": "x",
        "NOTIFIER_XYZZY": "",
        "NOTIFIER_SMTP_HOST": "relay",
        "NOTIFIER_SERVE_WORKERS": "2",
        "HOME": "/root",
    }
    assert settings.unknown_variables(environ) == [
        ("NOTIFIER_DATABSE_URL", "NOTIFIER_DATABASE_URL"),
        ("NOTIFIER_SMPT_HOST", "NOTIFIER_SMTP_HOST"),
        ("NOTIFIER_XYZZY", None),
    ]


@pytest.mark.parametrize(
    ("smtp_host", "base_url", "insecure"),
    [
        ("relay.example", "http://mail.example", True),
        ("relay.example", "https://mail.example", False),
        (None, "http://127.0.0.1:8025", False),  # the capture inbox: nothing leaves
    ],
)
def test_plain_http_links_with_a_real_relay_are_insecure(
    smtp_host: str | None, base_url: str, insecure: bool
) -> None:
    loaded = settings.load(smtp_host=smtp_host, base_url=base_url)
    assert loaded.insecure_base_url is insecure
