"""Typed settings read once from ``NOTIFIER_*`` environment variables.

A ``.env`` file or ``notifier.toml`` in the working directory may also supply
them. Errors name the variable so an operator knows what to fix.
"""

from __future__ import annotations

import difflib
import re
import secrets
from collections.abc import Mapping
from datetime import time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, IPvAnyNetwork, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from notifier import content, errors

PROJECT_DIR = content.PROJECT_DIR
_DURATION = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_duration(value: str | timedelta | int | float) -> timedelta:
    """Parse ``3d``, ``12h``, ``30m`` or ``0s`` (also plain seconds) into a timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float):
        return timedelta(seconds=value)
    match = _DURATION.match(value)
    if not match:
        raise ValueError(f"expected a duration like 3d, 12h, 30m or 0s, got {value!r}")
    try:
        return timedelta(**{_UNITS[match[2]]: int(match[1])})
    except OverflowError as exc:
        raise ValueError(f"duration too long: {value!r}") from exc


class SendWindow:
    """Local opening hours for mail that may wait: ``09:00-20:00``; ``00:00-24:00`` is always."""

    def __init__(self, start: time, end: time | None) -> None:
        self.start = start
        self.end = end  # None stands for 24:00, the end of the day

    @classmethod
    def parse(cls, value: str) -> SendWindow:
        match = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*", value)
        if not match:
            raise ValueError(f"expected HH:MM-HH:MM, got {value!r}")
        start_h, start_m, end_h, end_m = (int(group) for group in match.groups())
        if start_h > 23 or start_m > 59 or end_m > 59 or end_h > 24 or (end_h == 24 and end_m):
            raise ValueError(f"not a time of day in {value!r}")
        start = time(start_h, start_m)
        end = None if end_h == 24 else time(end_h, end_m)
        if end is not None and end <= start:
            raise ValueError(f"the window must end after it starts: {value!r}")
        return cls(start, end)

    @property
    def always(self) -> bool:
        return self.start == time(0, 0) and self.end is None

    def __str__(self) -> str:
        end = "24:00" if self.end is None else self.end.strftime("%H:%M")
        return f"{self.start.strftime('%H:%M')}-{end}"


class Settings(BaseSettings):
    """Every knob of notifier; names map to ``NOTIFIER_<FIELD>`` in upper case."""

    model_config = SettingsConfigDict(
        env_prefix="NOTIFIER_",
        env_file=".env",
        extra="ignore",
        toml_file="notifier.toml",
        arbitrary_types_allowed=True,
        populate_by_name=True,
    )

    database_url: str = "sqlite:///notifier.db"
    smtp_host: str | None = None
    smtp_port: int | None = None
    smtp_tls: Literal["tls", "starttls", "none"] = "starttls"
    smtp_allow_plaintext: bool = False
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_timeout: float = 30.0
    smtp_ca_file: Path | None = None
    bounce_domain: str | None = None
    """With it, envelope senders are VERP addresses ``bounce+<token>@<domain>``."""
    bounce_smtp_host: str = "127.0.0.1"
    bounce_smtp_port: int | None = Field(default=None, ge=1, le=65535)
    """With it, ``serve`` and ``worker`` run the bounce listener (SMTP) on this port."""
    webhook_url: str | None = None
    webhook_secret: str | None = None
    """``whsec_`` and base64: the Standard Webhooks signing key shared with the shop."""
    webhook_timeout: float = Field(default=10.0, gt=0)
    webhook_interval: float = Field(default=5.0, gt=0)
    ses_sns_cert_file: Path | None = None
    """The SNS signing certificate (PEM) that SES notifications must be signed with."""
    ses_topic_arns: Annotated[list[str], NoDecode] = Field(default_factory=list)
    postmark_webhook_token: str | None = None
    """The password of Postmark's webhook basic auth (any user name)."""
    dkim_selector: str | None = None
    dkim_domain: str | None = None
    dkim_key_file: Path | None = None
    smtp_connections: int = Field(default=8, ge=1, le=256)
    smtp_rate: float | None = Field(default=None, gt=0, le=100_000)
    """Messages per second per sending process (see ``delivery.pace``); unset, no limit."""
    smtp_rate_burst: int | None = Field(default=None, ge=1, le=100_000)
    from_: str = Field(default="Winparts <service@winparts.example>", alias="NOTIFIER_FROM")
    from_newsletter: str | None = None
    reply_to: str | None = None
    """Reply-To of the kinds that ask for a reply (``Kind.asks_reply``: the verification one)."""
    reply_to_kinds: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict)
    """``kind=address`` pairs, comma-separated: a kind's own Reply-To, over ``reply_to``."""
    base_url: str = "http://127.0.0.1:8025"
    api_tokens: Annotated[list[str], NoDecode] = Field(default_factory=list)
    secret_key: str | None = None
    encryption_key: str | None = None
    key_file: Path | None = None
    """A keys file (``notifier keys new``) kept outside the database's folder; production's
    alternative to the two key settings."""
    keystore_url: str | None = None
    """The key store's database (customers' data keys, see ``store.keystore``); unset:
    ``<database folder>-keys/keystore.db`` on SQLite, schema ``<schema>_keys`` on PostgreSQL."""
    timezone: str = "Europe/Amsterdam"
    default_locale: str = "nl"
    send_window: Annotated[SendWindow, NoDecode] = Field(
        default_factory=lambda: SendWindow.parse("09:00-20:00")
    )
    review_products_delay: Annotated[timedelta, NoDecode] = timedelta(days=3)
    review_service_delay: Annotated[timedelta, NoDecode] = timedelta(days=10)
    review_from: Literal["delivered", "shipped"] = "delivered"
    review_cap_days: int = Field(default=90, ge=0)
    retry_max_age: Annotated[timedelta, NoDecode] = timedelta(days=3)
    templates_dir: Path = content.TEMPLATES_DIR
    """The packaged templates when installed from a wheel, else the checkout's ``templates/``."""
    locales_dir: Path = content.LOCALES_DIR
    list_id_domain: str = "winparts.example"
    shop_name: str = "Winparts"
    company_name: str = "Winparts B.V."
    company_address: str = "Industrieweg 12, 3542 AD Utrecht"
    company_kvk: str = "12345678"
    shop_url: str = "https://www.winparts.example"
    review_products_url: str = "https://www.winparts.example/review/products?order={order_number}"
    review_service_url: str = "https://www.winparts.example/review/service?order={order_number}"
    retention_days: int = Field(default=90, ge=1)
    page_rate_limit: str = "120/minute"
    trusted_proxies: Annotated[list[IPvAnyNetwork], NoDecode] = Field(default_factory=list)
    """Peers (IPs or CIDRs, comma-separated) whose ``X-Forwarded-For`` is believed; default none."""
    access_log: bool = True
    """uvicorn's line per HTTP request; off behind a proxy that logs requests itself."""
    log_format: Literal["text", "json"] = "text"
    """``json``: every log line of ``serve`` and ``worker`` is one JSON object."""
    consent_text_version: str = "newsletter-2026-11"
    campaign_interval: float = Field(default=10.0, gt=0)
    render_processes: int | None = Field(default=None, ge=0, le=64)
    """Processes that render mail; None: one per usable CPU core, none on a single core."""
    render_timeout: float = Field(default=60.0, gt=0)
    """Seconds a chunk of mails may take in a render process before the pool is replaced."""
    batch_size: int = Field(default=200, ge=1, le=10_000)
    lease_seconds: int = Field(default=60, ge=10)
    """How long a claim holds a message; renewed while its worker works on it (the last resort)."""
    heartbeat_timeout: float = Field(default=10.0, ge=1)
    """Seconds of silence after which a worker is dead and its claimed mail is taken over."""
    poll_interval: float = Field(default=1.0, gt=0)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            env_settings,
            dotenv_settings,
            TomlConfigSettingsSource(settings_cls),
        )

    @field_validator("api_tokens", "ses_topic_arns", "trusted_proxies", mode="before")
    @classmethod
    def _split_tokens(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [token.strip() for token in value.split(",") if token.strip()]
        return value

    @field_validator("reply_to_kinds", mode="before")
    @classmethod
    def _split_pairs(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        pairs = {}
        for item in value.split(","):
            if not item.strip():
                continue
            kind, equals, address = item.partition("=")
            if not equals or not kind.strip() or not address.strip():
                raise ValueError(f"expected kind=address pairs, got {item.strip()!r}")
            pairs[kind.strip()] = address.strip()
        return pairs

    @field_validator("send_window", mode="before")
    @classmethod
    def _parse_window(cls, value: Any) -> Any:
        return SendWindow.parse(value) if isinstance(value, str) else value

    @field_validator(
        "review_products_delay", "review_service_delay", "retry_max_age", mode="before"
    )
    @classmethod
    def _parse_duration(cls, value: Any) -> Any:
        return parse_duration(value) if isinstance(value, str | int | float) else value

    @field_validator("webhook_secret")
    @classmethod
    def _webhook_secret(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("whsec_"):
            raise ValueError("expected the whsec_… secret shared with the shop")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("base_url", "shop_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def capture_mode(self) -> bool:
        """No SMTP host configured: mail goes to the embedded development inbox."""
        return not self.smtp_host

    @property
    def sqlite_path(self) -> Path | None:
        if not self.is_sqlite:
            return None
        path = self.database_url.split(":///", 1)[-1]
        return None if path in ("", ":memory:") else Path(path)

    @property
    def production(self) -> bool:
        """A real SMTP host: mail reaches customers, so keys may not lie beside the data."""
        return not self.capture_mode

    @property
    def insecure_base_url(self) -> bool:
        """Real mail with plain-http links: RFC 8058 one-click unsubscribe needs https."""
        return not self.capture_mode and self.base_url.startswith("http://")

    @property
    def data_dir(self) -> Path:
        """Where development-mode files live: beside the SQLite database."""
        path = self.sqlite_path
        return path.resolve().parent if path else Path.cwd()


def load(**overrides: Any) -> Settings:
    """Read the settings once; a malformed value raises ConfigurationError naming it."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "?"
        variable = (
            "NOTIFIER_FROM" if field in ("from_", "NOTIFIER_FROM") else f"NOTIFIER_{field.upper()}"
        )
        # A ValueError of ours says what is wrong; pydantic's "Value error, " adds nothing.
        cause = first.get("ctx", {}).get("error")
        message = str(cause) if first["type"] == "value_error" and cause else first["msg"]
        raise errors.ConfigurationError(f"{variable}: {message}", variable=variable) from exc


OTHER_VARIABLES = frozenset(
    {"NOTIFIER_SERVE_WORKERS", "NOTIFIER_LOG_LEVEL", "NOTIFIER_TEST_POSTGRES_URL"}
)
"""``NOTIFIER_*`` names that are not settings: ``serve --workers``, the level it hands its
processes, and the test suite's PostgreSQL."""


def known_variables() -> list[str]:
    """Every ``NOTIFIER_*`` name notifier reads."""
    names = [
        str(info.alias) if info.alias else f"NOTIFIER_{name.upper()}"
        for name, info in Settings.model_fields.items()
    ]
    return sorted({*names, *OTHER_VARIABLES})


def unknown_variables(environ: Mapping[str, str]) -> list[tuple[str, str | None]]:
    """Each ``NOTIFIER_*`` variable in ``environ`` that notifier does not read, with the
    closest known name (or None): a misspelled setting would otherwise pass silently.

    Names are compared without their common prefix, which would make any two look alike.
    """
    known = {name.removeprefix("NOTIFIER_"): name for name in known_variables()}
    unknown = sorted(
        {name.upper() for name in environ}  # pydantic-settings reads them in any case
        - set(known.values())
    )
    found: list[tuple[str, str | None]] = []
    for name in unknown:
        if name.startswith("NOTIFIER_"):
            close = difflib.get_close_matches(name.removeprefix("NOTIFIER_"), known, n=1)
            found.append((name, known[close[0]] if close else None))
    return found


def generate_secret() -> str:
    """A fresh random key, URL-safe, for development-mode secrets."""
    return secrets.token_urlsafe(32)
