"""``POST /v1/feedback/{provider}``: a provider's webhook, authenticated, read, applied.

Each provider proves itself its own way: SES through SNS signs every
message (checked against ``NOTIFIER_SES_SNS_CERT_FILE``), Postmark sends
basic auth whose password is ``NOTIFIER_POSTMARK_WEBHOOK_TOKEN``. A provider
without its setting is not offered (404). What the event says is applied
by ``Feedback.apply``, the same rules as for a DSN by mail.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
from typing import TYPE_CHECKING, Any

from notifier import errors
from notifier.mail import providers, reports
from notifier.usecases.feedback import Feedback

if TYPE_CHECKING:
    from notifier.mail.sns import SnsVerifier


class ProviderFeedback:
    def __init__(
        self, feedback: Feedback, sns: SnsVerifier | None, postmark_token: str | None
    ) -> None:
        self._feedback = feedback
        self._sns = sns
        self._postmark_token = postmark_token

    def receive(self, provider: str, body: bytes, authorization: str | None) -> str:
        """Authenticate and apply one provider event; returns the kind it was taken for."""
        if provider == providers.SES and self._sns is not None:
            return self._ses(_json(body, provider))
        if provider == providers.POSTMARK and self._postmark_token is not None:
            self._check_basic_auth(authorization)
            event = providers.postmark(providers.require_object(_json(body, provider), provider))
            return self._apply(provider, event, body)
        raise errors.NotFound(f"no feedback from {provider!r} is configured")

    def _ses(self, payload: object) -> str:
        message = providers.require_object(payload, providers.SES)
        assert self._sns is not None
        self._sns.verify(message)
        kind = message.get("Type")
        if kind == "SubscriptionConfirmation":
            subscribe = reports.Report(
                providers.SUBSCRIPTION, diagnostic=f"confirm: {message.get('SubscribeURL', '')}"
            )
            return self._feedback.apply(providers.SES, subscribe, (), None)
        if kind != "Notification":
            return reports.NOTICE
        inner = _json(str(message.get("Message", "")).encode(), providers.SES)
        event = providers.ses(providers.require_object(inner, providers.SES))
        return self._apply(providers.SES, event, str(message.get("Message", "")).encode())

    def _apply(self, provider: str, event: providers.Event, raw: bytes) -> str:
        return self._feedback.apply(provider, event.report, event.message_ids, raw)

    def _check_basic_auth(self, authorization: str | None) -> None:
        assert self._postmark_token is not None
        scheme, _, encoded = (authorization or "").partition(" ")
        try:
            _, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            password = ""
        expected = self._postmark_token.encode()
        if scheme.lower() != "basic" or not hmac.compare_digest(password.encode(), expected):
            raise errors.Unauthorized("Postmark's webhook basic auth does not match")


def _json(body: bytes, provider: str) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise errors.InvalidInput(f"a {provider} event must be JSON", "body") from exc
