"""Alerts to a centre's staff: a room failed its readiness check before a session, or a
room that failed passes again (``orchestrator.sessions.readiness`` decides when).

- Webhook: the notice as JSON (``webhook_payload``) POSTed to
  ``settings.alert_webhook_url``. Each attempt may take ``alert_webhook_timeout``
  seconds; a refusal (not 2xx), a timeout or a connection error is retried up to
  ``alert_webhook_attempts`` attempts in all, after 1, 2, 4 ... s. Every delivery
  runs on a task of its own that ``Alerts`` owns (and cancels on ``close``), so
  neither the event loop nor signalling ever waits on a slow receiver.
- Email: one mail per active staff person of the room's centre, queued in the
  outbox (kind ``alert``) in the transaction that recorded the check, so it is
  sent once whatever happens to the webhook; in each person's language.

The webhook's body (``text`` is one English line, for chat webhooks)::

    {"event": "readiness-failing" | "readiness-recovered", "ok": false,
     "text": "Room Salle Bleue (Fontainebleau) failed its readiness check for ...",
     "room": {"id": "...", "name": "Salle Bleue"},
     "centre": {"id": "...", "name": "Fontainebleau", "timezone": "Europe/Paris"},
     "session": {"id": "...", "title": "Board", "start": "2030-06-03T09:00:00+00:00",
                 "url": "https://.../sessions/..." or null (no public_url)},
     "checked_at": "2030-06-03T08:50:00.120000+00:00",
     "failing": ["camera"],
     "checks": [{"name": "camera", "ok": false, "detail": "..."}, ...]}
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any, Final

import aiohttp
from sqlmodel import col, select

from common.tasks import TaskSet
from orchestrator import outbox
from orchestrator.clock import Clock, instant
from orchestrator.db import DbSession
from orchestrator.models import User
from orchestrator.sessions.readiness import ReadinessNotice
from web.settings import Settings
from web.ui import i18n

log = logging.getLogger(__name__)

EVENTS: Final = {"failing": "readiness-failing", "recovered": "readiness-recovered"}
RETRY_BASE: Final = 1.0
RETRY_CAP: Final = 60.0


# --- what is said ------------------------------------------------------------------------


def _session_url(public_url: str | None, session_id: str) -> str | None:
    return f"{public_url.rstrip('/')}/sessions/{session_id}" if public_url else None


def summary_line(notice: ReadinessNotice) -> str:
    """One line for chat webhooks (English)."""
    if notice.kind == "recovered":
        return (
            f"Room {notice.room_name} ({notice.centre_name}) is ready again for "
            f"“{notice.session_title}” at {notice.session_start.isoformat()}."
        )
    failing = "; ".join(f"{c.name}: {c.detail}" if c.detail else c.name for c in notice.failing)
    return (
        f"Room {notice.room_name} ({notice.centre_name}) failed its readiness check for "
        f"“{notice.session_title}” at {notice.session_start.isoformat()}: {failing}"
    )


def webhook_payload(notice: ReadinessNotice, public_url: str | None = None) -> dict[str, Any]:
    """The JSON body of the webhook (see the module's docstring)."""
    return {
        "event": EVENTS[notice.kind],
        "text": summary_line(notice),
        "room": {"id": notice.room_id, "name": notice.room_name},
        "centre": {
            "id": notice.centre_id,
            "name": notice.centre_name,
            "timezone": notice.centre_timezone,
        },
        "session": {
            "id": notice.session_id,
            "title": notice.session_title,
            "start": notice.session_start.isoformat(),
            "url": _session_url(public_url, notice.session_id),
        },
        "checked_at": notice.checked_at.isoformat(),
        "ok": notice.kind == "recovered",
        "failing": [c.name for c in notice.failing],
        "checks": [c.to_json() for c in notice.checks],
    }


def _text(lang: str, message: str, **values: object) -> str:
    text: str = i18n.translations(lang).gettext(message)
    return text % values if values else text


def mail_text(
    notice: ReadinessNotice, name: str, lang: str, public_url: str | None = None
) -> tuple[str, str]:
    """The subject and body of the alert mail to one person, in ``lang``."""
    fmt = i18n.Formatter(lang)
    zone = notice.centre_timezone
    when = (
        f"{fmt.date(notice.session_start, zone, 'medium')} "
        f"{fmt.time(notice.session_start, zone)} ({zone})"
    )
    values = {"room": notice.room_name, "title": notice.session_title, "when": when}
    lines = [_text(lang, "Hello %(name)s,", name=name), ""]
    if notice.kind == "failing":
        subject = _text(lang, "Room not ready: %(room)s for “%(title)s”", **values)
        lines.append(
            _text(
                lang,
                "The room %(room)s failed its readiness check for “%(title)s” on %(when)s:",
                **values,
            )
        )
        lines.append("")
        lines += [f"- {c.name}: {c.detail}" if c.detail else f"- {c.name}" for c in notice.failing]
        lines += [
            "",
            _text(lang, "Please check the room before the session starts."),
        ]
    else:
        subject = _text(lang, "Room ready again: %(room)s for “%(title)s”", **values)
        lines.append(
            _text(
                lang,
                "The room %(room)s passed its readiness check for “%(title)s” on %(when)s.",
                **values,
            )
        )
    url = _session_url(public_url, notice.session_id)
    if url:
        lines += ["", _text(lang, "The session: %(url)s", url=url)]
    return subject, "\n".join(lines)


def queue_mail(
    db: DbSession, notice: ReadinessNotice, now: datetime, public_url: str | None = None
) -> int:
    """Queue the notice for each active staff person of the room's centre."""
    staff = db.exec(
        select(User)
        .where(col(User.role) == "staff")
        .where(col(User.centre_id) == notice.centre_id)
        .where(col(User.disabled).is_(False))
    ).all()
    for person in staff:
        lang = person.locale if person.locale in i18n.LANGUAGES else i18n.DEFAULT_LANGUAGE
        subject, body = mail_text(notice, person.name, lang, public_url)
        outbox.enqueue(db, person.email, subject, body, now=now, kind="alert")
    return len(staff)


def retry_delay(attempt: int, base: float = RETRY_BASE) -> float:
    """Seconds to wait after failed attempt ``attempt`` (1, 2, ...): base, 2 base, 4
    base ... at most ``RETRY_CAP``."""
    return float(min(base * 2 ** max(attempt - 1, 0), RETRY_CAP))


# --- delivery ----------------------------------------------------------------------------


class Alerts:
    """Delivers readiness notices; owns the tasks that post the webhook."""

    def __init__(self, settings: Settings, clock: Clock, *, retry_base: float = RETRY_BASE):
        self.settings = settings
        self.clock = clock
        self.retry_base = retry_base
        self.delivered = 0
        self.abandoned = 0
        self._http: aiohttp.ClientSession | None = None
        self._tasks = TaskSet()

    def queue_mail(self, db: DbSession, notice: ReadinessNotice) -> int:
        """In the recording transaction (see ``queue_mail``)."""
        now = instant(self.clock)
        return queue_mail(db, notice, now, self.settings.public_url)

    def post(self, notice: ReadinessNotice) -> None:
        """Start delivering the notice to the webhook, if one is set; returns at once."""
        log.warning("readiness %s: %s", notice.kind, summary_line(notice))
        if not self.settings.alert_webhook_url:
            return
        payload = webhook_payload(notice, self.settings.public_url)
        self._tasks.spawn(self._deliver(payload), name=f"alert-{notice.room_id}")

    async def _deliver(self, payload: dict[str, Any]) -> None:
        url = self.settings.alert_webhook_url
        assert url is not None
        if self._http is None:
            self._http = aiohttp.ClientSession()
        attempts = max(1, self.settings.alert_webhook_attempts)
        timeout = aiohttp.ClientTimeout(total=self.settings.alert_webhook_timeout)
        for attempt in range(1, attempts + 1):
            try:
                async with self._http.post(url, json=payload, timeout=timeout) as response:
                    if 200 <= response.status < 300:
                        self.delivered += 1
                        return
                    reason = f"HTTP {response.status}"
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                reason = type(exc).__name__
            if attempt < attempts:
                delay = retry_delay(attempt, self.retry_base)
                log.warning("alert webhook: %s; retrying in %.0f s", reason, delay)
                await asyncio.sleep(delay)
            else:
                log.error("alert webhook: %s; giving up after %d attempts", reason, attempts)
        self.abandoned += 1

    async def drain(self, timeout: float) -> None:
        """Wait (at most ``timeout``) for the deliveries under way."""
        await self._tasks.drain(timeout)

    async def close(self) -> None:
        """Give deliveries under way a moment, then cancel the rest."""
        await self.drain(2.0)
        await self._tasks.close()
        if self._http is not None:
            await self._http.close()
            self._http = None
