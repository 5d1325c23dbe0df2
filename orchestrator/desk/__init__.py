"""The desk: a person's request from the web application carried through every wing it
touches (a booking with its approvals, guests and invitations). The top wing: nothing in
``orchestrator`` imports it."""
