"""Which newsletter content, and which subject, a subscriber gets: by locale, through a chain.

A campaign's ``content`` is either one object for everybody (``title``,
``intro``, ``items``) or objects keyed by locale (``{"nl": {...}, "en":
{...}}``). A subscriber gets the content of their locale through the chain
``nl_BE`` → ``nl`` → the shop's default locale, or the stand-in the campaign
names (``fallback_locale``). Rendering, preview, ``templates check`` and the
creation checks all choose through :func:`choose`, so they never disagree.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from notifier.mail import i18n

EVERYONE = "*"
"""The key the one-object form goes by: the same content for every locale."""
FALLBACK_KEY = "newsletter_fallback"
"""The template context key holding the campaign's stand-in locale, if it names one."""


def context(
    content: Mapping[str, Any], subjects: Mapping[str, str], fallback: str | None
) -> dict[str, Any]:
    """The template context of one campaign, shared by its mail, its trial render and its tests."""
    return {"newsletter": content, "subjects": subjects, FALLBACK_KEY: fallback}


def by_locale(content: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """``content`` keyed by locale; the one-object form under ``EVERYONE``.

    Content is keyed by locale when every key is a locale tag and every value
    an object; the one-object form has a text ``title``, so it never is.
    """
    keyed = bool(content) and all(
        i18n.normalize(key) is not None and isinstance(value, Mapping)
        for key, value in content.items()
    )
    if keyed:
        return {key: value for key, value in content.items()}
    return {EVERYONE: content}


def choose(
    contents: Iterable[str], locale: str | None, default: str, fallback: str | None = None
) -> str | None:
    """The content key serving ``locale``: its chain, then ``fallback``, then ``default``.

    None when nothing reaches it: such a campaign is refused at creation.
    """
    keys = list(contents)
    if EVERYONE in keys:
        return EVERYONE
    found = i18n.negotiate(locale, keys, "")
    if found:
        return found
    for stand_in in (fallback, default):
        if stand_in:
            found = i18n.negotiate(stand_in, keys, "")
            if found:
                return found
    return None


def unreached(
    content: Mapping[str, Any], locales: Iterable[str], default: str, fallback: str | None
) -> list[str]:
    """The audience locales that no content reaches, sorted."""
    keys = list(by_locale(content))
    return sorted({loc for loc in locales if choose(keys, loc, default, fallback) is None})


def localized(
    context: Mapping[str, Any], locale: str | None, default: str
) -> tuple[dict[str, Any], str | None]:
    """``context`` with ``newsletter`` set to the content for ``locale``, and that content's key.

    ``newsletter.subject`` is filled in from ``subjects`` (the chosen
    locale's, else the title) so that the template's subject, ``<title>``
    and the Subject header are one text. A context without a newsletter
    comes back as it is, with key None.
    """
    newsletter = context.get("newsletter")
    if not isinstance(newsletter, Mapping):
        return dict(context), None
    contents = by_locale(newsletter)
    fallback = context.get(FALLBACK_KEY)
    key = choose(contents, locale, default, fallback if isinstance(fallback, str) else None)
    if key is None:
        return dict(context), None
    chosen = dict(contents[key])
    subjects = context.get("subjects")
    subjects = subjects if isinstance(subjects, Mapping) else {}
    subject_key = key if key != EVERYONE else i18n.negotiate(locale, list(subjects), "")
    subject = subjects.get(subject_key) if subject_key else None
    chosen["subject"] = subject or chosen.get("subject") or chosen.get("title")
    return {**context, "newsletter": chosen}, key
