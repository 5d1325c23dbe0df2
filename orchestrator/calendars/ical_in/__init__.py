"""iCalendar in: reading ``.ics`` files into booking series, planning and applying an
import."""
