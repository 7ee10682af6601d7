"""Signed link tokens: they round-trip, and nothing forged, altered, foreign or old is accepted."""

from __future__ import annotations

import hashlib
import string
import time
from datetime import timedelta

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from notifier import errors
from notifier.mail import tokens
from notifier.mail.tokens import Claims, Signer

KEY = "current-secret"
OLD_KEY = "previous-secret"
CLAIMS = Claims(customer_id="C42", category="reviews", locale="nl")
TOKEN_ALPHABET = string.ascii_letters + string.digits + "-_."


@pytest.fixture
def signer() -> Signer:
    return Signer([KEY], tokens.PREFERENCES)


@pytest.fixture
def token(signer: Signer) -> str:
    return signer.issue(CLAIMS)


def refused(signer: Signer, token: str, max_age: timedelta = tokens.LINK_LIFETIME) -> bool:
    try:
        signer.read(token, max_age)
    except errors.BadToken:
        return True
    return False


def foreign_token(
    payload: object, *, key: str = KEY, purpose: str = tokens.PREFERENCES, age: float = 0.0
) -> str:
    """A token made with itsdangerous directly: any payload, any key, issued ``age`` seconds ago."""

    class Backdated(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time() - age)

    serializer = URLSafeTimedSerializer(
        key,
        salt=purpose,
        signer=Backdated,
        signer_kwargs={"digest_method": hashlib.sha256},
    )
    return serializer.dumps(payload)


@pytest.mark.parametrize(
    "claims",
    [
        CLAIMS,
        Claims("C-ü-42", "newsletter", "nl_BE"),
        Claims("x" * 200, "order_updates", "en"),
        Claims("", "", ""),
        Claims('a."b"\n', "reviews", "en"),
    ],
)
@pytest.mark.parametrize("purpose", [tokens.PREFERENCES, tokens.CONFIRM])
def test_issue_and_read_round_trip(claims: Claims, purpose: str) -> None:
    signer = Signer([KEY], purpose)
    token = signer.issue(claims)
    assert set(token) <= set(TOKEN_ALPHABET)  # safe in a URL path without escaping
    assert signer.read(token) == claims


def test_every_single_character_substitution_is_refused(signer: Signer, token: str) -> None:
    accepted = [
        (position, char)
        for position in range(len(token))
        for char in TOKEN_ALPHABET
        if char != token[position]
        and not refused(signer, token[:position] + char + token[position + 1 :])
    ]
    assert accepted == []


def test_changing_the_last_character_is_refused(signer: Signer, token: str) -> None:
    """The signature's last base64 character has 2 unused bits that itsdangerous ignores."""
    accepted = [
        char
        for char in TOKEN_ALPHABET + "="
        if char != token[-1] and not refused(signer, token[:-1] + char)
    ]
    assert accepted == []


@pytest.mark.parametrize("junk", ["=", "==", "::", "  ", "\r\n", "é", "\x80", "\u2028"])
def test_junk_in_the_signature_is_refused(signer: Signer, token: str, junk: str) -> None:
    """itsdangerous's base64 decoding skips stray characters and padding; the token must not."""
    signature = token.rindex(".") + 1
    assert refused(signer, token + junk)
    assert refused(signer, token[:signature] + junk + token[signature:])
    assert refused(signer, token[: signature + 10] + junk + token[signature + 10 :])


@pytest.mark.parametrize("keep", [0, 1, 10, 30, -44, -43, -2, -1])
def test_a_truncated_token_is_refused(signer: Signer, token: str, keep: int) -> None:
    assert refused(signer, token[:keep])


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t + "A",
        lambda t: t + ".",
        lambda t: "." + t,
        lambda t: " " + t,
        lambda t: t.upper(),
        lambda t: t.replace(".", "", 1),
        lambda t: t.rsplit(".", 1)[0],
        lambda t: t.split(".", 1)[1],
        lambda t: t[::-1],
        lambda t: t + t,
    ],
    ids=[
        "append",
        "dot",
        "leading-dot",
        "leading-space",
        "upper",
        "join",
        "no-signature",
        "no-payload",
        "reversed",
        "doubled",
    ],
)
def test_other_alterations_are_refused(signer: Signer, token: str, mangle: object) -> None:
    assert callable(mangle)
    assert refused(signer, mangle(token))


@pytest.mark.parametrize(
    "garbage", ["", ".", "..", "a.b.c", "ü", "\x00", "%00", "x" * 10_000, "W10.AAAAAA.AAAA"]
)
def test_garbage_is_a_bad_token(signer: Signer, garbage: str) -> None:
    assert refused(signer, garbage)


