"""Small helpers for the accounts and admin forms: reading a posted form as plain
strings, and turning a refused command into a message beside the field it concerns."""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from orchestrator.errors import DomainError
from web.ui import i18n
from web.ui.render import gettext, language


def N_(message: str) -> str:
    """Marks a message for the catalogues; it is translated where it is shown."""
    return message


# What the person reads for each stable code (English msgids, translated per request).
MESSAGES: Mapping[str, str] = {
    "invalid-email": N_("Enter an email address such as name@example.org."),
    "weak-password": N_("A password has at least 10 characters."),
    "same-password": N_("The new password must differ from the current one."),
    "wrong-password": N_("This is not your current password."),
    "password-mismatch": N_("The two new passwords differ."),
    "duplicate-email": N_("Someone already has an account with this email address."),
    "invalid-name": N_("Enter a name."),
    "unknown-timezone": N_("Choose a time zone from the list."),
    "invalid-language": N_("Choose a language from the list."),
    "invalid-role": N_("Choose a role from the list."),
    "needs-centre": N_("Staff and organisers belong to a centre: choose one."),
    "unknown-centre": N_("Choose a centre from the list."),
    "invalid-number": N_("Enter a whole number."),
    "invalid-buffer": N_("A buffer is between 0 and 240 minutes."),
    "invalid-max-duration": N_(
        "A maximum duration is at least 5 minutes (leave empty for no limit)."
    ),
    "invalid-max-advance": N_("Rooms are booked 1 to 1095 days ahead."),
    "invalid-alias": N_("Each alias is a name on one line, at most 200 characters."),
    "duplicate-room": N_("This centre already has a room with this name."),
    "duplicate-centre": N_("A centre with this name exists."),
    "disable-self": N_("You cannot disable your own account."),
}


async def posted(request: web.Request) -> dict[str, str]:
    """The form's text fields (files and the CSRF token left out), stripped of
    nothing: what the person typed is shown back as typed."""
    form = await request.post()
    return {k: v for k, v in form.items() if isinstance(v, str) and k != "csrf_token"}


def ngettext(request: web.Request, singular: str, plural: str, n: int) -> str:
    """A message with a number in it (``%(count)d``), in the visitor's language."""
    text: str = i18n.translations(language(request)).ngettext(singular, plural, n)
    return text % {"count": n}


def message(request: web.Request, code: str, fallback: str = "") -> str:
    if code in MESSAGES:
        return gettext(request, MESSAGES[code])
    return fallback or code


class FieldErrors(dict[str, str]):
    """Field name -> translated message, for the template to show beside each field."""

    def add(self, request: web.Request, field: str, code: str, fallback: str = "") -> None:
        self.setdefault(field, message(request, code, fallback))

    def add_domain(
        self, request: web.Request, error: DomainError, fields: Mapping[str, str]
    ) -> None:
        """Place a refused command's message beside the field its code concerns
        (``fields``: code -> field; anything else goes to the form as a whole)."""
        self.add(request, fields.get(error.code, "_form"), error.code, error.message)


def number(
    request: web.Request,
    errors: FieldErrors,
    values: Mapping[str, str],
    field: str,
    *,
    optional: bool = False,
) -> int | None:
    raw = values.get(field, "").strip()
    if not raw and optional:
        return None
    try:
        return int(raw)
    except ValueError:
        errors.add(request, field, "invalid-number")
        return None
