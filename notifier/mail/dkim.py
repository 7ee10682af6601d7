"""DKIM signatures (RFC 6376) on composed messages, with dkimpy.

The key is read and checked once, at startup, so a missing or malformed key
stops the process with an error naming ``NOTIFIER_DKIM_KEY_FILE`` instead of
failing every send later.
"""

from __future__ import annotations

import re
from pathlib import Path

import dkim  # type: ignore[import-untyped]
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from notifier import errors

SIGNED_HEADERS = (
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "Content-Type",
    "MIME-Version",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "List-Id",
    "Reply-To",
)
"""Signed whether present or not: an absent one is signed as absent, so it cannot be added later."""
OVERSIGNED = frozenset(
    {"From", "To", "Subject", "Date", "List-Unsubscribe", "List-Unsubscribe-Post"}
)
"""Listed in ``h=`` once more than present (RFC 6376 §8.15): a second copy added on the way,
which many readers would show or act on instead of ours, then breaks the signature."""
_HEADER_NAME = re.compile(rb"^([!-9;-~]+)[ \t]*:", re.MULTILINE)
MIN_KEY_BITS = 1024
"""RFC 8301: verifiers must reject shorter RSA keys. 2048 is what to generate."""
KEY_VARIABLE = "NOTIFIER_DKIM_KEY_FILE"
_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_DNS_NAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_SETTINGS = (
    ("NOTIFIER_DKIM_SELECTOR", "selector"),
    ("NOTIFIER_DKIM_DOMAIN", "domain"),
    (KEY_VARIABLE, "key_file"),
)


class DkimSigner:
    """Signs message bytes for one selector and domain with an RSA key (rsa-sha256).

    Canonicalization is relaxed/relaxed: it survives the header refolding and
    trailing-whitespace changes relays are allowed to make.
    """

    def __init__(self, selector: str, domain: str, private_key_pem: bytes) -> None:
        """``private_key_pem``: an unencrypted RSA key, PKCS#1 or PKCS#8 PEM.

        Raises ``ConfigurationError`` (naming ``NOTIFIER_DKIM_KEY_FILE``) for
        anything else, and for keys shorter than ``MIN_KEY_BITS``.
        """
        self.selector = _dns_name(selector.strip(), "NOTIFIER_DKIM_SELECTOR")
        self.domain = _dns_name(domain.strip().rstrip(".").lower(), "NOTIFIER_DKIM_DOMAIN")
        self._key = _pkcs1(private_key_pem)

    @classmethod
    def from_file(cls, selector: str, domain: str, key_file: Path) -> DkimSigner:
        try:
            pem = key_file.read_bytes()
        except OSError as exc:
            raise errors.ConfigurationError(
                f"cannot read the DKIM key file {str(key_file)!r}: {exc.strerror or exc}",
                variable=KEY_VARIABLE,
            ) from exc
        return cls(selector, domain, pem)

    def sign(self, message: bytes) -> bytes:
        """``message`` (CRLF line ends) with a DKIM-Signature header prepended.

        dkimpy stamps the signature with the system time (``t=``); it cannot
        be handed our clock, and verifiers only use it for expiry, which we
        do not set.
        """
        try:
            signature = dkim.sign(
                message,
                self.selector.encode("ascii"),
                self.domain.encode("ascii"),
                self._key,
                canonicalize=(b"relaxed", b"relaxed"),
                include_headers=signed_headers(message),
            )
        except dkim.DKIMException as exc:
            raise errors.NotifierError(f"DKIM signing failed: {exc}") from exc
        return bytes(signature) + message


def signed_headers(message: bytes) -> list[bytes]:
    """The ``h=`` list for ``message``: each of ``SIGNED_HEADERS`` as often as it is present
    (once when absent), the ``OVERSIGNED`` ones once more."""
    head = message.split(b"\r\n\r\n", 1)[0]
    present: dict[bytes, int] = {}
    for name in _HEADER_NAME.findall(head):
        present[name.lower()] = present.get(name.lower(), 0) + 1
    listed: list[bytes] = []
    for name in SIGNED_HEADERS:
        count = present.get(name.lower().encode("ascii"), 0)
        times = count + 1 if name in OVERSIGNED else max(count, 1)
        listed += [name.encode("ascii")] * times
    return listed


def configure(
    *, selector: str | None, domain: str | None, key_file: Path | None
) -> DkimSigner | None:
    """A signer when all three DKIM settings are given, None when none are.

    Only some of them is a mistake (mail would silently go out unsigned), so
    it raises ``ConfigurationError`` naming the first missing variable.
    """
    values = {"selector": selector, "domain": domain, "key_file": key_file}
    given = [variable for variable, name in _SETTINGS if values[name]]
    if not given:
        return None
    missing = [variable for variable, name in _SETTINGS if not values[name]]
    if missing:
        raise errors.ConfigurationError(
            f"DKIM signing needs {missing[0]} too (set: {', '.join(given)}), "
            "or none of the DKIM settings",
            variable=missing[0],
        )
    assert selector and domain and key_file
    return DkimSigner.from_file(selector, domain, key_file)


def _pkcs1(pem: bytes) -> bytes:
    """The key as PKCS#1 PEM with LF line ends: the one form dkimpy's own parser reads."""
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        # TypeError: the key is encrypted; ValueError: not a PEM key at all.
        raise errors.ConfigurationError(
            f"the DKIM key is not an unencrypted PEM private key: {exc}", variable=KEY_VARIABLE
        ) from exc
    if not isinstance(key, rsa.RSAPrivateKey):
        raise errors.ConfigurationError(
            f"the DKIM key must be an RSA key, not {type(key).__name__}", variable=KEY_VARIABLE
        )
    if key.key_size < MIN_KEY_BITS:
        raise errors.ConfigurationError(
            f"the DKIM key has {key.key_size} bits; at least {MIN_KEY_BITS} (2048 advised)",
            variable=KEY_VARIABLE,
        )
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def _dns_name(value: str, variable: str) -> str:
    """``value`` if it is a dot-separated run of DNS labels (ASCII; IDNs in their xn-- form)."""
    if not _DNS_NAME.fullmatch(value) or len(value) > 253:
        raise errors.ConfigurationError(
            f"{variable} must be a DNS name in ASCII (xn-- form for IDNs), got {value!r}",
            variable=variable,
        )
    return value
