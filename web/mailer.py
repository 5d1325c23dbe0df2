"""Email: what the outbox holds (``orchestrator.outbox``) goes out through SMTP.

- ``send_due(services) -> int``: one pass. The mail that is due (by the service's
  clock) is sent over one SMTP connection, in a worker thread (stdlib ``smtplib``
  blocks); each is marked sent, or failed with the server's answer. A refusal for
  good (a 5xx reply: unknown recipient, rejected content) is never retried; anything
  else (server unreachable, 4xx, connection lost) is retried with the outbox's
  backoff, so nothing is lost while the server is away.
- ``run_mailer(services, interval)``: ``send_due`` every ``interval`` seconds until
  cancelled; the application starts it when ``smtp_host`` is set (without it the
  mail stays queued). The interval polls the outbox, which other processes (the
  CLI, another node) write too; when a mail is due is judged on the injected clock.
- ``queue_release_notices``: a room released for no-show is told to the staff of
  its centre (called by the scheduler's release hook in ``web.app``).

A message is ``text/plain``; with an invitation it is ``multipart/mixed`` with the
calendar attached as ``invite.ics`` (``text/calendar; method=REQUEST|CANCEL``, RFC
6047), which mail programs offer to add to the calendar.
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid

from sqlmodel import col, select

from orchestrator import outbox
from orchestrator.clock import instant
from orchestrator.db import DbSession
from orchestrator.models import Booking, Centre, OutboxMail, Room, Session, User
from web.services import Services
from web.settings import Settings
from web.ui import i18n

log = logging.getLogger(__name__)

SMTP_TIMEOUT = 30.0
BATCH = 20


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one mail: sent (``error`` None), or failed with the reason."""

    mail_id: str
    error: str | None = None
    permanent: bool = False


class _ConnectionLost(Exception):
    pass


# --- building a message -------------------------------------------------------------------


# Headers are folded only past SMTP's line limit: CPython's folder drops the space
# between two RFC 2047 encoded words it splits a line at (a French subject such as
# "rejoint « Comité »" came out as "rejoint« Comité »").
POLICY = SMTP.clone(max_line_length=998)


def build_message(mail: OutboxMail, sender: str, now: datetime) -> EmailMessage:
    """The mail as sent: 7-bit clean (quoted-printable text, base64 calendar), so
    it passes any SMTP server, 8BITMIME or not."""
    message = EmailMessage(policy=POLICY)
    message["From"] = sender
    message["To"] = mail.recipient
    message["Subject"] = mail.subject
    message["Date"] = format_datetime(now)
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or "localhost")
    # Automatic mail: vacation responders and the like must not answer it (RFC 3834).
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(mail.body, cte="quoted-printable")
    if mail.ics:
        params = {"method": mail.ics_method} if mail.ics_method else {}
        message.add_attachment(
            mail.ics, subtype="calendar", filename="invite.ics", params=params, cte="base64"
        )
    return message


# --- talking SMTP (in a worker thread) ----------------------------------------------------


def _reply(code: int, text: bytes | str) -> str:
    body = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    return f"{code} {body}".strip()


def _send_one(smtp: smtplib.SMTP, sender: str, mail_id: str, message: EmailMessage) -> Outcome:
    recipient = str(message["To"])
    try:
        smtp.send_message(message, from_addr=sender, to_addrs=[recipient])
    except smtplib.SMTPRecipientsRefused as exc:
        code, text = exc.recipients.get(recipient, (0, b"recipient refused"))
        return Outcome(mail_id, _reply(code, text), permanent=500 <= code < 600)
    except smtplib.SMTPServerDisconnected as exc:
        raise _ConnectionLost(str(exc) or "connection lost") from exc
    except smtplib.SMTPResponseException as exc:  # sender refused, data refused
        return Outcome(
            mail_id, _reply(exc.smtp_code, exc.smtp_error), permanent=500 <= exc.smtp_code < 600
        )
    except (OSError, smtplib.SMTPException) as exc:
        raise _ConnectionLost(str(exc) or type(exc).__name__) from exc
    return Outcome(mail_id)


def deliver(settings: Settings, batch: Sequence[tuple[str, EmailMessage]]) -> list[Outcome]:
    """Send ``batch`` ((mail id, message), ...) over one connection. Blocking."""
    if settings.smtp_host is None:
        return [Outcome(mail_id, "no SMTP server is set") for mail_id, _ in batch]
    outcomes: list[Outcome] = []
    try:
        with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=SMTP_TIMEOUT) as smtp:
            smtp.ehlo()
            if settings.smtp_starttls:
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
            if settings.smtp_username:
                smtp.login(settings.smtp_username, settings.smtp_password or "")
            for mail_id, message in batch:
                outcomes.append(_send_one(smtp, settings.mail_from, mail_id, message))
    except _ConnectionLost as exc:
        reason = f"SMTP connection lost: {exc}"
        outcomes += [Outcome(mail_id, reason) for mail_id, _ in batch[len(outcomes) :]]
    except (OSError, smtplib.SMTPException) as exc:
        # Unreachable, refused the greeting, STARTTLS or the login: try again later.
        reason = (
            f"SMTP server {settings.smtp_host}:{settings.smtp_port}: {exc or type(exc).__name__}"
        )
        outcomes += [Outcome(mail_id, reason) for mail_id, _ in batch[len(outcomes) :]]
    return outcomes


