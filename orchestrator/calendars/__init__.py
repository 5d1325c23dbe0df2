"""Calendars: iCalendar in (``ical_in``: parse, plan, import), iCalendar out
(``ical_out``: feeds, free/busy, invitations), subscribed feeds, CalDAV sync
(``caldav``), the calendar jobs and the subscription tokens.

Uses ``orchestrator.booking``, ``orchestrator.people`` and the ground floor.
"""
