"""CalDAV: two-way sync of a room's calendar (``sync``) over its wire (``transport``)."""
