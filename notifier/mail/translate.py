"""The gettext functions templates call, and their translations written into compiled templates.

Each locale has its own Jinja environment, so a call such as
``{{ _("Track your parcel") }}`` or a ``{% trans %}`` block without variables
has one answer per compiled template. ``FoldingCodeGenerator`` writes that
answer into the template as text when it compiles it: a mail makes twenty
such calls, each a trip through Jinja's ``Context.call``, and a campaign
makes them for every recipient.
"""

from __future__ import annotations

import gettext
from typing import Any

import jinja2
import markupsafe
from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.visitor import NodeTransformer

FOLDED = frozenset({"_", "gettext"})
"""The names whose calls with one literal and no variables are answered at compile time."""


class TemplateGettext:
    """The gettext functions templates call, for one locale's environment.

    They behave as Jinja's ``newstyle`` ones with autoescaping on (ours always
    is): the translation is trusted markup, the variables are escaped into
    it. Jinja's own wrappers pass through the template context two or three
    times a call and make the translation Markup anew each time; these keep
    the catalog's translations as Markup, filled at once when a call has no
    variables. Only the catalog's msgids are kept: a string a template
    translates from data (``_(name)``) is never held on to, as no customer
    data is.
    """

    def __init__(self, translations: gettext.NullTranslations, msgids: frozenset[str]) -> None:
        self._translations = translations
        self._msgids = msgids
        self._markup: dict[str, markupsafe.Markup] = {}
        self._filled: dict[str, markupsafe.Markup] = {}
        """Translations without variables, ``%%`` already made ``%``: most calls want one."""

    def install(self, environment: jinja2.Environment) -> None:
        """Replace the i18n extension's callables (installed first: it also sets ``newstyle``)."""
        environment.globals.update(
            _=self.gettext,
            gettext=self.gettext,
            ngettext=self.ngettext,
            pgettext=self.pgettext,
            npgettext=self.npgettext,
        )
        environment.code_generator_class = FoldingCodeGenerator

    def gettext(self, message: str, /, **variables: Any) -> markupsafe.Markup:
        if variables:
            return self._translated(message) % variables
        filled = self._filled.get(message)
        if filled is None:
            filled = self._translated(message) % {}
            if message in self._msgids:
                self._filled[message] = filled
        return filled

    def _translated(self, message: str) -> markupsafe.Markup:
        translated = self._markup.get(message)
        if translated is None:
            translated = markupsafe.Markup(self._translations.gettext(message))
            if message in self._msgids:
                self._markup[message] = translated
        return translated

    def ngettext(
        self, singular: str, plural: str, count: int, /, **variables: Any
    ) -> markupsafe.Markup:
        variables.setdefault("num", count)
        translated = self._translations.ngettext(singular, plural, count)
        return markupsafe.Markup(translated) % variables

    def pgettext(self, context: str, message: str, /, **variables: Any) -> markupsafe.Markup:
        variables.setdefault("context", context)
        return markupsafe.Markup(self._translations.pgettext(context, message)) % variables

    def npgettext(
        self, context: str, singular: str, plural: str, count: int, /, **variables: Any
    ) -> markupsafe.Markup:
        variables.setdefault("context", context)
        variables.setdefault("num", count)
        translated = self._translations.npgettext(context, singular, plural, count)
        return markupsafe.Markup(translated) % variables


class FoldingCodeGenerator(CodeGenerator):
    """Jinja's code generator, with constant translations folded into the template first."""

    def visit_Template(self, node: nodes.Template, frame: Frame | None = None) -> None:
        _TranslationFolder(self.environment).visit(node)
        super().visit_Template(node, frame)


class _TranslationFolder(NodeTransformer):
    """Replaces ``_("literal")`` calls by the environment's translation, marked safe.

    A template that assigns one of the names (a ``{% set _ = … %}``, a macro
    argument) is left alone, and so is a call whose translation cannot be
    filled without variables: it fails when it renders, naming its line.
    """

    def __init__(self, environment: jinja2.Environment) -> None:
        self._environment = environment
        self._shadowed: frozenset[str] = frozenset()

    def visit_Template(self, node: nodes.Template) -> nodes.Node:
        assigned = {name.name for name in node.find_all(nodes.Name) if name.ctx != "load"}
        assigned.update(imported.target for imported in node.find_all(nodes.Import))
        for imported in node.find_all(nodes.FromImport):
            assigned.update(n if isinstance(n, str) else n[1] for n in imported.names)
        self._shadowed = frozenset(assigned)
        return self.generic_visit(node)

    def visit_Call(self, node: nodes.Call) -> nodes.Node:
        folded = self._translation(node)
        return folded if folded is not None else self.generic_visit(node)

    def _translation(self, call: nodes.Call) -> nodes.Expr | None:
        function = call.node
        if not (
            isinstance(function, nodes.Name)
            and function.name in FOLDED
            and function.name not in self._shadowed
            and len(call.args) == 1
            and isinstance(call.args[0], nodes.Const)
            and isinstance(call.args[0].value, str)
            and not (call.kwargs or call.dyn_args or call.dyn_kwargs)
        ):
            return None
        translate = self._environment.globals.get(function.name)
        if not callable(translate):
            return None
        try:
            translated = translate(call.args[0].value)
        except (KeyError, TypeError, ValueError):
            return None
        return nodes.MarkSafe(nodes.Const(str(translated), lineno=call.lineno), lineno=call.lineno)
