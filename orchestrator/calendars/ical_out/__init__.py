"""iCalendar out: subscription feeds, free/busy and invitations, pure over value objects
loaded from the tables."""
