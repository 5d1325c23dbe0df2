"""The protocol's error codes and the exception that carries one: a leaf module, so
that the codec, the server and the client name the same codes without importing
each other. docs/protocol.md §14 lists every code; never rename one."""

from __future__ import annotations

from typing import Final


class ErrorCode:
    """Stable error codes; documented in docs/protocol.md. Never rename one."""

    BAD_JSON: Final = "bad-json"
    BAD_MESSAGE: Final = "bad-message"
    UNKNOWN_TYPE: Final = "unknown-type"
    TOO_LARGE: Final = "too-large"
    RATE_LIMITED: Final = "rate-limited"
    UNSUPPORTED_VERSION: Final = "unsupported-version"
    HELLO_REQUIRED: Final = "hello-required"
    AUTH_FAILED: Final = "auth-failed"
    KEY_REVOKED: Final = "key-revoked"
    TICKET_INVALID: Final = "ticket-invalid"
    TICKET_EXPIRED: Final = "ticket-expired"
    TICKET_NOT_YET_VALID: Final = "ticket-not-yet-valid"
    TICKET_WRONG_SESSION: Final = "ticket-wrong-session"
    TICKET_WRONG_PEER: Final = "ticket-wrong-peer"
    TICKET_REVOKED: Final = "ticket-revoked"
    NOT_IN_SESSION: Final = "not-in-session"
    PEER_UNREACHABLE: Final = "peer-unreachable"
    PEER_NOT_IN_SESSION: Final = "peer-not-in-session"
    SESSION_FULL: Final = "session-full"
    CANDIDATE_NOT_ALLOWED: Final = "candidate-not-allowed"
    HEARTBEAT_TIMEOUT: Final = "heartbeat-timeout"
    REPLACED: Final = "replaced"
    INTERNAL: Final = "internal"
    # Refused before the WebSocket upgrade (an HTTP 503 with this code in its body).
    TOO_MANY_CONNECTIONS: Final = "too-many-connections"
    # Room control (raised by Hub.control, never sent as an ``error`` on the wire).
    ROOM_OFFLINE: Final = "room-offline"
    CONTROL_TIMEOUT: Final = "control-timeout"
    # ``control-result.error_code`` values a room agent answers with, besides the
    # codes above (``bad-message``, ``not-in-session``, a refused join's ``ticket-*``
    # or ``session-full``, ``connection-lost``).
    NOT_JOINABLE: Final = "not-joinable"
    NO_CONTENT_SOURCE: Final = "no-content-source"
    # No healthy Janus has room for the session, or Janus refused a request for it.
    SFU_UNAVAILABLE: Final = "sfu-unavailable"


class ProtocolError(Exception):
    """A message that breaks the protocol; becomes an ``error`` message on the wire."""

    def __init__(self, code: str, message: str, ref: str | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.ref = ref
