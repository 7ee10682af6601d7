"""The OpenAPI document's account of ``POST /v1/events``: one schema per event type.

Requests are validated by ``EventIn`` (one model, so its error answers name
fields as they always have) and then by ``flows.events`` against the kinds
table. The document shows the rules per type instead: a ``oneOf`` of one
schema per event type, discriminated by ``type``, each saying whether
``order`` is needed, the shape of its ``data``, and which paths the mail it
queues requires (``x-requires``) or may do without (``x-optional``), all
derived from ``flows.kinds`` and ``flows.events`` so it cannot drift.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, create_model
from pydantic.json_schema import models_json_schema

from notifier.flows import events as event_flows
from notifier.flows import kinds
from notifier.schemas import EVENT_DATA, EventIn, EventType, OrderIn
from notifier.settings import Settings

_REF = "#/components/schemas/{model}"


def document(openapi: dict[str, Any], settings: Settings) -> None:
    """Replace the events route's request schema by the per-type ``oneOf``."""
    models = {event_type: _model(event_type, settings) for event_type in EventType}
    _, definitions = models_json_schema(
        [(model, "validation") for model in models.values()], ref_template=_REF
    )
    schemas = openapi.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(definitions.get("$defs", {}))
    for event_type, model in models.items():
        requires, optional = _paths(event_flows.kinds_for(event_type, settings))
        schema = schemas[model.__name__]
        schema["x-requires"], schema["x-optional"] = list(requires), list(optional)
        _require_data(schema, requires)
    refs = {
        event_type.value: _REF.format(model=model.__name__) for event_type, model in models.items()
    }
    content = openapi["paths"]["/v1/events"]["post"]["requestBody"]["content"]
    content["application/json"]["schema"] = {
        "oneOf": [{"$ref": ref} for ref in refs.values()],
        "discriminator": {"propertyName": "type", "mapping": refs},
    }


def _model(event_type: EventType, settings: Settings) -> type[EventIn]:
    """``EventIn`` narrowed to one type: its ``type``, its ``order``, its ``data``."""
    order: Any = (
        (OrderIn, ...) if event_type in event_flows.ORDER_EVENTS else (OrderIn | None, None)
    )
    data: Any = EVENT_DATA.get(event_type, dict[str, Any])
    tag: Any = Literal[event_type.value]
    queued = event_flows.kinds_for(event_type, settings)
    words = event_type.value.replace("_", ".").split(".")
    return create_model(
        "".join(word.title() for word in words) + "Event",
        __base__=EventIn,
        __doc__=_description(queued, *_paths(queued)),
        type=(tag, ...),
        order=order,
        data=(data, Field(default_factory=data)),
    )


def _paths(queued: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The paths the kinds ``queued`` require, and those they may do without, each in order."""
    requires = dict.fromkeys(path for name in queued for path in kinds.get(name).requires)
    optional = dict.fromkeys(
        path for name in queued for path in kinds.get(name).optional if path not in requires
    )
    return tuple(requires), tuple(optional)


def _description(
    queued: tuple[str, ...], requires: tuple[str, ...], optional: tuple[str, ...]
) -> str:
    if not queued:
        return "Queues no mail; an order event of this type needs only `order.id`."
    lines = [f"Queues {', '.join(f'`{name}`' for name in queued)}."]
    if requires:
        listed = ", ".join(f"`{path}`" for path in requires)
        lines.append(
            f"Requires {listed}, else 422 naming the path; `order.*` may instead be known"
            " from an earlier event of the same order (the engine remembers orders)."
        )
    if optional:
        lines.append("May leave out " + ", ".join(f"`{path}`" for path in optional) + ".")
    return " ".join(lines)


def _require_data(schema: dict[str, Any], requires: tuple[str, ...]) -> None:
    """Mark the ``data.*`` paths the type requires as required in its ``data`` schema.

    (``order.*`` paths may come from the remembered order, so the schema
    cannot require them; the description and ``x-requires`` say so.)
    """
    needed = [path.removeprefix("data.") for path in requires if path.startswith("data.")]
    if needed:
        data = schema["properties"]["data"]
        schema["properties"]["data"] = {"allOf": [data], "required": needed}
