"""The mail a booking from the form sends (``orchestrator.desk.web_booking.BookingMessages``),
in the recipient's language when known, else the organiser's."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from orchestrator.booking.recurrence import localize
from orchestrator.calendars.ical_out.model import BookingInfo, RoomInfo
from web.ui import i18n


def _lang(locale: str | None, fallback: str) -> str:
    base = (locale or "").replace("_", "-").split("-")[0].lower()
    return base if base in i18n.LANGUAGES else fallback


@dataclass(frozen=True, slots=True)
class Messages:
    """Mail texts; ``default_lang`` is the organiser's language on the form."""

    default_lang: str

    def _gettext(self, lang: str, message: str, **values: object) -> str:
        text: str = i18n.translations(lang).gettext(message)
        return text % values if values else text

    def _when(self, lang: str, booking: BookingInfo) -> list[str]:
        fmt = i18n.Formatter(lang)
        start: datetime = localize(booking.start_local, booking.timezone)
        end: datetime = localize(booking.end_local, booking.timezone)
        lines = [
            f"{fmt.date(start, booking.timezone)}, {fmt.time(start, booking.timezone)}–"
            f"{fmt.time(end, booking.timezone)} ({booking.timezone})"
        ]
        seen: set[str] = set()
        for room in booking.rooms:
            if room.centre in seen:
                continue
            seen.add(room.centre)
            centre = i18n.with_colon(i18n.translations(lang).gettext, room.centre)
            lines.append(
                f"  {centre} {fmt.date(start, room.timezone, 'medium')} "
                f"{fmt.time(start, room.timezone)}–{fmt.time(end, room.timezone)} ({room.timezone})"
            )
        if booking.rrules:
            lines.append(self._gettext(lang, "Repeats: %(rule)s", rule="; ".join(booking.rrules)))
        return lines

    @staticmethod
    def _rooms(rooms: Sequence[RoomInfo]) -> str:
        return ", ".join(f"{r.name} ({r.centre})" for r in rooms)

    def invitation(
        self,
        locale: str | None,
        booking: BookingInfo,
        *,
        organiser: str,
        booking_url: str | None,
        guest_name: str | None,
        guest_link: str | None,
    ) -> tuple[str, str]:
        lang = _lang(locale, self.default_lang)
        t = self._gettext
        subject = t(lang, "Invitation: %(title)s", title=booking.title)
        lines: list[str] = []
        if guest_name:
            lines += [t(lang, "Hello %(name)s,", name=guest_name), ""]
            lines.append(t(lang, "%(organiser)s invites you to a meeting:", organiser=organiser))
        else:
            lines.append(t(lang, "Your booking is confirmed:"))
        lines += ["", booking.title, *self._when(lang, booking), ""]
        lines.append(t(lang, "Rooms: %(rooms)s", rooms=self._rooms(booking.rooms)))
        if guest_link:
            lines += [
                "",
                t(lang, "Your personal link to join from a browser (do not share it):"),
                guest_link,
                t(lang, "It opens 15 minutes before the start."),
            ]
        if booking_url:
            lines += ["", t(lang, "The booking: %(url)s", url=booking_url)]
        lines += ["", t(lang, "The invitation is attached as a calendar file (.ics).")]
        return subject, "\n".join(lines) + "\n"

    def approval_request(
        self,
        locale: str | None,
        booking: BookingInfo,
        rooms: Sequence[RoomInfo],
        *,
        organiser: str,
        approvals_url: str,
    ) -> tuple[str, str]:
        lang = _lang(locale, self.default_lang)
        t = self._gettext
        subject = t(
            lang,
            "Approval requested: %(title)s in %(rooms)s",
            title=booking.title,
            rooms=", ".join(r.name for r in rooms),
        )
        lines = [
            t(
                lang,
                "%(organiser)s, from another centre, booked %(rooms)s:",
                organiser=organiser,
                rooms=self._rooms(rooms),
            ),
            "",
            booking.title,
            *self._when(lang, booking),
            "",
            t(lang, "The booking holds the rooms until you approve or decline it:"),
            approvals_url,
        ]
        return subject, "\n".join(lines) + "\n"
