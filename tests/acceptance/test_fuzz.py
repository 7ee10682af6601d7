"""Bad input at scale: generated requests and contexts never reach a 500 or a stray exception.

Schemathesis derives requests from ``/openapi.json`` for every operation (valid and
invalid ones, authenticated) and checks the in-process ASGI app for server errors and for
answers that do not match the documented response schemas. Hypothesis property tests cover
locale negotiation and the templates: any JSON a backend may put in an ad-hoc message's
``order`` or ``data`` either renders or fails that one message cleanly.

The composer and link tokens have property tests of their own (test_compose, test_tokens).
"""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pydantic
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance
from starlette.types import ASGIApp, Receive, Scope, Send

from notifier import errors
from notifier.clock import FrozenClock
from notifier.flows import kinds
from notifier.mail import i18n
from notifier.schemas import MessageIn
from notifier.service import Notifier
from notifier.settings import PROJECT_DIR, Settings
from notifier.store import customers, outbox
from notifier.vocabulary import Category
from notifier.web.app import create_app
from tests.conftest import START, TEST_ENCRYPTION_KEY, customer, order

TOKEN = "test-token"
FUZZ = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def fuzz_engine(tmp_path: Path, transport: Any = None, *, migrate: bool = True) -> Notifier:
    """An engine on its own SQLite file; rate limits off, so only the code under test answers."""
    engine = Notifier(
        Settings(
            database_url=f"sqlite:///{tmp_path / 'fuzz.db'}",
            smtp_host="127.0.0.1",
            smtp_port=2525,
            smtp_tls="none",
            secret_key="test-secret-key",
            encryption_key=TEST_ENCRYPTION_KEY,
            base_url="https://notifier.test",
            api_tokens=[TOKEN],
            page_rate_limit="100000/minute",
        ),
        clock=FrozenClock(START),
        transport=transport,
    )
    if migrate:
        engine.upgrade_database()
    return engine


# -- the HTTP API, from its OpenAPI document -----------------------------------------------


