"""The one build step pyproject.toml cannot declare: the default mail goes into the package.

Marketers edit ``templates/`` and ``locales/`` at the project's root (they are
content, not code), yet an installed notifier must find them without a
checkout. ``build_py`` copies both into ``notifier/_content/`` in the build
tree, where ``notifier.content`` looks first. An editable install is left as
it is: it reads the checkout's folders, so an edit shows at once.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
CONTENT = ("templates", "locales")
LEFT_OUT = shutil.ignore_patterns("__pycache__", "*.pyc", "*.mo", ".*")
"""Compiled catalogs stay out: notifier reads the .po files (notifier/mail/i18n.py)."""


class BuildWithContent(build_py):
    """``build_py``, then the project's templates and catalogs copied into the package."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return
        target = Path(self.build_lib) / "notifier" / "_content"
        for name in CONTENT:
            shutil.rmtree(target / name, ignore_errors=True)
            shutil.copytree(ROOT / name, target / name, ignore=LEFT_OUT)

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        outputs: list[str] = super().get_outputs(include_bytecode)
        if self.editable_mode:
            return outputs
        target = Path(self.build_lib) / "notifier" / "_content"
        return outputs + [str(path) for path in sorted(target.rglob("*")) if path.is_file()]


setup(cmdclass={"build_py": BuildWithContent})
