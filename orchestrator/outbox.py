"""Email waiting to be sent: written in the same transaction as what it announces
(so a refused booking never sends an invitation), sent by a background task,
retried with backoff when the SMTP server is away."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel import col, select

from orchestrator.db import DbSession
from orchestrator.models import OutboxMail

MAX_ATTEMPTS = 12
KINDS = frozenset(
    {
        "invitation",
        "cancellation",
        "guest-link",
        "approval-request",
        "approval-decision",
        "alert",
        "notice",
    }
)


def retry_delay(attempts: int) -> timedelta:
    """30 s, 1 min, 2 min, ... at most an hour between attempts."""
    return timedelta(seconds=min(30 * 2 ** max(attempts - 1, 0), 3600))


def enqueue(
    db: DbSession,
    recipient: str,
    subject: str,
    body: str,
    *,
    now: datetime,
    ics: str | None = None,
    ics_method: str | None = None,
    kind: str = "notice",
) -> OutboxMail:
    if kind not in KINDS:
        raise ValueError(f"unknown mail kind {kind!r}")
    if "\n" in subject or "\r" in subject or "\n" in recipient or "\r" in recipient:
        raise ValueError("no line breaks in a subject or an address")
    mail = OutboxMail(
        recipient=recipient,
        subject=subject,
        body=body,
        ics=ics,
        ics_method=ics_method,
        kind=kind,
        created_at=now,
        next_attempt_at=now,
    )
    db.add(mail)
    db.flush()
    return mail


def due(db: DbSession, now: datetime, limit: int = 20) -> list[OutboxMail]:
    rows = db.exec(
        select(OutboxMail)
        .where(col(OutboxMail.sent_at).is_(None))
        .where(col(OutboxMail.attempts) < MAX_ATTEMPTS)
        .where(col(OutboxMail.next_attempt_at) <= now)
        .order_by(col(OutboxMail.created_at))
        .limit(limit)
    )
    return list(rows.all())


def mark_sent(db: DbSession, mail_id: str, now: datetime) -> None:
    mail = db.get(OutboxMail, mail_id)
    if mail is not None:
        mail.sent_at = now
        mail.attempts += 1
        mail.last_error = None
        db.add(mail)


def mark_failed(
    db: DbSession, mail_id: str, now: datetime, error: str, *, permanent: bool = False
) -> None:
    """A failed attempt, retried after ``retry_delay``; a permanent failure (the
    server refused the recipient for good, a 5xx reply) is never retried."""
    mail = db.get(OutboxMail, mail_id)
    if mail is not None:
        mail.attempts = MAX_ATTEMPTS if permanent else mail.attempts + 1
        mail.last_error = error[:500]
        mail.next_attempt_at = now + retry_delay(mail.attempts)
        db.add(mail)


def failed(db: DbSession, limit: int = 100) -> list[OutboxMail]:
    """Mail given up on (refused, or out of attempts), newest first."""
    rows = db.exec(
        select(OutboxMail)
        .where(col(OutboxMail.sent_at).is_(None))
        .where(col(OutboxMail.attempts) >= MAX_ATTEMPTS)
        .order_by(col(OutboxMail.created_at).desc())
        .limit(limit)
    )
    return list(rows.all())
