"""The OpenAPI document's conventions, applied to every route in one place.

A generated client names its methods after operationIds, groups them by tag
and parses each documented status with its schema; FastAPI's defaults give
``get_preferences_v1_customers__customer_id__preferences_get``, one
``default`` tag and a 422 shaped like its own ``HTTPValidationError``, which
notifier never sends. So the app names each operation after its route
function (``operation_id``) and ``document`` derives tags and error answers
from the tables below. A route added later gets all three without touching its
decorator; one that can answer 409 is listed in ``CONFLICTS``.
"""

from __future__ import annotations

from typing import Any

from fastapi.routing import APIRoute
from pydantic import BaseModel, Field

from notifier.web import auth


class ErrorBody(BaseModel):
    """Every error answer of notifier (``web.errors``): a code, a sentence, the fields at fault."""

    error: str = Field(description="A stable code such as `invalid_input` or `not_found`")
    message: str = Field(description="What went wrong, in one sentence for a person")
    fields: dict[str, str] = Field(
        default_factory=dict,
        description="For `invalid_input`: each offending field (dotted path) and what is wrong",
    )


ERROR_SCHEMA = "ErrorBody"
_ERROR_REF = {"$ref": f"#/components/schemas/{ERROR_SCHEMA}"}

TAGS: tuple[tuple[str, str, str], ...] = (
    ("/v1/events", "events", "Shop events in: each queues (or cancels) the mail it implies"),
    ("/v1/messages", "messages", "Single messages: queue, look up, cancel, retry"),
    ("/v1/customers", "customers", "A customer's mail, choices and personal data"),
    ("/v1/campaigns", "campaigns", "Newsletters to confirmed subscribers"),
    ("/v1/subscribers", "subscribers", "Subscribers brought in from elsewhere, with their consent"),
    ("/v1/suppressions", "suppressions", "Addresses that get no more non-essential mail"),
    ("/v1/feedback", "feedback", "Bounce and complaint reports from the relay or provider"),
    ("/", "ops", "Health, readiness and metrics for the operator"),
)
"""Path prefix, tag and its description; the first prefix that matches wins."""

V1_ERRORS: dict[int, str] = {
    401: "Missing or wrong bearer token",
    413: "Body over 1 MiB",
    503: "Database unavailable; retry after the Retry-After seconds",
}
"""What any ``/v1`` operation may answer, whatever it does."""

INVALID = "Invalid input; `fields` names each offending field"
NOT_FOUND = "Nothing with this id"
ALWAYS_FOUND = frozenset({"listCustomerMessages"})
"""Operations with a path parameter that answer an unknown id without 404 (an empty list)."""

CONFLICTS: dict[str, str] = {
    "cancelMessage": "The message is no longer pending (sent, failed or cancelled already)",
    "retryMessage": "The message is not `failed`",
    "scheduleCampaign": "The campaign is not a draft",
    "pauseCampaign": "The campaign's status does not allow a pause (e.g. a cancelled one)",
    "resumeCampaign": "The campaign is not paused",
}
"""Operations that answer 409, and when."""


def operation_id(route: APIRoute) -> str:
    """``get_preferences`` → ``getPreferences``: the route function's name, camelCased."""
    first, *rest = route.name.split("_")
    return first + "".join(word.title() for word in rest)


def document(openapi: dict[str, Any]) -> None:
    """Tag every operation and document every error status it can answer with ``ErrorBody``."""
    schemas = openapi.setdefault("components", {}).setdefault("schemas", {})
    schemas[ERROR_SCHEMA] = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    used_tags = set()
    for path, operations in openapi.get("paths", {}).items():
        for operation in operations.values():
            tag = _tag(path)
            operation["tags"] = [tag]
            used_tags.add(tag)
            _errors(path, operation)
    openapi["tags"] = [
        {"name": tag, "description": description}
        for _, tag, description in TAGS
        if tag in used_tags
    ]
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)


def _tag(path: str) -> str:
    return next(tag for prefix, tag, _ in TAGS if path.startswith(prefix))


def _errors(path: str, operation: dict[str, Any]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    statuses: dict[int, str] = {}
    if path.startswith(auth.API_PREFIX):
        statuses |= V1_ERRORS
    if operation.get("parameters") or "requestBody" in operation or "422" in responses:
        statuses[422] = INVALID
    found_by_id = "{" in path and path.startswith(auth.API_PREFIX)
    if found_by_id and operation.get("operationId") not in ALWAYS_FOUND:
        statuses[404] = NOT_FOUND
    if operation.get("operationId") in CONFLICTS:
        statuses[409] = CONFLICTS[operation["operationId"]]
    for code, declared in responses.items():
        # An error a route declares itself answers with the same body as every other.
        if code.isdigit() and int(code) >= 400 and int(code) not in statuses:
            statuses[int(code)] = declared.get("description", "")
    for status, description in sorted(statuses.items()):
        responses[str(status)] = {
            "description": description,
            "content": {"application/json": {"schema": _ERROR_REF}},
        }
