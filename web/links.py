"""The addresses people follow from their mail, under the service's public address.

The web plane owns its URLs: the orchestrator asks for the three it needs through
``orchestrator.desk.web_booking.BookingLinks`` and never builds one itself."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Links:
    """``base_url`` is the public address; ``guest_path`` the guest join page's path with
    a ``{token}`` placeholder (guest tokens are URL-safe, so it is replaced as is)."""

    base_url: str
    guest_path: str = "/join/{token}"

    def booking(self, booking_id: str) -> str:
        return f"{self.base_url.rstrip('/')}/bookings/{booking_id}"

    def guest(self, token: str) -> str:
        return self.base_url.rstrip("/") + self.guest_path.format(token=token)

    def approvals(self) -> str:
        return f"{self.base_url.rstrip('/')}/approvals"
