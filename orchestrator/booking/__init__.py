"""Booking: series as calendars describe them, their expansion into occurrences, the
conflict rule, room policies, approvals, availability and the read models of bookings.

Uses ``orchestrator.people`` and the ground floor only; the sessions, calendars and desk
wings build on it.
"""