class LiveApp:
    """The ASGI app under test, swapped per test so each runs on a fresh database.

    Schemathesis reads the OpenAPI document when this module is imported, before any
    fixture runs (its ``from_fixture`` loader fails on pytest 9), so the schema is loaded
    from an app whose engine never opens its database; the fixture then points the
    requests at an app on the test's own one.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


# Only the OpenAPI document is read from this engine: it never opens its database file.
_document_only = fuzz_engine(Path(tempfile.gettempdir()), migrate=False)
LIVE = LiveApp(create_app(_document_only, [TOKEN], run_worker=False))
schema = schemathesis.openapi.from_asgi("/openapi.json", LIVE)


@pytest.fixture
def live_app(tmp_path: Path) -> Iterator[None]:
    engine = fuzz_engine(tmp_path)
    LIVE.app = create_app(engine, [TOKEN], run_worker=False)
    yield
    engine.close()


@schema.parametrize()
@FUZZ
@pytest.mark.usefixtures("live_app")
def test_no_request_gets_a_server_error_or_an_undocumented_answer(case: Any) -> None:
    case.call_and_validate(
        headers={"Authorization": f"Bearer {TOKEN}"},
        checks=[not_a_server_error, response_schema_conformance],
    )


# -- locales ----------------------------------------------------------------------------

LOCALES = i18n.available_locales(PROJECT_DIR / "locales")
locale_like = st.from_regex(r"\A[a-zA-Z]{1,8}([-_][a-zA-Z0-9]{1,8}){0,3}\Z")


@given(st.one_of(st.none(), st.text(), locale_like))
def test_any_requested_locale_gets_a_supported_one(requested: str | None) -> None:
    assert LOCALES, "no catalogs found"
    assert i18n.negotiate(requested, LOCALES, "nl") in LOCALES


regions = st.from_regex(r"\A([A-Za-z]{2}|[0-9]{3})\Z")
suffixes = st.sampled_from(["", ".UTF-8", ".utf8", "@euro", ".ISO8859-15@euro", " "])


@given(
    st.sampled_from(["nl", "en", "NL", "En"]),
    st.sampled_from(["_", "-"]),
    regions | st.just(""),
    suffixes,
)
def test_a_supported_language_is_kept_whatever_the_region_or_spelling(
    language: str, separator: str, region: str, suffix: str
) -> None:
    """``nl_XX``, ``EN-419``, ``nl_BE.UTF-8@euro``: unknown region → the language itself."""
    requested = f"{language}{separator}{region}{suffix}" if region else f"{language}{suffix}"
    assert i18n.negotiate(requested, LOCALES, "nl") == language.lower()


@pytest.mark.parametrize("requested", ["en-Latn", "en-Latn-GB"])
def test_a_script_subtag_keeps_the_language(requested: str) -> None:
    assert i18n.negotiate(requested, LOCALES, "nl") == "en"


# -- templates with whatever the backend sends ------------------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**20), max_value=10**20)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=16,
)
"""Any JSON value."""
order_like = st.fixed_dictionaries(
    {},
    optional={
        "id": json_values,
        "number": json_values,
        "currency": st.sampled_from(["EUR", "USD", "XXX", "eur", "", "€"]) | json_values,
        "total": st.decimals(allow_nan=False, allow_infinity=False).map(str) | json_values,
        "lines": st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "sku": json_values,
                    "name": json_values,
                    "quantity": st.integers() | json_values,
                    "unit_price": st.sampled_from(["34.95", "-1", "1e400", "abc"]) | json_values,
                },
            )
            | json_values,
            max_size=3,
        )
        | json_values,
        "shipping_address": json_values,
        "placed_at": st.sampled_from(["2026-11-21T10:00:00+01:00", "yesterday"]) | json_values,
    },
)
"""Shaped like an order, so the templates get past their first lookups, with any values."""
contexts = st.fixed_dictionaries(
    {},
    optional={
        "order": order_like | json_values,
        "data": st.dictionaries(
            st.sampled_from(["carrier", "tracking_url", "question", "title"]) | st.text(max_size=8),
            json_values,
            max_size=4,
        )
        | json_values,
        "newsletter": json_values,
    },
)
KINDS = sorted(kinds.KINDS)


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Notifier]:
    engine = fuzz_engine(tmp_path_factory.mktemp("fuzz"), Recorder())
    # Arrangement: the customer the planted messages below belong to, with no mail of its own.
    with engine.database.transaction() as session:
        customers.upsert(
            session,
            engine.sealer,
            customer_id="C42",
            email="jan@example.nl",
            name="Jan de Vries",
            locale="nl",
            now=START,
        )
    yield engine
    engine.close()


@FUZZ
@given(kind=st.sampled_from(KINDS), context=contexts)
def test_an_ad_hoc_message_renders_or_is_refused_as_invalid_input(
    engine: Notifier, kind: str, context: dict[str, Any]
) -> None:
    try:
        request = MessageIn(
            id=f"fuzz-{uuid.uuid4().hex}", kind=kind, to=customer(), context=context
        )
    except pydantic.ValidationError as exc:
        # Text no database can store is refused by the schema itself, naming the path.
        assert all(error["loc"][0] == "context" for error in exc.errors())
        return
    try:
        accepted = engine.send_message(request)
    except errors.InvalidInput as exc:
        # What the kinds table requires is named (context.order.number); the rest is the
        # template's to refuse (context).
        assert exc.field == "context" or (exc.field or "").startswith("context.")
    else:
        assert accepted.created


class Recorder:
    """A transport that takes every message (the SMTP side is tested elsewhere)."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    async def send(self, sender: str, recipients: Sequence[str], data: bytes) -> str:
        self.sent.append(data)
        return "250 OK"

    async def close(self) -> None:
        return None


@FUZZ
@given(batch=st.lists(st.tuples(st.sampled_from(KINDS), contexts), min_size=1, max_size=6))
def test_a_context_that_cannot_render_fails_only_its_own_message(
    engine: Notifier, batch: list[tuple[str, dict[str, Any]]]
) -> None:
    """Stored straight into the outbox (as an event's plan is), never trial-rendered: at send
    time each bad one ends ``failed``, and the good message in the same batch is sent."""
    now = engine.clock.now()
    good = outbox.NewMessage(
        id=f"good-{uuid.uuid4().hex}",
        customer_id="C42",
        kind="order_confirmation",
        category=Category.ORDER_UPDATES,
        send_after=now,
        context={"order": order(), "data": {}},
        created_at=now,
    )
    fuzzed = [
        outbox.NewMessage(
            id=f"fuzz-{uuid.uuid4().hex}",
            customer_id="C42",
            kind=kind,
            category=kinds.get(kind).category,
            send_after=now,
            context=context,
            created_at=now,
        )
        for kind, context in batch
    ]
    # Arrangement: planted straight in the outbox, past the trial render of send_message.
    with engine.database.transaction() as session:
        outbox.add(session, engine.sealer, [*fuzzed, good])
    asyncio.run(engine.dispatch_due())
    assert engine.get_message(good.id).status == "sent"
    for message in fuzzed:
        status = engine.get_message(message.id).status
        # Newsletters are suppressed: C42 never subscribed. The rest render or fail alone.
        assert status in {"sent", "failed", "suppressed"}, status
        if status == "failed":
            assert (engine.get_message(message.id).last_error or "").startswith("render: ")
