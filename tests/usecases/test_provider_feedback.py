"""Provider webhooks: SES through SNS (signed with our own test certificate), and Postmark."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from notifier.mail import sns
from notifier.service import Notifier
from tests import reports
from tests.asgi import api_client
from tests.conftest import event
from tests.smtpd import SmtpServer

TOPIC = "arn:aws:sns:eu-west-1:123456789012:ses-feedback"
POSTMARK_TOKEN = "pm-hook-secret"


def signing_key() -> tuple[rsa.RSAPrivateKey, bytes]:
    """An RSA key and a self-signed certificate for it, standing in for SNS's."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.eu-west-1.amazonaws.com")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    return key, certificate.public_bytes(serialization.Encoding.PEM)


KEY, CERTIFICATE = signing_key()


def sns_message(inner: dict[str, Any] | None, version: str = "2", **fields: str) -> dict[str, Any]:
    """An SNS HTTP(S) delivery as AWS documents it, signed the SNS way with the test key."""
    message: dict[str, Any] = {
        "Type": "Notification",
        "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
        "TopicArn": TOPIC,
        "Message": json.dumps(inner),
        "Timestamp": "2026-11-23T09:00:06.655Z",
        "SignatureVersion": version,
        "SigningCertURL": "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-test.pem",
        "UnsubscribeURL": "https://sns.eu-west-1.amazonaws.com/?Action=Unsubscribe&x=y",
        **fields,
    }
    algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()
    signature = KEY.sign(sns.canonical(message), padding.PKCS1v15(), algorithm)
    message["Signature"] = base64.b64encode(signature).decode()
    return message


def ses_bounce(
    message_id: str, bounce_type: str = "Permanent", status: str = "5.1.1"
) -> dict[str, Any]:
    """SES's bounce notification, as in the SES developer guide's example."""
    return {
        "notificationType": "Bounce",
        "bounce": {
            "bounceType": bounce_type,
            "reportingMTA": "dns; email.example.nl",
            "bouncedRecipients": [
                {
                    "emailAddress": "jan@example.nl",
                    "status": status,
                    "action": "failed",
                    "diagnosticCode": f"smtp; 550 {status} <jan@example.nl>... User unknown",
                }
            ],
            "bounceSubType": "General",
            "timestamp": "2026-11-23T09:00:05.237Z",
            "feedbackId": "00000138111222aa-33322211-cccc-cccc-cccc-ddddaaaa068a-000000",
            "remoteMtaIp": "192.0.2.5",
        },
        "mail": _ses_mail(message_id),
    }


def ses_complaint(message_id: str) -> dict[str, Any]:
    return {
        "notificationType": "Complaint",
        "complaint": {
            "userAgent": "ExampleCorp Feedback Loop (V0.01)",
            "complainedRecipients": [{"emailAddress": "jan@example.nl"}],
            "complaintFeedbackType": "abuse",
            "arrivalDate": "2026-11-23T09:10:00.000Z",
            "timestamp": "2026-11-23T09:10:01.000Z",
            "feedbackId": "000001378603177f-18c07c78-fa81-4a58-9dd1-fedc3cb8f49a-000000",
        },
        "mail": _ses_mail(message_id),
    }


def _ses_mail(message_id: str) -> dict[str, Any]:
    return {
        "timestamp": "2026-11-23T09:00:00.000Z",
        "source": "service@winparts.example",
        "sourceArn": "arn:aws:ses:eu-west-1:123456789012:identity/winparts.example",
        "sendingAccountId": "123456789012",
        "messageId": "0000014644fe5ef6-9a483358-9170-4cb4-a269-f5dcdf415321-000000",
        "destination": ["jan@example.nl"],
        "headersTruncated": False,
        "headers": [
            {"name": "From", "value": "Winparts <service@winparts.example>"},
            {"name": "To", "value": "Jan de Vries <jan@example.nl>"},
            {"name": "Message-ID", "value": message_id},
        ],
        "commonHeaders": {
            "from": ["Winparts <service@winparts.example>"],
            "to": ["Jan de Vries <jan@example.nl>"],
            "messageId": message_id,
            "subject": "Bedankt voor je bestelling WP-1001",
        },
    }


def postmark(record_type: str, kind: str, code: int, content: str) -> dict[str, Any]:
    """Postmark's bounce / spam complaint webhook, as in its documentation."""
    return {
        "RecordType": record_type,
        "MessageStream": "outbound",
        "ID": 4323372036854775807,
        "Type": kind,
        "TypeCode": code,
        "Name": "Hard bounce" if kind == "HardBounce" else "Spam complaint",
        "Tag": "",
        "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
        "Metadata": {},
        "ServerID": 23,
        "Description": "The server was unable to deliver your message (ex: unknown user).",
        "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
        "Email": "jan@example.nl",
        "From": "service@winparts.example",
        "BouncedAt": "2026-11-23T09:00:05.9070259Z",
        "DumpAvailable": True,
        "Inactive": True,
        "CanActivate": True,
        "Subject": "Bedankt voor je bestelling WP-1001",
        "Content": content,
    }


@pytest.fixture
def engine(make_engine: Callable[..., Notifier], tmp_path: Path) -> Notifier:
    cert = tmp_path / "sns.pem"
    cert.write_bytes(CERTIFICATE)
    return make_engine(
        ses_sns_cert_file=cert, ses_topic_arns=[TOPIC], postmark_webhook_token=POSTMARK_TOKEN
    )


