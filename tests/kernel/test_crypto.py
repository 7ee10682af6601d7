"""Personal data at rest: authenticated encryption, key rotation, blind indexes."""

from __future__ import annotations

import base64

import pytest

from notifier import crypto, errors
from notifier.crypto import Sealer

OLD_KEY = crypto.new_key()
NEW_KEY = crypto.new_key()
INDEX_KEY = "index-secret"


@pytest.fixture
def sealer() -> Sealer:
    return Sealer([OLD_KEY], INDEX_KEY)


@pytest.mark.parametrize(
    "plain",
    ["jan@example.nl", "Jöns Åberg", "", "x" * 100_000, "line\r\nbreak\x00nul", "😀 emoji"],
    ids=["email", "non-ascii", "empty", "long", "control", "emoji"],
)
def test_seal_and_open_round_trip(sealer: Sealer, plain: str) -> None:
    sealed = sealer.seal_text(plain)
    assert isinstance(sealed, bytes)
    assert sealer.open_text(sealed) == plain


def test_json_round_trip(sealer: Sealer) -> None:
    value = {"name": "Jan de Vries", "lines": [{"sku": "BRK-221", "qty": 2}], "note": "ü"}
    assert sealer.open_json(sealer.seal_json(value)) == value


def test_the_plaintext_is_not_in_the_sealed_bytes(sealer: Sealer) -> None:
    plain = "jan.de.vries@example.nl"
    sealed = sealer.seal_text(plain)
    for form in (plain.encode(), plain.upper().encode(), base64.b64encode(plain.encode())):
        assert form not in sealed
    assert plain.encode() not in base64.urlsafe_b64decode(sealed)


def test_sealing_twice_gives_different_bytes(sealer: Sealer) -> None:
    assert sealer.seal_text("jan@example.nl") != sealer.seal_text("jan@example.nl")


@pytest.mark.parametrize("position", [0, 10, 30, 60, -40, -1])
def test_a_tampered_ciphertext_is_refused(sealer: Sealer, position: int) -> None:
    raw = bytearray(base64.urlsafe_b64decode(sealer.seal_text("jan@example.nl")))
    raw[position] ^= 0x01
    tampered = base64.urlsafe_b64encode(bytes(raw))
    with pytest.raises(errors.ConfigurationError) as caught:
        sealer.open(tampered)
    assert caught.value.variable == "NOTIFIER_ENCRYPTION_KEY"


@pytest.mark.parametrize(
    "garbage",
    [b"", b"not a token", b"gAAAAA", b"\xff\xfe"],
    ids=["empty", "text", "short", "bytes"],
)
def test_garbage_is_refused(sealer: Sealer, garbage: bytes) -> None:
    with pytest.raises(errors.ConfigurationError):
        sealer.open(garbage)


def test_a_truncated_ciphertext_is_refused(sealer: Sealer) -> None:
    sealed = sealer.seal_text("jan@example.nl")
    with pytest.raises(errors.ConfigurationError):
        sealer.open(sealed[:-4])


def test_another_key_cannot_open(sealer: Sealer) -> None:
    sealed = sealer.seal_text("jan@example.nl")
    with pytest.raises(errors.ConfigurationError):
        Sealer([NEW_KEY], INDEX_KEY).open(sealed)


def test_rotation_new_key_first_old_key_still_opens() -> None:
    before = Sealer([OLD_KEY], INDEX_KEY)
    old_sealed = before.seal_text("jan@example.nl")
    rotated = Sealer([NEW_KEY, OLD_KEY], INDEX_KEY)
    assert rotated.open_text(old_sealed) == "jan@example.nl"
    assert rotated.needs_rotation(old_sealed)

    new_sealed = rotated.seal_text("piet@example.nl")
    assert not rotated.needs_rotation(new_sealed)
    assert Sealer([NEW_KEY], INDEX_KEY).open_text(new_sealed) == "piet@example.nl"
    with pytest.raises(errors.ConfigurationError):
        before.open(new_sealed)  # sealed with the first key, which the old sealer lacks


def test_rotate_re_encrypts_with_the_first_key() -> None:
    old_sealed = Sealer([OLD_KEY], INDEX_KEY).seal_text("jan@example.nl")
    rotated = Sealer([NEW_KEY, OLD_KEY], INDEX_KEY)
    resealed = rotated.rotate(old_sealed)
    assert resealed != old_sealed
    assert not rotated.needs_rotation(resealed)
    # Once everything is rotated the old key can go.
    assert Sealer([NEW_KEY], INDEX_KEY).open_text(resealed) == "jan@example.nl"


def test_rotate_refuses_what_no_key_opens() -> None:
    foreign = Sealer([crypto.new_key()], INDEX_KEY).seal_text("jan@example.nl")
    with pytest.raises(errors.ConfigurationError) as caught:
        Sealer([NEW_KEY, OLD_KEY], INDEX_KEY).rotate(foreign)
    assert caught.value.variable == "NOTIFIER_ENCRYPTION_KEY"


@pytest.mark.parametrize("keys", [[], ["not-a-fernet-key"], [OLD_KEY, "short"], ["ü" * 44]])
def test_bad_keys_are_a_configuration_error(keys: list[str]) -> None:
    with pytest.raises(errors.ConfigurationError) as caught:
        Sealer(keys, INDEX_KEY)
    assert caught.value.variable == "NOTIFIER_ENCRYPTION_KEY"


def test_keys_are_trimmed() -> None:
    sealed = Sealer([OLD_KEY], INDEX_KEY).seal_text("x")
    assert Sealer([f"  {OLD_KEY}\n"], INDEX_KEY).open_text(sealed) == "x"


@pytest.mark.parametrize(
    "variant",
    [
        "jan@example.nl",
        "Jan@Example.NL",
        "JAN@EXAMPLE.NL",
        "  jan@example.nl",
        "jan@example.nl \n",
        "\tJan@example.nl\t",
    ],
)
def test_blind_index_is_equal_for_case_and_whitespace_variants(
    sealer: Sealer, variant: str
) -> None:
    assert sealer.blind_index(variant) == sealer.blind_index("jan@example.nl")


@pytest.mark.parametrize(
    "other",
    [
        "piet@example.nl",
        "jan@example.com",
        "jan@example.nl.evil",
        "jan+shop@example.nl",
        "jan.@example.nl",
        "jan@exampie.nl",
        "",
    ],
)
def test_blind_index_differs_for_other_addresses(sealer: Sealer, other: str) -> None:
    assert sealer.blind_index(other) != sealer.blind_index("jan@example.nl")


def test_blind_index_depends_on_the_key_and_hides_the_address(sealer: Sealer) -> None:
    index = sealer.blind_index("jan@example.nl")
    assert index == Sealer([NEW_KEY], INDEX_KEY).blind_index("jan@example.nl")
    assert index != Sealer([OLD_KEY], "another-index-key").blind_index("jan@example.nl")
    assert "jan" not in index and "example" not in index
    assert len(index) == 43 and "=" not in index  # 32 bytes, url-safe base64, unpadded
