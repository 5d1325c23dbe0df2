"""Email through a real SMTP server on loopback (aiosmtpd): an invitation arrives with
its .ics, which parses; mail queued while the server is down is retried later and
not lost; a recipient the server refuses is recorded as failed with the server's
answer and not retried; a room released for no-show is told to its centre's staff."""

from __future__ import annotations

import asyncio
import email
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any, TypeVar

import pytest
import pytest_asyncio
from aiosmtpd.controller import Controller
from icalendar import Calendar

from orchestrator import centres, outbox
from orchestrator.booking import one_off
from orchestrator.calendars.ical_out.export import invitation_ics
from orchestrator.calendars.ical_out.load import load_booking
from orchestrator.clock import FakeClock
from orchestrator.models import OutboxMail
from orchestrator.people import accounts
from tests.e2e_support import free_port
from tests.ui_support import PASSWORD, RunningApp, running_app
from web import mailer
from web.settings import Settings

T = TypeVar("T")
START = datetime(2030, 3, 18, 8, 0, tzinfo=UTC)  # a Monday, 09:00 in Paris
SENDER = "telecentre@telecentre.test"
REFUSED = "nobody@telecentre.test"


@dataclass
class Inbox:
    """An SMTP server's handler: keeps what it accepts, refuses one address for good."""

    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=threading.Condition)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        if address == REFUSED:
            return "550 5.1.1 <nobody@telecentre.test>: no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=default_policy)
        assert isinstance(message, EmailMessage)
        with self.arrived:
            self.messages.append(message)
            self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
            self.arrived.notify_all()
        return "250 Message accepted for delivery"

    async def wait_for(self, count: int, timeout: float = 15.0) -> list[EmailMessage]:
        def wait() -> bool:
            with self.arrived:
                return self.arrived.wait_for(lambda: len(self.messages) >= count, timeout)

        assert await asyncio.to_thread(wait), f"{len(self.messages)} of {count} mails arrived"
        return list(self.messages)


@dataclass
class SmtpServer:
    port: int
    inbox: Inbox
    controller: Controller | None = None

    def start(self) -> None:
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer(free_port(), Inbox())
    try:
        yield server
    finally:
        server.stop()


@pytest_asyncio.fixture
async def mail_app(tmp_path: Path, smtp: SmtpServer) -> AsyncIterator[tuple[RunningApp, FakeClock]]:
    clock = FakeClock(START.timestamp())
    settings = Settings(
        data_dir=tmp_path,
        smtp_host="127.0.0.1",
        smtp_port=smtp.port,
        mail_from=SENDER,
        public_url="https://telecentre.example",
    )
    async with running_app(settings, clock=clock) as app:
        yield app, clock


async def until(what: str, check: Callable[[], Awaitable[T | None]], timeout: float = 15.0) -> T:
    """Wait (bounded) for ``check`` to return something true."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def _row(app: RunningApp, mail_id: str) -> OutboxMail:
    row: OutboxMail | None = await app.services.db.run(lambda s: s.get(OutboxMail, mail_id))
    assert row is not None
    return row


async def _invitation(app: RunningApp, recipient: str) -> OutboxMail:
    """An invitation as the booking form queues it: a real booking's .ics attached."""
    now = datetime.fromtimestamp(app.services.clock.now(), UTC)

    def book(s: Any) -> OutboxMail:
        paris = centres.add_centre(s, "Fontainebleau", "Europe/Paris")
        amsterdam = centres.add_centre(s, "Amsterdam Bright City", "Europe/Amsterdam")
        rooms = [
            centres.add_room(s, paris.id, "Salle Bleue")[0].id,
            centres.add_room(s, amsterdam.id, "Smart Work Room")[0].id,
        ]
        start = START + timedelta(days=1)
        booking, _ = one_off.book(
            s, "Délégation d'Amsterdam", start, start + timedelta(hours=1), rooms
        )
        ics = invitation_ics(load_booking(s, booking.id), stamp=now).decode()
        return outbox.enqueue(
            s,
            recipient,
            "Invitation: Délégation d'Amsterdam",
            "Bonjour,\nvous êtes invité·e.",
            now=now,
            ics=ics,
            ics_method="REQUEST",
            kind="invitation",
        )

    mail: OutboxMail = await app.services.db.run(book)
    return mail


# --- the tests ------------------------------------------------------------------------------