@pytest.fixture
async def client(engine: Notifier) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(engine) as client:
        yield client


async def sent(engine: Notifier, smtp_server: SmtpServer) -> tuple[str, str]:
    accepted = engine.handle_event(event("order.placed"))
    await engine.dispatch_due()
    return accepted.body["messages"][0]["id"], str(smtp_server.received[-1].message["Message-ID"])


async def post_sns(client: httpx.AsyncClient, message: dict[str, Any]) -> httpx.Response:
    # SNS posts JSON as text/plain.
    return await client.post(
        "/v1/feedback/ses",
        content=json.dumps(message),
        headers={
            "content-type": "text/plain; charset=UTF-8",
            "x-amz-sns-message-type": message["Type"],
        },
    )


@pytest.mark.parametrize("version", ["1", "2"])
async def test_an_ses_permanent_bounce_bounces_the_message(
    engine: Notifier, client: httpx.AsyncClient, smtp_server: SmtpServer, version: str
) -> None:
    message_id, header = await sent(engine, smtp_server)
    answer = await post_sns(client, sns_message(ses_bounce(header), version))
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"status": "received", "kind": "hard_bounce"}
    assert engine.get_message(message_id).status == "bounced"
    assert reports.suppression_of(engine, "jan@example.nl") == "hard_bounce"


async def test_an_ses_transient_bounce_and_a_complaint(
    engine: Notifier, client: httpx.AsyncClient, smtp_server: SmtpServer
) -> None:
    message_id, header = await sent(engine, smtp_server)
    transient = await post_sns(client, sns_message(ses_bounce(header, "Transient", "4.2.2")))
    assert transient.json()["kind"] == "soft_bounce"
    message = engine.get_message(message_id)
    assert message.status == "sent" and (message.last_error or "").startswith("4.2.2")

    complaint = await post_sns(client, sns_message(ses_complaint(header)))
    assert complaint.json()["kind"] == "complaint"
    assert engine.choices.states("C42")["order_updates"] is False
    assert reports.suppression_of(engine, "jan@example.nl") == "complaint"


async def test_an_sns_message_that_does_not_verify_changes_nothing(
    engine: Notifier, client: httpx.AsyncClient, smtp_server: SmtpServer
) -> None:
    message_id, header = await sent(engine, smtp_server)
    forged = sns_message(ses_bounce(header))
    forged["Message"] = json.dumps(ses_bounce("<someone-else@winparts.example>"))
    assert (await post_sns(client, forged)).status_code == 401
    other_topic = sns_message(ses_bounce(header), TopicArn="arn:aws:sns:eu-west-1:1:other")
    assert (await post_sns(client, other_topic)).status_code == 401
    unsigned = sns_message(ses_bounce(header))
    unsigned["SignatureVersion"] = "3"
    assert (await post_sns(client, unsigned)).status_code == 401
    assert (await client.post("/v1/feedback/ses", content=b"{not json")).status_code == 422
    assert engine.get_message(message_id).status == "sent"


async def test_an_sns_subscription_is_kept_for_the_operator_to_confirm(
    engine: Notifier, client: httpx.AsyncClient
) -> None:
    url = "https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&Token=2336412f37"
    message = sns_message(
        None,
        Type="SubscriptionConfirmation",
        SubscribeURL=url,
        Token="2336412f37",
        Message="You have chosen to subscribe to the topic.",
    )
    answer = await post_sns(client, message)
    assert answer.status_code == 200 and answer.json()["kind"] == "subscription"
    [kept] = engine.feedback.recent()
    assert kept.detail is not None and url in kept.detail


async def test_postmark_bounce_and_spam_complaint(
    engine: Notifier, client: httpx.AsyncClient, smtp_server: SmtpServer
) -> None:
    message_id, header = await sent(engine, smtp_server)
    auth = ("postmark", POSTMARK_TOKEN)
    dump = reports.postfix_dsn("pm_bounce@pm-bounces.example", header).decode()
    bounce = await client.post(
        "/v1/feedback/postmark", json=postmark("Bounce", "HardBounce", 1, dump), auth=auth
    )
    assert bounce.status_code == 200 and bounce.json()["kind"] == "hard_bounce"
    assert engine.get_message(message_id).status == "bounced"
    assert reports.suppression_of(engine, "jan@example.nl") == "hard_bounce"

    abuse = reports.arf_complaint("pm_bounce@pm-bounces.example", header).decode()
    complaint = await client.post(
        "/v1/feedback/postmark",
        json=postmark("SpamComplaint", "SpamComplaint", 512, abuse),
        auth=auth,
    )
    assert complaint.json()["kind"] == "complaint"
    assert engine.choices.states("C42")["order_updates"] is False


async def test_postmark_without_its_password_or_an_unknown_provider(
    client: httpx.AsyncClient,
) -> None:
    body = postmark("Bounce", "HardBounce", 1, "")
    wrong = await client.post("/v1/feedback/postmark", json=body, auth=("postmark", "guess"))
    assert wrong.status_code == 401 and wrong.json()["error"] == "unauthorized"
    assert (await client.post("/v1/feedback/postmark", json=body)).status_code == 401
    assert (await client.post("/v1/feedback/sendgrid", json=body)).status_code == 404
