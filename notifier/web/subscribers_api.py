"""``/v1/subscribers/import``: subscribers from the shop's previous tool, with consent proof.

The body is read as it comes (NDJSON, one row per line, or a JSON list)
rather than through a pydantic model, so that a bad row is answered by its
line and field while the good rows go in.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool

from notifier import errors
from notifier.schemas import ImportOut, SubscriberIn
from notifier.service import Notifier
from notifier.usecases import subscriber_import

PATH = "/v1/subscribers/import"
MAX_BODY = 64 * 1024 * 1024
"""An import's body may be larger than other requests': 100,000 rows are some 20 MB."""
NDJSON = "application/x-ndjson"


def _inlined(schema: Any, defs: dict[str, Any]) -> Any:
    """``schema`` with its ``$defs`` references replaced by what they name (none recurse)."""
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return _inlined(defs[ref.removeprefix("#/$defs/")], defs)
        return {key: _inlined(value, defs) for key, value in schema.items() if key != "$defs"}
    if isinstance(schema, list):
        return [_inlined(item, defs) for item in schema]
    return schema


def _row_schema() -> dict[str, Any]:
    schema = SubscriberIn.model_json_schema()
    inlined: dict[str, Any] = _inlined(schema, schema.get("$defs", {}))
    return inlined


_ROW = _row_schema()
_BODY_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        # NDJSON (the same rows, one a line) is described in the operation's text: OpenAPI
        # has no schema for a stream of JSON values that clients and fuzzers understand.
        "content": {"application/json": {"schema": {"type": "array", "items": _ROW}}},
    }
}


def router(engine: Notifier) -> APIRouter:
    api = APIRouter()

    @api.post(PATH, response_model=ImportOut, openapi_extra=_BODY_DOC)
    async def import_subscribers(
        request: Request,
        confirm: Annotated[subscriber_import.Confirm, Query()] = "none",
    ) -> ImportOut:
        """Import subscribers: NDJSON (``application/x-ndjson``) or a JSON list of rows.

        Each row is ``{"customer": {...}, "consent": {"at", "source", "ip",
        "text_version"}}`` (or the same fields flat). Rows with consent become
        confirmed subscribers with that proof; rows without stay unconfirmed
        and get the double opt-in mail with ``?confirm=send``. Refused rows
        are listed in ``errors`` by line and field; the rest are imported.
        """
        body = await request.body()
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        rows = _rows(body, kind)
        return await run_in_threadpool(engine.import_subscribers, rows, confirm)

    return api


def _rows(body: bytes, kind: str) -> list[subscriber_import.Row]:
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise errors.InvalidInput("the body must be UTF-8", "body") from exc
    if kind == NDJSON:
        return list(subscriber_import.ndjson_rows(text.splitlines()))
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise errors.InvalidInput(
            f"not JSON ({exc}); send a JSON list, or NDJSON as {NDJSON}", "body"
        ) from exc
    return list(subscriber_import.json_rows(document))
