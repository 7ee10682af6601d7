"""Process-wide logging, the same in the CLI and in each process of ``serve --workers``.

Two formats (``NOTIFIER_LOG_FORMAT``): ``text``, a line a person reads, and
``json``, one object per line for a log pipeline. notifier's own lines are
``action key=value …`` (``event.accepted event=evt-1 type=order.placed``);
in JSON the action is the message and each pair a key of its own, so the
call sites stay the same for both formats and no line needs a second spelling.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from pythonjsonlogger import core
from pythonjsonlogger import json as jsonlogger

FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
LEVEL_VARIABLE = "NOTIFIER_LOG_LEVEL"
"""How ``serve --workers`` hands its level (``--verbose`` or not) to the processes it spawns."""

_STRUCTURED = re.compile(r'[a-z][a-z0-9_]*(?:\.[a-z0-9_]+)+(?: [a-z_]+=(?:"(?:[^"\\]|\\.)*"|\S*))*')
"""A whole message of the house style: an action, then ``key=value`` pairs (quoted JSON strings
where the value has spaces). Anything else, a library's prose say, stays one message."""
_PAIR = re.compile(r' ([a-z_]+)=("(?:[^"\\]|\\.)*"|\S*)')
_ACCESS_FIELDS = ("client", "method", "path", "http_version", "status")
"""The arguments of uvicorn's access-log call, in order."""
_RENAMED = {"message": "message_id"}
"""The house's ``message=`` is a message's id; ``message`` is the line's own."""
_HIDDEN = frozenset({"color_message", "client"})
"""uvicorn's coloured copy of a message, and the client's address: personal data."""


class JsonFormatter(jsonlogger.JsonFormatter):
    """One JSON object per record: time, level, logger, message, then the record's fields.

    The fields are the ``key=value`` pairs of a house-style message, the
    arguments of an access-log line (the path with its link tokens already
    redacted by ``notifier.web.logs``; the client address left out) and any
    ``extra=``. Values parsed from a message stay strings, so that a key has
    one type in every line (a numeric event id is still an id).
    """

    def __init__(self) -> None:
        super().__init__(
            "%(levelname)s %(name)s %(message)s",
            rename_fields={"levelname": "level", "name": "logger"},
            reserved_attrs=[*core.RESERVED_ATTRS, *_HIDDEN],
            timestamp="time",
        )

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        super().add_fields(log_data, record, message_dict)
        log_data.update(_fields(record, log_data["message"]))
        log_data["time"] = log_data["time"].isoformat(timespec="milliseconds")

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        first = {key: log_data.pop(key) for key in ("time", "level", "logger", "message")}
        return first | {key: value for key, value in log_data.items() if key not in _HIDDEN}


def _fields(record: logging.LogRecord, message: str) -> dict[str, Any]:
    """The message and fields a record stands for; the message alone when it has no pairs."""
    args = record.args
    if record.name == "uvicorn.access" and isinstance(args, tuple) and len(args) == 5:
        return {"message": "http.request", **dict(zip(_ACCESS_FIELDS, args, strict=True))}
    if not _STRUCTURED.fullmatch(message):
        return {}
    action = message.split(" ", 1)[0]
    pairs = {
        _RENAMED.get(key, key): json.loads(value) if value.startswith('"') else value
        for key, value in _PAIR.findall(message[len(action) :])
    }
    return {"message": action, **pairs}


def configure(level: int | str = logging.INFO, log_format: str = "text") -> None:
    """Log to stderr at ``level``, without the per-job and per-SMTP-command chatter.

    aiosmtpd's transcripts (``mail.log``) name addresses, so they stay out too.
    ``json`` replaces whatever handler was there (the text one ``main`` set up
    before the settings were read) and routes Python's warnings through it.
    """
    if log_format == "json":
        handler = logging.StreamHandler()
        handler.setFormatter(JsonFormatter())
        logging.basicConfig(level=level, handlers=[handler], force=True)
        logging.captureWarnings(True)
    else:
        logging.basicConfig(level=level, format=FORMAT)
    for noisy in ("apscheduler", "mail.log"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def uvicorn_config(log_format: str) -> dict[str, Any] | None:
    """uvicorn's ``log_config`` for ``log_format``; None: leave uvicorn its own (text).

    uvicorn applies it in every process it starts, so ``serve --workers N``
    logs alike in each; streams and levels are uvicorn's defaults.
    """
    if log_format != "json":
        return None
    handler = {"formatter": "json", "class": "logging.StreamHandler"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": f"{__name__}.JsonFormatter"}},
        "handlers": {
            "default": handler | {"stream": "ext://sys.stderr"},
            "access": handler | {"stream": "ext://sys.stdout"},
        },
        "loggers": {
            "uvicorn": {"handlers": ["default"], "level": "INFO", "propagate": False},
            "uvicorn.error": {"level": "INFO"},
            "uvicorn.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
        },
    }
