"""Rendering pages: one jinja2 environment per language (gettext installed once, and
the filters that write numbers and labels the language's way), and the context every
page gets (person, CSRF token, language, formatters)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web
from markupsafe import Markup, escape

from web.keys import ENVIRONMENTS
from web.ui import i18n
from web.ui.security import csrf_token, current_user

TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "templates"
LANG = web.RequestKey("lang", str)


def colon_filter(lang: str) -> Callable[[str], Markup]:
    """``{{ _("Organiser")|colon }}``: the label and its colon as ``lang`` writes them
    (``Organisateur :`` with a no-break space in French); the label is escaped unless it
    is markup already, as a translated message is."""
    template = escape(i18n.colon_template(lang))

    def colon(label: str) -> Markup:
        return template % {"label": label}

    return colon


def number_filter(lang: str) -> Callable[..., str]:
    """``{{ value|number(1) }}``: a figure with the language's decimal sign and grouping."""
    return i18n.Formatter(lang).number


def make_environments() -> dict[str, jinja2.Environment]:
    envs: dict[str, jinja2.Environment] = {}
    for lang in i18n.LANGUAGES:
        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
            autoescape=jinja2.select_autoescape(["html", "svg"]),
            undefined=jinja2.StrictUndefined,
            extensions=["jinja2.ext.i18n"],
        )
        env.install_gettext_translations(i18n.translations(lang), newstyle=True)  # type: ignore[attr-defined]
        env.filters["colon"] = colon_filter(lang)
        env.filters["number"] = number_filter(lang)
        envs[lang] = env
    return envs


def language(request: web.Request) -> str:
    lang = request.get(LANG)
    if lang is None:
        user = current_user(request)
        lang = i18n.choose_language(
            None,
            request.cookies.get(i18n.LANG_COOKIE),
            user.locale if user else None,
            request.headers.get("Accept-Language", ""),
        )
        request[LANG] = lang
    return lang


def gettext(request: web.Request, message: str, **values: Any) -> str:
    """Translate a message from Python code (flash messages, errors)."""
    text = i18n.translations(language(request)).gettext(message)
    return text % values if values else text


def render_text(request: web.Request, name: str, **context: Any) -> str:
    lang = language(request)
    env = request.app[ENVIRONMENTS][lang]
    user = current_user(request)
    return env.get_template(name).render(
        user=user,
        csrf_token=csrf_token(request),
        lang=lang,
        languages=i18n.LANGUAGES,
        fmt=i18n.Formatter(lang),
        path=request.path_qs,
        **context,
    )


def render(request: web.Request, name: str, *, status: int = 200, **context: Any) -> web.Response:
    response = web.Response(
        text=render_text(request, name, **context), status=status, content_type="text/html"
    )
    response.headers["Content-Language"] = language(request)
    response.headers.setdefault("Cache-Control", "no-store")
    return response


async def render_error(request: web.Request, status: int, code: str, message: str) -> web.Response:
    """An error page that names the stable code, in the visitor's language."""
    return render(
        request, "error.html", status=status, code=code, message=gettext(request, message)
    )
