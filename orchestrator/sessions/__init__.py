"""Sessions under way: the scheduler and room schedules, join tickets, calls, what the
real-time plane reports (participation, readiness), guests, panels, what people do to a
running session, and what a session leaves behind.

Uses ``orchestrator.booking``, ``orchestrator.people`` and the ground floor (where the
lifecycle state machine and ``record_transition`` live, since bookings write
transitions too).
"""
