"""Issue 10: French and Dutch pages follow their languages' typography.

French: a no-break space (U+00A0, the one sign used throughout) before ``:`` ``;``
``?`` ``!`` and inside « », the typographic apostrophe (U+2019), a decimal comma.
Dutch: no space before those signs, the typographic apostrophe ("foto" + U+2019 + "s"),
a decimal comma.

Here: the rules as functions (tests/test_typography_pages.py applies them to real
pages), every French and Dutch catalogue entry checked against them, and the number
and label formatting the pages use.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from orchestrator.calendars.ical_out.model import BookingInfo, RoomInfo
from tests.test_i18n_complete import placeholder_problems
from web.ui import booking_mail, i18n, render

ROOT = Path(__file__).resolve().parent.parent
NBSP = "\u00a0"
HIGH_SIGNS = ":;?!"
SPACES = " \t\n\u00a0\u202f\u2009"
URL = re.compile(r"\w+://\S+")
# A time (10:00, UTC+01:00) and a range of numbers keep their colon tight.
BETWEEN_DIGITS = re.compile(r"(?<=\d)[:](?=\d)")
DECIMAL_POINT = re.compile(r"(?<![\d.])\d+\.\d+(?![\d.])")
DUTCH_THOUSANDS = re.compile(r"(?<![\d.,])\d{1,3}(?:\.\d{3})+(?![\d.])")
STRAIGHT_APOSTROPHE = "'"


# --- the rules ----------------------------------------------------------------------------


def _signs(text: str) -> Iterator[tuple[int, str]]:
    """The high signs of ``text`` that are punctuation, not part of a URL or a time."""
    skip = {i for m in URL.finditer(text) for i in range(m.start(), m.end())}
    skip |= {m.start() for m in BETWEEN_DIGITS.finditer(text)}
    for index, char in enumerate(text):
        if char in HIGH_SIGNS and index not in skip:
            yield index, char


def french_problems(text: str) -> list[str]:
    problems = []
    for index, sign in _signs(text):
        before = text[index - 1] if index else ""
        if before != NBSP:
            problems.append(
                f"{text[max(index - 12, 0) : index + 1]!r}: no no-break space before {sign!r}"
            )
    for match in re.finditer(r"«(.?)", text):
        if match.group(1) != NBSP:
            problems.append(
                f"{text[match.start() : match.start() + 12]!r}: no no-break space after «"
            )
    for match in re.finditer(r"(.?)»", text):
        if match.group(1) != NBSP:
            problems.append(
                f"{text[max(match.start() - 11, 0) : match.end()]!r}: no no-break space before »"
            )
    if '"' in text or "“" in text or "”" in text:
        problems.append(f"{text[:40]!r}: English quotes where French writes « »")
    problems += _common_problems(text)
    return problems


def dutch_problems(text: str) -> list[str]:
    problems = []
    for index, sign in _signs(text):
        if index and text[index - 1] in SPACES:
            problems.append(f"{text[max(index - 12, 0) : index + 1]!r}: a space before {sign!r}")
    if '"' in text:
        problems.append(f"{text[:40]!r}: straight quotes where Dutch writes „ ” or ‘ ’")
    return problems + _common_problems(text, thousands=DUTCH_THOUSANDS)


def _common_problems(text: str, thousands: re.Pattern[str] | None = None) -> list[str]:
    problems = []
    if STRAIGHT_APOSTROPHE in text:
        at = text.index(STRAIGHT_APOSTROPHE)
        problems.append(f"{text[max(at - 12, 0) : at + 6]!r}: a straight apostrophe, not ’")
    grouped = {m.start() for m in thousands.finditer(text)} if thousands else set()
    for match in DECIMAL_POINT.finditer(text):
        if not any(g <= match.start() < g + 20 for g in grouped):
            problems.append(f"{match.group()!r}: a decimal point, not a decimal comma")
    return problems


CHECKS = {"fr": french_problems, "nl": dutch_problems}
OWN_COLON = {"fr": NBSP + ":", "nl": ":"}


def ending_problems(lang: str, msgid: str, msgstr: str) -> list[str]:
    """A sign that ends the English ends the translation too (a label's colon is not
    lost on the way), written the language's way."""
    sign = msgid.rstrip()[-1:]
    if sign not in HIGH_SIGNS or not msgstr:
        return []
    wanted = (NBSP if lang == "fr" else "") + sign
    if msgstr.rstrip().endswith(wanted):
        return []
    return [
        f"{msgid!r} ends with {sign!r}, its translation {msgstr!r} does not end with {wanted!r}"
    ]


def catalogue_problems(lang: str, path: Path) -> list[str]:
    with path.open("rb") as fh:
        catalogue = read_po(fh, locale=lang)
    found = []
    for message in catalogue:
        if not message.id or not message.string:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        for index, text in enumerate(strings):
            source = ids[min(index, len(ids) - 1)]
            where = f"{path.relative_to(ROOT)}:{message.lineno}"
            for problem in CHECKS[lang](text) + ending_problems(lang, source, text):
                found.append(f"{where}: {problem}")
        found += [
            f"{path.relative_to(ROOT)}:{message.lineno}: {problem}"
            for problem in placeholder_problems(message.id, message.string)
        ]
    return found