async def test_an_invitation_arrives_with_an_ics_attachment_that_parses(
    mail_app: tuple[RunningApp, FakeClock], smtp: SmtpServer
) -> None:
    app, _ = mail_app
    smtp.start()
    mail = await _invitation(app, "anne@example.org")
    # The mailer started with the service sends it by itself.
    (message,) = await smtp.inbox.wait_for(1)
    assert smtp.inbox.envelopes == [(SENDER, ["anne@example.org"])]
    assert message["Subject"] == "Invitation: Délégation d'Amsterdam"
    assert message["From"] == SENDER and message["To"] == "anne@example.org"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message.get_content_type() == "multipart/mixed"
    body = message.get_body(("plain",))
    assert body is not None and "vous êtes invité·e." in body.get_content()
    (attachment,) = list(message.iter_attachments())
    assert attachment.get_filename() == "invite.ics"
    assert attachment.get_content_type() == "text/calendar"
    assert attachment.get_param("method") == "REQUEST"
    calendar = Calendar.from_ical(attachment.get_content())
    assert str(calendar["METHOD"]) == "REQUEST"
    (event,) = calendar.walk("VEVENT")
    assert str(event["SUMMARY"]) == "Délégation d'Amsterdam"
    assert event.decoded("DTSTART").astimezone(UTC) == START + timedelta(days=1)
    row = await until("the mail to be marked sent", lambda: _sent(app, mail.id))
    assert row.attempts == 1 and row.last_error is None


async def _sent(app: RunningApp, mail_id: str) -> OutboxMail | None:
    row = await _row(app, mail_id)
    return row if row.sent_at is not None else None


async def test_mail_queued_while_the_server_is_down_is_retried_later_and_not_lost(
    mail_app: tuple[RunningApp, FakeClock], smtp: SmtpServer
) -> None:
    app, clock = mail_app
    mail = await _invitation(app, "anne@example.org")

    async def failed_once() -> OutboxMail | None:
        row = await _row(app, mail.id)
        return row if row.attempts >= 1 else None

    row = await until("a failed attempt", failed_once)
    assert row.sent_at is None and row.last_error is not None
    assert f"127.0.0.1:{smtp.port}" in row.last_error
    # Not before the backoff: a pass now sends nothing, even with the server back.
    smtp.start()
    assert await mailer.send_due(app.services) == 0
    assert smtp.inbox.messages == []
    await clock.advance(outbox.retry_delay(1).total_seconds())
    (message,) = await smtp.inbox.wait_for(1)
    assert message["To"] == "anne@example.org"
    row = await until("the mail to be marked sent", lambda: _sent(app, mail.id))
    assert row.attempts == 2


async def test_a_recipient_the_server_refuses_is_recorded_as_failed_with_its_answer(
    mail_app: tuple[RunningApp, FakeClock], smtp: SmtpServer
) -> None:
    app, clock = mail_app
    smtp.start()
    now = datetime.fromtimestamp(clock.now(), UTC)

    def queue(s: Any) -> tuple[str, str]:
        bad = outbox.enqueue(s, REFUSED, "Hello", "Body", now=now)
        good = outbox.enqueue(s, "anne@example.org", "Hello", "Body", now=now)
        return bad.id, good.id

    bad_id, good_id = await app.services.db.run(queue)
    (message,) = await smtp.inbox.wait_for(1)
    assert message["To"] == "anne@example.org"

    async def refused() -> OutboxMail | None:
        row = await _row(app, bad_id)
        return row if row.last_error else None

    row = await until("the refusal to be recorded", refused)
    assert row.sent_at is None
    assert row.last_error is not None and row.last_error.startswith("550 5.1.1")
    assert "no such mailbox" in row.last_error
    assert (await until("the good one sent", lambda: _sent(app, good_id))).sent_at
    # Refused for good: not tried again, however long we wait.
    await clock.advance(24 * 3600)
    assert await mailer.send_due(app.services) == 0
    assert (await _row(app, bad_id)).attempts == row.attempts
    assert [m.id for m in await app.services.db.run(outbox.failed)] == [bad_id]


