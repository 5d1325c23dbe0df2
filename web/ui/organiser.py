"""Who booked, as every page shows it (the dashboard, the booking and session pages).

One rule: the owner's name when the booking has an owner (the booking form, the
API on someone's behalf); else the organiser a calendar or the form recorded, an
address shown without its ``mailto:`` scheme; else nothing.
"""

from __future__ import annotations

MAILTO = "mailto:"


def organiser_label(owner_name: str | None, organiser: str | None) -> str | None:
    if owner_name and owner_name.strip():
        return owner_name.strip()
    address = (organiser or "").strip()
    if address[: len(MAILTO)].lower() == MAILTO:
        address = address[len(MAILTO) :].strip()
    return address or None
