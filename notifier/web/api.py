"""``/v1``: the shop backend's JSON API. Each route parses, calls Notifier once, maps the result."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse

from notifier import storable
from notifier.schemas import (
    CampaignIn,
    CampaignOut,
    Email,
    EventIn,
    EventOut,
    MessageIn,
    MessageOut,
    PreferencesIn,
    SuppressionIn,
    SuppressionLifted,
    SuppressionOut,
)
from notifier.service import Accepted, Notifier

ResourceId = Annotated[storable.Text, Path(min_length=1, max_length=200)]


def router(engine: Notifier) -> APIRouter:
    """The /v1 routes for ``engine``; ``web.auth`` guards them and documents the scheme.

    Their operationIds, tags and error answers in the OpenAPI document come
    from ``web.openapi``. The routes close over the engine rather than resolve
    it as a dependency: it never changes, and a dependency costs a resolution
    on every request.
    """
    api = APIRouter(prefix="/v1")

    @api.post(
        "/events",
        status_code=202,
        response_model=EventOut,
        responses={
            200: {
                "model": EventOut,
                "description": "Seen before: the first answer, its messages as they stand now",
            }
        },
    )
    async def post_event(event: EventIn) -> JSONResponse:
        """Accept a shop event; its ``id`` is the idempotency key."""
        # ``web.post_event`` answers well-formed JSON events before they get here; this
        # route answers the rest (other content types, invalid bodies) and documents both.
        # Awaits the group commit on the event loop instead of parking a threadpool thread.
        return accepted_response(await engine.handle_event_async(event))

    @api.post(
        "/messages",
        status_code=202,
        response_model=MessageOut,
        responses={200: {"model": MessageOut, "description": "Seen before: the message now"}},
    )
    def post_message(message: MessageIn) -> JSONResponse:
        """Queue an ad-hoc message of any kind; its ``id`` is the idempotency key."""
        return accepted_response(engine.send_message(message))

    @api.get("/messages/{message_id}", response_model=MessageOut)
    def get_message(message_id: ResourceId) -> MessageOut:
        return engine.get_message(message_id)

    @api.delete("/messages/{message_id}", response_model=MessageOut)
    def cancel_message(message_id: ResourceId) -> MessageOut:
        """Cancel a message that has not been sent yet (409 otherwise)."""
        return engine.cancel_message(message_id)

    @api.post(
        "/messages/{message_id}/retry",
        status_code=202,
        response_model=MessageOut,
    )
    def retry_message(message_id: ResourceId) -> MessageOut:
        """Put a `failed` message back in the queue, due now (e.g. after a template fix)."""
        return engine.retry_message(message_id)

    @api.get("/customers/{customer_id}/messages", response_model=list[MessageOut])
    def list_customer_messages(customer_id: ResourceId) -> list[MessageOut]:
        """The customer's messages, newest first."""
        return engine.customer_messages(customer_id)

    @api.delete("/customers/{customer_id}")
    def erase_customer(customer_id: ResourceId) -> dict[str, Any]:
        """Right to erasure: pending mail cancelled, every personal datum removed."""
        return {"erased": customer_id, "messages_anonymised": engine.privacy.erase(customer_id)}

    @api.get("/customers/{customer_id}/export")
    def export_customer(customer_id: ResourceId) -> dict[str, Any]:
        """Everything held on the customer, decrypted, as JSON."""
        return engine.privacy.export(customer_id)

    @api.get("/customers/{customer_id}/preferences", response_model=dict[str, bool])
    def get_preferences(customer_id: ResourceId) -> dict[str, bool]:
        """Each category on or off; essential ``service`` mail is always on."""
        return engine.choices.states(customer_id)

    @api.put("/customers/{customer_id}/preferences", response_model=dict[str, bool])
    def put_preferences(customer_id: ResourceId, choices: PreferencesIn) -> dict[str, bool]:
        """Set choices from the account page; the newsletter turned on here is confirmed consent."""
        return engine.choices.update(
            customer_id,
            choices.changes(),
            source="account",
            ip=choices.ip,
            text_version=choices.consent_text_version,
        )

    @api.post("/suppressions", status_code=200)
    def post_suppression(suppression: SuppressionIn) -> dict[str, str]:
        """Bounce and complaint feed: the address gets no more (non-essential) mail."""
        engine.choices.suppress(
            str(suppression.email), suppression.reason.value, suppression.detail
        )
        return {"status": "suppressed", "reason": suppression.reason.value}

    @api.get("/suppressions", response_model=SuppressionOut, responses={404: {}})
    def get_suppression(email: Annotated[Email, Query()]) -> SuppressionOut:
        """Is this one address suppressed, and why? Found by keyed hash; never a list."""
        return engine.choices.suppression(email)

    @api.delete("/suppressions/{email}", response_model=SuppressionLifted, responses={404: {}})
    def lift_suppression(
        email: Annotated[Email, Path()],
        reason: Annotated[str, Query(min_length=1, max_length=500)],
    ) -> SuppressionLifted:
        """Let mail reach the address again; ``reason`` is recorded with the lift."""
        return engine.choices.lift_suppression(email, reason)

    @api.post(
        "/feedback/{provider}",
        responses={404: {"description": "No such provider configured"}},
        openapi_extra={"security": []},
    )
    async def post_feedback(
        provider: Annotated[str, Path(max_length=20)], request: Request
    ) -> dict[str, str]:
        """A mail provider's bounce or complaint webhook (``ses`` through SNS, ``postmark``).

        Not behind the bearer token: SES's messages are verified by their SNS
        signature, Postmark's by its basic auth.
        """
        body = await request.body()
        kind = await asyncio.to_thread(
            engine.provider_feedback.receive, provider, body, request.headers.get("authorization")
        )
        return {"status": "received", "kind": kind}

    @api.post(
        "/campaigns",
        status_code=202,
        response_model=CampaignOut,
        responses={
            200: {"model": CampaignOut, "description": "Seen before: the campaign as it is"}
        },
    )
    def post_campaign(campaign: CampaignIn) -> JSONResponse:
        """Schedule a newsletter to confirmed subscribers at ``send_at`` or by ``cron``."""
        out, created = engine.newsletters.create(campaign)
        return JSONResponse(out.model_dump(mode="json"), status_code=202 if created else 200)

    @api.get("/campaigns/{campaign_id}", response_model=CampaignOut)
    def get_campaign(campaign_id: ResourceId) -> CampaignOut:
        """The campaign with its progress: targeted, sent, suppressed, failed."""
        return engine.newsletters.get(campaign_id)

    @api.delete("/campaigns/{campaign_id}", response_model=CampaignOut)
    def cancel_campaign(campaign_id: ResourceId) -> CampaignOut:
        """Stop the campaign: no further runs, unsent messages cancelled."""
        return engine.newsletters.cancel(campaign_id)

    return api


def accepted_response(result: Accepted) -> JSONResponse:
    """202 with the answer for something new, 200 with the first answer for a repeat."""
    return JSONResponse(result.body, status_code=202 if result.created else 200)
