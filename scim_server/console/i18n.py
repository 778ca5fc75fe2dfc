"""The console's two languages, Danish and English, from Babel message catalogues.

Texts are written in English in the templates and the views (``_("People")``) and translated
from the catalogues in ``translations/<locale>/``: every ``*.po`` file there is read at start-up
and merged into one catalogue per language, so each page's texts can keep a file of their own.
The ``.po`` files are compiled in memory (no ``.mo`` build step to forget). English needs no
catalogue: its texts are the message ids.

The language of a request: the ``console_lang`` cookie (the switch in the page header) if set,
else the browser's ``Accept-Language``, else English. Numbers and dates are formatted for it
by Babel too (``100.000`` in Danish, ``100,000`` in English).
"""
from __future__ import annotations

import datetime as dt
import io
from functools import cache
from pathlib import Path

from babel import Locale
from babel.dates import format_date, format_datetime
from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal, get_group_symbol
from babel.support import NullTranslations, Translations
from flask import Flask, g, request

#: the languages, the first being the default
LANGUAGES = ("en", "da")
COOKIE = "console_lang"
CATALOGUES = Path(__file__).parent / "translations"


@cache
def translations(language: str) -> NullTranslations:
    """The merged catalogue of one language, compiled once per process."""
    files = sorted((CATALOGUES / language).rglob("*.po")) if language != "en" else []
    if not files:
        return NullTranslations()
    merged = Catalog(locale=language)
    for path in files:
        with path.open("rb") as stream:
            for message in read_po(stream, locale=language):
                if message.id and message.string:
                    merged.add(message.id, message.string, context=message.context)
    compiled = io.BytesIO()
    write_mo(compiled, merged)
    compiled.seek(0)
    return Translations(compiled)


def language() -> str:
    """The language of the current request."""
    chosen = g.get("console_language")
    if chosen is None:
        cookie = request.cookies.get(COOKIE)
        chosen = cookie if cookie in LANGUAGES else (request.accept_languages.best_match(LANGUAGES) or LANGUAGES[0])
        g.console_language = chosen
    return chosen


def gettext(message: str, **values) -> str:
    text = translations(language()).gettext(message)
    return text % values if values else text


def ngettext(singular: str, plural: str, n: int, **values) -> str:
    text = translations(language()).ngettext(singular, plural, n)
    return text % {"num": n, **values}


_ = gettext


@cache
def _group_symbol(language_: str) -> str | None:
    """The thousands separator of a language whose decimal pattern groups by three (da: ".",
    en: ","), or None when it groups otherwise and Babel must format every number."""
    locale = Locale.parse(language_)
    pattern = locale.decimal_formats.get(None)
    if pattern is None or pattern.grouping != (3, 3):
        return None
    return get_group_symbol(locale)


def number(value: int | float | None) -> str:
    """A count as the language writes it (1.234 in Danish, 1,234 in English). Whole numbers take
    a short path: a billing page formats thousands of them, and Babel's general one costs 40 µs
    a number."""
    if value is None:
        return ""
    group = _group_symbol(language()) if isinstance(value, int) and not isinstance(value, bool) else None
    if group is not None:
        return f"{value:,}".replace(",", group)
    return format_decimal(value, locale=Locale.parse(language()))


def date(value: dt.date | dt.datetime | None) -> str:
    if value is None:
        return ""
    return format_date(value, format="medium", locale=Locale.parse(language()))


def moment(value: dt.datetime | None) -> str:
    if value is None:
        return ""
    return format_datetime(value, format="medium", locale=Locale.parse(language()), tzinfo=dt.UTC) + " UTC"


def init_app(app: Flask) -> None:
    """Jinja's i18n extension with gettext callables that follow the request's language."""
    app.jinja_env.add_extension("jinja2.ext.i18n")
    # newstyle: Jinja formats ``%(name)s`` itself (and escapes the values), so it gets the bare lookups
    app.jinja_env.install_gettext_callables(lambda message: translations(language()).gettext(message),
                                            lambda s, p, n: translations(language()).ngettext(s, p, n),
                                            newstyle=True)
    app.jinja_env.filters.update(number=number, date=date, moment=moment)
    app.jinja_env.globals["console_language"] = language
