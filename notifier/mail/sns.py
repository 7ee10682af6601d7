"""Verifying Amazon SNS message signatures (SignatureVersion 1 and 2) with a configured certificate.

SNS signs a canonical string of some of the message's fields (which ones
depends on ``Type``), each as ``name\\nvalue\\n`` in this order, with RSA:
SHA1 for version 1, SHA256 for version 2. The certificate is read from a
file the operator downloaded from the ``SigningCertURL`` once (and checked),
rather than fetched per message: a fetched certificate is only as good as
the check of the URL it came from, and notifier makes no outbound requests
for incoming ones.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from notifier import errors

NOTIFICATION_FIELDS = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
SUBSCRIPTION_FIELDS = (
    "Message",
    "MessageId",
    "SubscribeURL",
    "Timestamp",
    "Token",
    "TopicArn",
    "Type",
)
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {"1": hashes.SHA1, "2": hashes.SHA256}


def canonical(message: Mapping[str, Any]) -> bytes:
    """The string SNS signs for ``message``; fields it lacks (``Subject``) are left out."""
    names = NOTIFICATION_FIELDS if message.get("Type") == "Notification" else SUBSCRIPTION_FIELDS
    return "".join(
        f"{name}\n{message[name]}\n" for name in names if message.get(name) is not None
    ).encode("utf-8")


class SnsVerifier:
    """Checks SNS messages against the certificates of one PEM file (several while AWS rotates)."""

    def __init__(self, cert_file: Path, topic_arns: list[str]) -> None:
        try:
            certificates = x509.load_pem_x509_certificates(cert_file.read_bytes())
        except (OSError, ValueError) as exc:
            raise errors.ConfigurationError(
                f"cannot read the SNS signing certificate: {exc}",
                variable="NOTIFIER_SES_SNS_CERT_FILE",
            ) from exc
        self._keys = [cert.public_key() for cert in certificates]
        if not all(isinstance(key, rsa.RSAPublicKey) for key in self._keys):
            raise errors.ConfigurationError(
                "SNS signs with RSA keys", variable="NOTIFIER_SES_SNS_CERT_FILE"
            )
        self._topics = set(topic_arns)

    def verify(self, message: Mapping[str, Any]) -> None:
        """Raises ``Unauthorized`` unless ``message`` is signed by a configured certificate."""
        algorithm = _HASHES.get(str(message.get("SignatureVersion")))
        if algorithm is None:
            raise errors.Unauthorized("unknown SNS SignatureVersion")
        if self._topics and message.get("TopicArn") not in self._topics:
            raise errors.Unauthorized("not one of NOTIFIER_SES_TOPIC_ARNS")
        try:
            signature = base64.b64decode(str(message.get("Signature", "")), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise errors.Unauthorized("the SNS signature is not base64") from exc
        data = canonical(message)
        for key in self._keys:
            assert isinstance(key, rsa.RSAPublicKey)
            try:
                key.verify(signature, data, padding.PKCS1v15(), algorithm())
            except InvalidSignature:
                continue
            return
        raise errors.Unauthorized("the SNS signature does not verify")
