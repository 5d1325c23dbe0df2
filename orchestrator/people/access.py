"""Who may see and do what: pure rules over the logged-in person (``Principal``).

Cross-centre privacy: a booking's title, organiser and guests are visible to an
administrator, to its owner, and to members of a centre whose room it uses or
whose member booked it. Everyone else sees the slot only as busy.
"""

from __future__ import annotations

from collections.abc import Iterable

from orchestrator.people.accounts import Principal

BUSY = "busy"
"""What a booking is called for someone who may not see it."""


def can_see_booking(
    user: Principal | None,
    owner_id: str | None,
    owner_centre_id: str | None,
    room_centre_ids: Iterable[str],
) -> bool:
    if user is None:
        return False
    if user.is_admin or (owner_id is not None and owner_id == user.id):
        return True
    if user.centre_id is None:
        return False
    return user.centre_id == owner_centre_id or user.centre_id in set(room_centre_ids)


def can_manage_booking(
    user: Principal | None, owner_id: str | None, room_centre_ids: Iterable[str]
) -> bool:
    """Extend, end, cancel, add guests: the owner, an administrator, or staff of a
    centre whose room the booking uses."""
    if user is None:
        return False
    if user.is_admin or (owner_id is not None and owner_id == user.id):
        return True
    return user.role == "staff" and user.centre_id in set(room_centre_ids)


def can_book(user: Principal | None) -> bool:
    return user is not None and user.role in ("admin", "staff", "organiser")


def can_approve(user: Principal | None, room_centre_id: str) -> bool:
    return user is not None and user.is_staff_of(room_centre_id)


def can_manage_centre(user: Principal | None, centre_id: str) -> bool:
    """Staff-only pages of a centre (its rooms' settings, panel links, approvals)."""
    return user is not None and user.is_staff_of(centre_id)


def needs_approval(
    requires_approval: bool, room_centre_id: str, booker_centre_id: str | None
) -> bool:
    """A room that asks for it approves bookings from people of other centres (and
    from nowhere: API and calendar bookings carry no centre)."""
    return requires_approval and booker_centre_id != room_centre_id
