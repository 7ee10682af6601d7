"""Where the default templates and catalogs are: inside the installed package, else the checkout.

Marketers edit ``templates/`` and ``locales/`` at the project's root. A wheel
carries a copy of both inside the package (``setup.py`` puts them in
``notifier/_content/`` as it builds), so an installed notifier finds its mail
without a checkout; an editable install and a checkout find the root's.
``NOTIFIER_TEMPLATES_DIR`` and ``NOTIFIER_LOCALES_DIR`` override either.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_DIR = PACKAGE_DIR.parent
PACKAGED_DIR = PACKAGE_DIR / "_content"
"""The copy a built package carries; setup.py's ``build_py`` writes it, never the checkout."""


def default_folder(name: str) -> Path:
    """The packaged copy of the project folder ``name`` when there is one, else the checkout's."""
    packaged = PACKAGED_DIR / name
    return packaged if packaged.is_dir() else PROJECT_DIR / name


TEMPLATES_DIR = default_folder("templates")
LOCALES_DIR = default_folder("locales")
