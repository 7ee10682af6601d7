"""``X-Forwarded-For`` believed only from ``NOTIFIER_TRUSTED_PROXIES``: consent IP, rate limit."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

import httpx
import pytest

from notifier.mail import tokens
from notifier.service import Notifier
from notifier.web import pages
from notifier.web.app import create_app
from notifier.web.proxies import TrustedProxies, client_address
from tests.conftest import event
from tests.links import generation
from tests.served import serving
from tests.smtpd import free_port

CLIENT = "198.51.100.7"


def proxies(*networks: str) -> TrustedProxies:
    return TrustedProxies(
        lambda scope, receive, send: None,  # type: ignore[arg-type,return-value]
        [ipaddress.ip_network(network) for network in networks],
    )


@pytest.mark.parametrize(
    ("hops", "peer", "trusted", "client"),
    [
        ([CLIENT], "10.0.0.1", ["10.0.0.0/8"], CLIENT),
        # A client's own header before the proxy's hop is not believed past the first stranger.
        (["6.6.6.6", CLIENT], "10.0.0.1", ["10.0.0.0/8"], CLIENT),
        # Chained proxies, each trusted, are skipped.
        (["6.6.6.6", CLIENT, "10.0.0.2"], "10.0.0.1", ["10.0.0.0/8"], CLIENT),
        (["10.0.0.3", "10.0.0.2"], "10.0.0.1", ["10.0.0.0/8"], "10.0.0.3"),
        (["not-an-ip", "10.0.0.2"], "10.0.0.1", ["10.0.0.0/8"], "10.0.0.2"),
        (["2001:db8::7"], "::1", ["::1"], "2001:db8::7"),
    ],
)
def test_the_client_is_the_first_untrusted_hop_from_the_right(
    hops: list[str], peer: str, trusted: list[str], client: str
) -> None:
    assert client_address(hops, peer, proxies(*trusted)) == client


def test_the_setting_takes_ips_and_cidrs(make_engine: Callable[..., Notifier]) -> None:
    engine = make_engine(trusted_proxies="127.0.0.1, 10.0.0.0/8,::1")
    assert [str(n) for n in engine.settings.trusted_proxies] == [
        "127.0.0.1/32",
        "10.0.0.0/8",
        "::1/128",
    ]
    assert make_engine().settings.trusted_proxies == []


def confirm_token(engine: Notifier) -> str:
    """A confirm link's token as the engine mails it, without a mail server to receive it."""
    engine.handle_event(event("newsletter.subscribed"))
    # Arrangement: the token names the customer's generation (tests.links reads it stored).
    current = generation(engine, "C42")
    return engine.confirm_tokens.issue(tokens.Claims("C42", "newsletter", "nl", current))


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(("trusted", "recorded"), [(None, "127.0.0.1"), ("127.0.0.1", CLIENT)])
def test_consent_ip_over_real_http(
    make_engine: Callable[..., Notifier], trusted: str | None, recorded: str
) -> None:
    engine = make_engine(**({"trusted_proxies": trusted} if trusted else {}))
    token = confirm_token(engine)
    app = create_app(engine, ["test-token"], run_worker=False)
    with serving(app, free_port()) as base:
        answer = httpx.post(
            f"{base}/confirm/{token}",
            data={"csrf": pages.Csrf(engine.secret_key).issue(token)},
            headers={"X-Forwarded-For": f"6.6.6.6, {CLIENT}"},
        )
    assert answer.status_code == 200, answer.text
    [consent] = engine.privacy.export("C42")["consents"]
    assert consent["ip"] == recorded


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_rate_limit_over_real_http(make_engine: Callable[..., Notifier]) -> None:
    """Untrusted, every forged address counts as the peer's; trusted, each client has its own."""
    for trusted, limited in ((None, True), ("127.0.0.1", False)):
        engine = make_engine(
            page_rate_limit="3/minute", **({"trusted_proxies": trusted} if trusted else {})
        )
        token = confirm_token(engine)
        app = create_app(engine, ["test-token"], run_worker=False)
        with serving(app, free_port()) as base:
            codes = [
                httpx.get(
                    f"{base}/confirm/{token}", headers={"X-Forwarded-For": f"203.0.113.{n}"}
                ).status_code
                for n in range(6)
            ]
            again = [
                httpx.get(
                    f"{base}/confirm/{token}", headers={"X-Forwarded-For": "203.0.113.200"}
                ).status_code
                for _ in range(4)
            ]
        if limited:
            assert codes == [200, 200, 200, 429, 429, 429]
        else:
            assert codes == [200] * 6
            assert again == [200, 200, 200, 429]  # one client is still limited