async def test_a_room_released_for_no_show_is_told_to_its_centres_staff(
    mail_app: tuple[RunningApp, FakeClock], smtp: SmtpServer
) -> None:
    app, clock = mail_app
    smtp.start()

    def network(s: Any) -> str:
        paris = centres.add_centre(s, "Fontainebleau", "Europe/Paris")
        amsterdam = centres.add_centre(s, "Amsterdam Bright City", "Europe/Amsterdam")
        blue = centres.add_room(s, paris.id, "Salle Bleue")[0].id
        smart = centres.add_room(s, amsterdam.id, "Smart Work Room")[0].id
        accounts.create_user(
            s, "paul@example.org", "Paul", PASSWORD, "staff", paris.id, locale="fr"
        )
        accounts.create_user(s, "olga@example.org", "Olga", PASSWORD, "organiser", paris.id)
        accounts.create_user(s, "anouk@example.org", "Anouk", PASSWORD, "staff", amsterdam.id)
        start = START + timedelta(minutes=5)
        booking, session = one_off.book(
            s, "Comité de pilotage", start, start + timedelta(hours=1), [blue, smart]
        )
        # A title stored before titles were held to one line (orchestrator/inputs.py):
        # the mail must still fold it into one header line.
        booking.title = "Comité\nde pilotage"
        s.add(booking)
        return str(session.id)

    session_id = await app.services.db.run(network)
    # No agent ever joins: past the no-show delay both rooms are released. The steps
    # are taken here, so the test does not depend on when the scheduler wakes.
    scheduler = app.services.scheduler
    await clock.set((START + timedelta(minutes=5)).timestamp())
    await scheduler.step()  # preparing, live
    await clock.advance(app.services.booking_settings.no_show_seconds)
    await scheduler.step()  # released: the hook queues the notices
    messages = await smtp.inbox.wait_for(2)
    by_recipient = {str(m["To"]): m for m in messages}
    assert set(by_recipient) == {"paul@example.org", "anouk@example.org"}
    paul = by_recipient["paul@example.org"]
    assert paul["Subject"] == (
        "Salle libérée\u00a0: Salle Bleue n’a pas rejoint «\u00a0Comité de pilotage\u00a0»"
    )
    text = paul.get_content()
    assert "Bonjour Paul," in text and "10 minutes" in text
    assert "(Europe/Paris)" in text
    assert f"https://telecentre.example/sessions/{session_id}" in text
    anouk = by_recipient["anouk@example.org"]
    assert "Smart Work Room" in anouk["Subject"] and "Hello Anouk," in anouk.get_content()
    assert "(Europe/Amsterdam)" in anouk.get_content()


async def test_without_an_smtp_server_mail_stays_queued(tmp_path: Path) -> None:
    clock = FakeClock(START.timestamp())
    async with running_app(Settings(data_dir=tmp_path), clock=clock) as app:
        now = START

        mail = await app.services.db.run(
            lambda s: outbox.enqueue(s, "anne@example.org", "Hello", "Body", now=now)
        )
        assert not any(t.get_name() == "mailer" for t in asyncio.all_tasks())
        outcomes = mailer.deliver(app.services.settings, [(mail.id, EmailMessage())])
        assert outcomes == [mailer.Outcome(mail.id, "no SMTP server is set")]
        row = await _row(app, mail.id)
        assert row.sent_at is None and row.attempts == 0


def test_a_french_subject_keeps_its_spaces_and_the_message_is_seven_bit_clean() -> None:
    """Regression: CPython's header folder dropped the space between two encoded
    words at a fold ("rejoint« Comité »")."""
    subject = "Salle libérée : Salle Bleue n'a pas rejoint « Comité de pilotage »"
    mail = OutboxMail(
        recipient="anne@example.org",
        subject=subject,
        body="Bonjour Anne,\nla salle est libérée.",
        ics="BEGIN:VCALENDAR\r\nSUMMARY:Comité\r\nEND:VCALENDAR\r\n",
        ics_method="CANCEL",
        created_at=START,
        next_attempt_at=START,
    )
    raw = mailer.build_message(mail, SENDER, START).as_bytes()
    assert max(raw) < 128
    parsed = email.message_from_bytes(raw, policy=default_policy)
    assert isinstance(parsed, EmailMessage)
    assert parsed["Subject"] == subject
    body = parsed.get_body(("plain",))
    text = body.get_content().replace("\r\n", "\n") if body is not None else ""
    assert text == "Bonjour Anne,\nla salle est libérée.\n"
    (attachment,) = list(parsed.iter_attachments())
    assert attachment.get_param("method") == "CANCEL"
    assert "SUMMARY:Comité" in attachment.get_content()
