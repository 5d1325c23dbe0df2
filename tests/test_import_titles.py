"""The word an import titles an event that names nothing with, in the importer's
language: the command line's locale (as gettext reads it), the API's Accept-Language."""

from __future__ import annotations

import pytest

from web.import_titles import environment_language, request_language, untitled


def test_busy_is_said_in_each_language_of_the_interface() -> None:
    assert [untitled(lang) for lang in ("en", "fr", "nl")] == ["Busy", "Occupé", "Bezet"]
    assert untitled("de") == "Busy"


@pytest.mark.parametrize(
    ("environ", "lang"),
    [
        ({"LANG": "fr_FR.UTF-8"}, "fr"),
        ({"LANG": "nl_BE.UTF-8"}, "nl"),
        ({"LC_ALL": "nl_NL.UTF-8", "LANG": "fr_FR.UTF-8"}, "nl"),
        ({"LC_MESSAGES": "fr_CA.UTF-8", "LANG": "en_GB.UTF-8"}, "fr"),
        ({"LANG": "de_DE.UTF-8", "LANGUAGE": "de:nl"}, "nl"),
        ({"LANG": "fr_FR@euro"}, "fr"),
        # Under the C locale gettext translates nothing, whatever LANGUAGE says.
        ({"LANG": "C.UTF-8", "LANGUAGE": "fr"}, "en"),
        ({"LC_ALL": "POSIX", "LANG": "fr_FR.UTF-8"}, "en"),
        ({"LANG": "de_DE.UTF-8"}, "en"),
        ({}, "en"),
    ],
)
def test_the_command_line_speaks_the_language_of_its_locale(
    environ: dict[str, str], lang: str
) -> None:
    assert environment_language(environ) == lang


def test_the_api_speaks_the_language_the_request_asks_for() -> None:
    assert request_language("nl-BE,nl;q=0.9,en;q=0.5") == "nl"
    assert request_language("de-DE, fr;q=0.8") == "fr"
    assert request_language("") == "en"
