"""Acceptance 6: a booking made through the form reaches a real SMTP server (aiosmtpd on
loopback): the invitation with its .ics attached (which parses, METHOD:REQUEST) to the
organiser and the guest, and an approval request to the room's centre staff."""

from __future__ import annotations

import asyncio
import email
import re
import socket
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

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=default_policy)
        assert isinstance(message, EmailMessage)
        self.messages.append((list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"

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
    from web.mailer import send_due

    inbox, port = smtp
    async with service_with_world(tmp_path, smtp_host="127.0.0.1", smtp_port=port) as (
        app,
        world,
        _clock,
    ):
        async with await logged_in(app, world.organiser) as http:
            await post_booking(app, http, form_fields(world))
        await send_due(app.services)
        for _ in range(100):  # the server hands each message over on its own thread
            if len(inbox.messages) >= 3:
                break
            await asyncio.sleep(0.05)

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
