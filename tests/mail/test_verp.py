"""VERP envelope senders: each mail's MAIL FROM names its message, signed; headers unchanged."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from notifier import errors
from notifier.mail.verp import VerpSigner
from notifier.service import Notifier
from tests.conftest import event
from tests.smtpd import SmtpServer


def test_an_address_reads_back_to_its_ref_whatever_the_case() -> None:
    signer = VerpSigner(["new-key", "old-key"], "Bounces.Winparts.example")
    ref = "0123456789abcdef0123456789abcdef"
    address = signer.address(ref)
    assert address.startswith("bounce+") and address.endswith("@bounces.winparts.example")
    assert len(address.split("@")[0]) <= 64
    assert signer.read(address) == ref
    assert signer.read(f"<{address.upper()}>") == ref
    older = VerpSigner(["old-key"], "bounces.winparts.example").address(ref)
    assert signer.read(older) == ref, "an address signed with an older key still verifies"


@pytest.mark.parametrize(
    "address",
    [
        "bounce+0123456789abcdef0123456789abcdef-00000000000000000000@bounces.winparts.example",
        "service@winparts.example",
        "bounce+0123456789abcdef0123456789abcdef@bounces.winparts.example",
        "",
    ],
)
def test_a_forged_or_foreign_address_is_refused(address: str) -> None:
    signer = VerpSigner(["key"], "bounces.winparts.example")
    with pytest.raises(errors.BadToken):
        signer.read(address)


def test_an_address_of_another_domain_is_refused() -> None:
    address = VerpSigner(["key"], "a.example").address("0" * 32)
    with pytest.raises(errors.BadToken):
        VerpSigner(["key"], "b.example").read(address)


async def test_mail_goes_out_with_a_verp_sender_and_the_same_headers(
    make_engine: Callable[..., Notifier], smtp_server: SmtpServer
) -> None:
    engine = make_engine(bounce_domain="bounces.winparts.example")
    engine.handle_event(event("order.placed"))
    assert await engine.dispatch_due() == 1
    [mail] = smtp_server.received
    assert mail.sender.startswith("bounce+") and mail.sender.endswith("@bounces.winparts.example")
    assert mail.message["From"] == "Winparts <service@winparts.example>"
    ref = VerpSigner(["test-secret-key"], "bounces.winparts.example").read(mail.sender)
    assert mail.message["Message-ID"] == f"<{ref}@winparts.example>"


async def test_without_a_bounce_domain_the_sender_is_the_from_address(
    engine: Notifier, smtp_server: SmtpServer
) -> None:
    engine.handle_event(event("order.placed"))
    await engine.dispatch_due()
    assert smtp_server.received[0].sender == "service@winparts.example"
