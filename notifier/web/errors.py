"""One place that maps notifier's errors (and framework errors) to HTTP answers.

Every error body has the same shape: ``{"error": code, "message": text,
"fields": {dotted.field: text}}``; no client input ever yields a 500.
"""

from __future__ import annotations

import json
import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from notifier import errors
from notifier.flows import privacy

log = logging.getLogger(__name__)

STATUS = {
    errors.InvalidInput: 422,
    errors.NotFound: 404,
    errors.Unauthorized: 401,
    errors.Conflict: 409,
    errors.BadToken: 400,
    errors.ServiceUnavailable: 503,
    errors.DeliveryError: 502,
}


PUBLIC_MESSAGES = {
    500: "the request failed on our side; it is logged",
    502: "the mail server did not take the message; it is logged",
    503: "the service cannot take this request right now; try again shortly",
}
"""What a 5xx answer says: the error's own message names internals (a database's host and port,
a driver's error), so it goes to the log and the answer says only what the client can act on."""


def error_body(code: str, message: str, fields: dict[str, str] | None = None) -> dict[str, object]:
    return {"error": code, "message": message, "fields": fields or {}}


def install(app: FastAPI) -> None:
    app.add_exception_handler(errors.NotifierError, _notifier_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]


def notifier_error_response(exc: errors.NotifierError, path: str) -> JSONResponse:
    """The answer to ``exc``, for the exception handler and for routes that answer by themselves."""
    status = next((code for kind, code in STATUS.items() if isinstance(exc, kind)), 500)
    fields = {exc.field: exc.message} if isinstance(exc, errors.InvalidInput) and exc.field else {}
    headers = {"Retry-After": "5"} if status == 503 else None
    message = exc.message
    if status >= 500:
        level = logging.ERROR if status == 500 else logging.WARNING
        log.log(
            level,
            "request.failed path=%s status=%d code=%s reason=%s",
            path,
            status,
            exc.code,
            json.dumps(privacy.redact_addresses(exc.message)),
        )
        message = PUBLIC_MESSAGES.get(status, PUBLIC_MESSAGES[500])
    return JSONResponse(error_body(exc.code, message, fields), status, headers=headers)


async def _notifier_error(request: Request, exc: errors.NotifierError) -> JSONResponse:
    return notifier_error_response(exc, request.url.path)


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    fields: dict[str, str] = {}
    for problem in exc.errors():
        location = [str(part) for part in problem.get("loc", ()) if part != "body"]
        if problem.get("type") == "json_invalid":
            location = ["body"]
        field = ".".join(location) or "body"
        fields.setdefault(field, errors.plain_message(str(problem.get("msg", "invalid"))))
    summary = "; ".join(f"{field}: {text}" for field, text in fields.items())
    return JSONResponse(error_body("invalid_input", summary, fields), 422)


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    message = str(exc.detail)
    if exc.status_code == 400 and isinstance(exc.__cause__, ValueError | RecursionError):
        # FastAPI's "error parsing the body": undecodable text or JSON nested too deep.
        return JSONResponse(error_body("invalid_input", message, {"body": message}), 422)
    code = {401: "unauthorized", 404: "not_found", 405: "method_not_allowed", 413: "too_large"}.get(
        exc.status_code, "http_error"
    )
    return JSONResponse(error_body(code, message), exc.status_code, headers=exc.headers)