# --- the outbox pass ----------------------------------------------------------------------


def _now(services: Services) -> datetime:
    return instant(services.clock)


async def send_due(services: Services) -> int:
    """Send what is due; returns how many were sent."""
    now = _now(services)
    mails = await services.db.run(lambda s: outbox.due(s, now, BATCH))
    if not mails:
        return 0
    settings = services.settings
    batch = [(m.id, build_message(m, settings.mail_from, now)) for m in mails]
    outcomes = await asyncio.to_thread(deliver, settings, batch)
    done = _now(services)

    def record(s: DbSession) -> None:
        for outcome in outcomes:
            if outcome.error is None:
                outbox.mark_sent(s, outcome.mail_id, done)
            else:
                outbox.mark_failed(
                    s, outcome.mail_id, done, outcome.error, permanent=outcome.permanent
                )

    await services.db.run(record)
    for outcome in outcomes:
        if outcome.error is not None:
            level = logging.ERROR if outcome.permanent else logging.WARNING
            log.log(level, "mail %s not sent: %s", outcome.mail_id, outcome.error)
    return sum(o.error is None for o in outcomes)


async def run_mailer(services: Services, interval: float = 2.0) -> None:
    """``send_due`` forever, every ``interval`` seconds (sooner while a full batch
    was just sent); a failing pass is logged and the next one tries again."""
    while True:
        sent = 0
        try:
            sent = await send_due(services)
        except Exception:
            log.exception("the mail pass failed; trying again in %.0f s", interval)
        await asyncio.sleep(0 if sent >= BATCH else interval)


# --- what the service itself tells people -------------------------------------------------


def _text(lang: str, message: str, **values: object) -> str:
    text: str = i18n.translations(lang).gettext(message)
    return text % values if values else text


def queue_release_notices(
    db: DbSession,
    released: Sequence[tuple[str, str]],
    now: datetime,
    *,
    no_show_seconds: int,
    public_url: str | None = None,
) -> int:
    """Mail the staff of each released room's centre (session id, room id); each in
    their language. Returns how many mails were queued."""
    queued = 0
    for session_id, room_id in released:
        room, session = db.get(Room, room_id), db.get(Session, session_id)
        if room is None or session is None:
            continue
        centre = db.get(Centre, room.centre_id)
        booking = db.get(Booking, session.booking_id)
        if centre is None or booking is None:
            continue
        staff = db.exec(
            select(User)
            .where(col(User.role) == "staff")
            .where(col(User.centre_id) == room.centre_id)
            .where(col(User.disabled).is_(False))
        ).all()
        for person in staff:
            lang = person.locale if person.locale in i18n.LANGUAGES else i18n.DEFAULT_LANGUAGE
            fmt = i18n.Formatter(lang)
            title = " ".join((session.title or booking.title).split())  # one line, for the subject
            when = (
                f"{fmt.date(session.start_utc, centre.timezone, 'medium')} "
                f"{fmt.time(session.start_utc, centre.timezone)} ({centre.timezone})"
            )
            lines = [
                _text(lang, "Hello %(name)s,", name=person.name),
                "",
                _text(
                    lang,
                    "The room %(room)s was booked for “%(title)s” on %(when)s, but its agent "
                    "had not joined %(minutes)d minutes after the start. The room is released: "
                    "it has left that session and is free again.",
                    room=room.name,
                    title=title,
                    when=when,
                    minutes=no_show_seconds // 60,
                ),
                "",
                _text(lang, "Check that the room's computer is on and its agent is running."),
            ]
            if public_url:
                url = f"{public_url.rstrip('/')}/sessions/{session_id}"
                lines += ["", _text(lang, "The session: %(url)s", url=url)]
            subject = _text(
                lang,
                "Room released: %(room)s did not join “%(title)s”",
                room=room.name,
                title=title,
            )
            outbox.enqueue(db, person.email, subject, "\n".join(lines), now=now, kind="alert")
            queued += 1
    return queued


async def tell_centres(services: Services, released: Sequence[tuple[str, str]]) -> None:
    """Queue the release notices (the release hook's asynchronous half)."""
    now = _now(services)
    settings = services.settings
    try:
        await services.db.run(
            lambda s: queue_release_notices(
                s,
                released,
                now,
                no_show_seconds=services.booking_settings.no_show_seconds,
                public_url=settings.public_url,
            )
        )
    except Exception:
        log.exception("could not queue the no-show notices for %s", released)
