"""notifier: a webshop's customer email engine.

Embed it in-process (docs/python-api.md has the whole account, with an example)::

    from notifier import Notifier, load_settings
    engine = Notifier(load_settings())
    engine.upgrade_database()
    engine.handle_event({...}).event.messages
"""

from __future__ import annotations

import importlib
from importlib import metadata
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from notifier.clock import Clock, FrozenClock, SystemClock
    from notifier.errors import (
        BadToken,
        ConfigurationError,
        Conflict,
        InvalidInput,
        NotFound,
        NotifierError,
        ServiceUnavailable,
        TemplateError,
    )
    from notifier.schemas import CustomerIn, EventIn, EventOut, MessageIn, MessageOut
    from notifier.service import Accepted, Notifier
    from notifier.settings import Settings
    from notifier.settings import load as load_settings
    from notifier.vocabulary import MessageStatus

__version__ = metadata.version("notifier")
"""The installed distribution's version: ``pyproject.toml`` is its one source."""

_EXPORTS = {
    "Accepted": "service",
    "BadToken": "errors",
    "Clock": "clock",
    "ConfigurationError": "errors",
    "Conflict": "errors",
    "CustomerIn": "schemas",
    "EventIn": "schemas",
    "EventOut": "schemas",
    "FrozenClock": "clock",
    "InvalidInput": "errors",
    "MessageIn": "schemas",
    "MessageOut": "schemas",
    "MessageStatus": "vocabulary",
    "NotFound": "errors",
    "Notifier": "service",
    "NotifierError": "errors",
    "ServiceUnavailable": "errors",
    "Settings": "settings",
    "SystemClock": "clock",
    "TemplateError": "errors",
    "load_settings": "settings:load",
}
"""Each public name, and the module (``module:attribute`` where the names differ) it is from.

They are imported on first use (PEP 562), not with the package: a render
process imports ``notifier.mail``, and should not load the engine, the store
and the API's schemas with it.
"""


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, _, attribute = _EXPORTS[name].partition(":")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), attribute or name)
    globals()[name] = value
    return value


__all__ = [
    "Accepted",
    "BadToken",
    "Clock",
    "ConfigurationError",
    "Conflict",
    "CustomerIn",
    "EventIn",
    "EventOut",
    "FrozenClock",
    "InvalidInput",
    "MessageIn",
    "MessageOut",
    "MessageStatus",
    "NotFound",
    "Notifier",
    "NotifierError",
    "ServiceUnavailable",
    "Settings",
    "SystemClock",
    "TemplateError",
    "__version__",
    "load_settings",
]
