"""notifier: a webshop's customer email engine.

Embed it in-process (docs/python-api.md has the whole account, with an example)::

    from notifier import Notifier, load_settings
    engine = Notifier(load_settings())
    engine.upgrade_database()
    engine.handle_event({...}).event.messages
"""

from importlib import metadata

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