def test_a_token_signed_with_another_key_is_refused(token: str) -> None:
    assert refused(Signer(["some-other-secret"], tokens.PREFERENCES), token)
    assert refused(
        Signer([KEY], tokens.PREFERENCES), foreign_token(["C42", "reviews", "nl"], key="x")
    )


@pytest.mark.parametrize(
    ("issued_for", "read_as"),
    [(tokens.PREFERENCES, tokens.CONFIRM), (tokens.CONFIRM, tokens.PREFERENCES)],
)
def test_a_token_for_the_other_purpose_is_refused(issued_for: str, read_as: str) -> None:
    token = Signer([KEY], issued_for).issue(CLAIMS)
    assert refused(Signer([KEY], read_as), token)


def test_key_rotation_old_tokens_still_verify() -> None:
    before = Signer([OLD_KEY], tokens.PREFERENCES)
    old_token = before.issue(CLAIMS)
    after = Signer([KEY, OLD_KEY], tokens.PREFERENCES)
    assert after.read(old_token) == CLAIMS

    new_token = after.issue(CLAIMS)  # signed with the first, newest key
    assert Signer([KEY], tokens.PREFERENCES).read(new_token) == CLAIMS
    assert refused(before, new_token)
    assert refused(Signer([KEY], tokens.PREFERENCES), old_token)  # once the old key is dropped


def test_expired_tokens_are_refused(signer: Signer) -> None:
    payload = ["C42", "reviews", "nl"]
    day = 24 * 3600
    assert signer.read(foreign_token(payload, age=399 * day)) == CLAIMS
    assert refused(signer, foreign_token(payload, age=401 * day))
    assert signer.read(foreign_token(payload, age=3000), timedelta(hours=1)) == CLAIMS
    assert refused(signer, foreign_token(payload, age=3700), timedelta(hours=1))


def test_a_token_from_the_future_is_refused(signer: Signer) -> None:
    assert refused(signer, foreign_token(["C42", "reviews", "nl"], age=-3600))


@pytest.mark.parametrize(
    "payload",
    [
        ["C42", "reviews"],
        ["C42", "reviews", "nl", "generation", "extra"],
        ["C42", "reviews", "nl", ""],  # issue writes no empty generation
        ["C42", "reviews", 7],
        {"customer_id": "C42", "category": "reviews", "locale": "nl"},
        "C42",
        None,
    ],
)
def test_a_correctly_signed_but_malformed_payload_is_refused(
    signer: Signer, payload: object
) -> None:
    assert refused(signer, foreign_token(payload))


def test_without_a_key_it_is_a_configuration_error() -> None:
    with pytest.raises(errors.ConfigurationError) as caught:
        Signer([], tokens.PREFERENCES)
    assert caught.value.variable == "NOTIFIER_SECRET_KEY"


SIGNER = Signer([KEY], tokens.PREFERENCES)
VALID = SIGNER.issue(CLAIMS)


def mutations(characters: st.SearchStrategy[str]) -> st.SearchStrategy[tuple[str, int, str]]:
    return st.one_of(
        st.tuples(st.just("replace"), st.integers(0, 10_000), characters),
        st.tuples(st.just("insert"), st.integers(0, 10_000), characters),
        st.tuples(st.just("delete"), st.integers(0, 10_000), st.just("")),
        st.tuples(st.just("append"), st.just(0), st.text(characters, min_size=1, max_size=5)),
    )


def mutate(token: str, mutation: tuple[str, int, str]) -> str:
    operation, index, text = mutation
    position = index % len(token)
    if operation == "replace":
        return token[:position] + text + token[position + 1 :]
    if operation == "insert":
        return token[:position] + text + token[position:]
    if operation == "delete":
        return token[:position] + token[position + 1 :]
    return token + text


@settings(deadline=None, max_examples=200)
@given(mutation=mutations(st.characters()))
@example(mutation=("append", 0, "="))
@example(mutation=("insert", len(VALID) - 5, "é"))
def test_any_mutation_of_a_valid_token_fails(mutation: tuple[str, int, str]) -> None:
    mutated = mutate(VALID, mutation)
    if mutated != VALID:
        assert refused(SIGNER, mutated)


@settings(deadline=None, max_examples=200)
@given(text=st.text(max_size=300))
def test_arbitrary_text_is_a_bad_token_never_a_crash(text: str) -> None:
    assert refused(SIGNER, text)
