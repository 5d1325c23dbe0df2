"""Acceptance 6: a booking made through the form reaches a real SMTP server (aiosmtpd on
loopback): the invitation with its .ics attached (which parses, METHOD:REQUEST) to the
organiser and the guest, and an approval request to the room's centre staff."""

from __future__ import annotations

import asyncio
import email
import re
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import icalendar
import pytest
from aiosmtpd.controller import Controller

from tests.booking_world import logged_in, service_with_world
from tests.test_booking_pages import form_fields, post_booking


@dataclass
class Inbox:
    """What the SMTP server received: one message per delivery, with its envelope."""

    messages: list[tuple[list[str], EmailMessage]] = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=threading.Condition)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=default_policy)
        assert isinstance(message, EmailMessage)
        with self.arrived:
            self.messages.append((list(envelope.rcpt_tos), message))
            self.arrived.notify_all()
        return "250 Message accepted for delivery"

    def wait_for(self, count: int, timeout: float) -> bool:
        """Block (in a worker thread) until ``count`` messages arrived or time is up."""
        with self.arrived:
            return self.arrived.wait_for(lambda: len(self.messages) >= count, timeout)

    def to(self, address: str) -> list[EmailMessage]:
        return [m for rcpt, m in self.messages if address in rcpt]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


def calendar_part(message: EmailMessage) -> icalendar.Calendar:
    parts = [p for p in message.walk() if p.get_content_type() == "text/calendar"]
    assert parts, f"no text/calendar part in {message['Subject']!r}"
    payload = parts[0].get_payload(decode=True)
    assert isinstance(payload, bytes)
    return icalendar.Calendar.from_ical(payload)


def body_text(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    content = part.get_content()
    assert isinstance(content, str)
    return content


async def test_the_invitation_and_the_approval_request_reach_the_smtp_server(
    tmp_path: Path, smtp: tuple[Inbox, int]
) -> None:
    inbox, port = smtp
    async with service_with_world(tmp_path, smtp_host="127.0.0.1", smtp_port=port) as (
        app,
        world,
        _clock,
    ):
        async with await logged_in(app, world.organiser) as http:
            await post_booking(app, http, form_fields(world))
        # The service's own mailer (started because smtp_host is set) sends the outbox;
        # the SMTP server hands each message over on its own thread.
        assert await asyncio.to_thread(inbox.wait_for, 3, 20.0), inbox.messages

    [organiser] = inbox.to(world.organiser)
    assert "Comité de pilotage" in organiser["Subject"]
    calendar = calendar_part(organiser)
    assert calendar["METHOD"] == "REQUEST"
    [event] = calendar.walk("VEVENT")
    assert event["SUMMARY"] == "Comité de pilotage"
    rooms = sorted(str(a.params.get("CN")) for a in event.get("ATTENDEE", []))
    assert rooms == ["Salle Bleue", "Salle du Fleuve"]

    [guest] = inbox.to("gaelle@example.org")
    link = re.search(r"https?://\S+/join/tcg_[\w-]+", body_text(guest))
    assert link, body_text(guest)
    [guest_event] = calendar_part(guest).walk("VEVENT")
    assert str(guest_event["URL"]) == link.group(0)

    [request] = inbox.to(world.montreal_staff)
    assert "Salle du Fleuve" in request["Subject"]
    assert "Comité de pilotage" in body_text(request)
    assert "/approvals" in body_text(request)
