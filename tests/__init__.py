"""notifier's test suite, laid out like the package; support modules (servers, processes,
browsers, fault injection) at this level, shared by every folder.
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
"""The checkout: where the templates, locales, docs and README the tests read lie."""