def catalogue_files() -> list[tuple[str, Path]]:
    return [
        (lang, path)
        for lang in CHECKS
        for path in sorted((ROOT / "web" / "locale" / lang / "LC_MESSAGES").glob("*.po"))
    ]


# --- the catalogues -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lang", "path"), catalogue_files(), ids=lambda v: v.name if isinstance(v, Path) else v
)
def test_every_french_and_dutch_entry_follows_its_typography(lang: str, path: Path) -> None:
    problems = catalogue_problems(lang, path)
    assert not problems, f"{len(problems)} entries break {lang} typography:\n" + "\n".join(problems)


def test_the_rules_catch_what_the_user_found() -> None:
    assert french_problems("Organisateur:")
    assert french_problems("Organisateur :")  # an ordinary space breaks before the colon
    assert french_problems("Organisateur\u202f:")  # one no-break space, used consistently
    assert french_problems("Déjà parti? Revenez!")
    assert french_problems("Aujourd'hui")
    assert french_problems("T-19.95 s")
    assert french_problems("pour « %(title)s»") and french_problems("pour «%(title)s »")
    assert french_problems('pour "%(title)s"')
    assert french_problems("%(room)s: %(when)s")
    assert not french_problems(
        f"Aujourd’hui{NBSP}: T-19,95 s à 10:00{NBSP}; voir https://example.org/a?b=1 "
        f"pour «{NBSP}%(title)s{NBSP}»"
    )
    assert dutch_problems("Organisator :") and dutch_problems(f"Organisator{NBSP}:")
    assert dutch_problems("foto's") and dutch_problems("T-19.95 s")
    assert not dutch_problems("Organisator: 1.234 foto’s om 10:00, T-19,95 s; klaar? Ja!")
    assert ending_problems("fr", "Rooms:", "Salles")
    assert ending_problems("fr", "Rooms:", "Salles :")
    assert not ending_problems("fr", "Rooms:", f"Salles{NBSP}:")
    assert ending_problems("nl", "Rooms:", "Zalen")
    assert not ending_problems("nl", "Rooms:", "Zalen:")


def test_the_label_colon_is_each_language_s_own() -> None:
    for lang, colon in OWN_COLON.items():
        assert i18n.with_colon(i18n.translations(lang).gettext, "X") == "X" + colon
    assert i18n.with_colon(i18n.translations("en").gettext, "X") == "X:"


def test_numbers_take_the_language_s_decimal_sign() -> None:
    fr, nl, en = (i18n.Formatter(lang) for lang in ("fr", "nl", "en"))
    assert fr.number(-19.95, 2, exact=True, sign=True) == "-19,95"
    assert nl.number(19.95, 2, exact=True, sign=True) == "+19,95"
    assert en.number(-19.95, 2, exact=True, sign=True) == "-19.95"
    assert (fr.number(24.5), nl.number(24.5), en.number(24.5)) == ("24,5", "24,5", "24.5")
    assert fr.number(24.0) == "24" and fr.number(12.0, 2, exact=True) == "12,00"
    assert fr.number(12345.6) == "12\u202f345,6" and nl.number(12345.6) == "12.345,6"


def test_templates_have_a_colon_and_a_number_filter_per_language() -> None:
    envs = render.make_environments()
    source = (
        '{{ _("Organiser")|colon }} {{ value|colon }} '
        "{{ 24.5|number }} {{ -19.95|number(2, exact=True, sign=True) }}"
    )
    shown = {
        lang: envs[lang].from_string(source).render(value="<b>") for lang in ("en", "fr", "nl")
    }
    assert shown["en"] == "Organiser: &lt;b&gt;: 24.5 -19.95"
    assert shown["fr"] == f"Organisateur{NBSP}: &lt;b&gt;{NBSP}: 24,5 -19,95"
    assert shown["nl"] == "Organisator: &lt;b&gt;: 24,5 -19,95"


def test_an_invitation_mail_in_french_writes_each_site_s_time_after_a_french_colon() -> None:
    paris = RoomInfo("r1", "Salle Bleue", "Fontainebleau", "Europe/Paris")
    montreal = RoomInfo("r2", "Salle 2", "Montréal", "America/Toronto")
    booking = BookingInfo(
        id="b",
        uid="b@telecentre",
        title="Comité de pilotage",
        timezone="Europe/Paris",
        start_local=datetime(2026, 12, 8, 15, 0),
        end_local=datetime(2026, 12, 8, 16, 0),
        rooms=(paris, montreal),
    )
    bodies = {}
    for lang in CHECKS:
        _, bodies[lang] = booking_mail.Messages(lang).invitation(
            lang, booking, organiser="Olga", booking_url=None, guest_name=None, guest_link=None
        )
        problems = [p for line in bodies[lang].splitlines() for p in CHECKS[lang](line)]
        assert not problems, (lang, problems)
    assert f"\n  Montréal{NBSP}: 8 déc. 2026 09:00–10:00 (America/Toronto)\n" in bodies["fr"]
    assert "\n  Montréal: 8 dec 2026 09:00–10:00 (America/Toronto)\n" in bodies["nl"]
