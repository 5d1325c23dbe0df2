"""The wire protocol between signalling servers and peers (room agents, browsers).

One JSON object per WebSocket text message, always with a ``type``. A client may
add an ``id`` (a string of at most 64 characters); the server echoes it as
``ref`` in the answer or error it causes. Times are seconds since the Unix epoch
on the *server's* clock, as floats. docs/protocol.md is the reference; this
module is its executable form, and the two must say the same thing.

The rules are plain functions over frozen dataclasses: parsing and validation
never touch the network, so they are tested directly.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final, Literal, Union

PROTOCOL_VERSION: Final = 1
# Session states after which nobody joins; a session-state with one of them ends it.
TERMINAL_SESSION_STATES: Final = frozenset({"ended", "cancelled", "failed"})
MAX_ID_LENGTH: Final = 64


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
    # Room control (raised by Hub.control, never sent as an ``error`` on the wire).
    ROOM_OFFLINE: Final = "room-offline"
    CONTROL_TIMEOUT: Final = "control-timeout"
    # ``control-result.error_code`` values a room agent answers with, besides the
    # codes above (``bad-message``, ``not-in-session``, a refused join's ``ticket-*``
    # or ``session-full``, ``connection-lost``).
    NOT_JOINABLE: Final = "not-joinable"
    NO_CONTENT_SOURCE: Final = "no-content-source"


class ProtocolError(Exception):
    """A message that breaks the protocol; becomes an ``error`` message on the wire."""

    def __init__(self, code: str, message: str, ref: str | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.ref = ref


# --- value objects carried inside messages -------------------------------------------


@dataclass(frozen=True, slots=True)
class IceServer:
    urls: list[str]
    username: str | None = None
    credential: str | None = None


@dataclass(frozen=True, slots=True)
class CandidateFilter:
    """Networks (CIDR) whose addresses a peer may offer as ICE candidates."""

    allow: list[str]


@dataclass(frozen=True, slots=True)
class Limits:
    max_message_bytes: int
    rate_per_second: float
    rate_burst: int


@dataclass(frozen=True, slots=True)
class PeerInfo:
    peer_id: str
    name: str
    room_id: str | None = None
    centre: str | None = None


@dataclass(frozen=True, slots=True)
class ScheduleRoom:
    room_id: str
    name: str
    centre: str


@dataclass(frozen=True, slots=True)
class ScheduleEntry:
    """One session a room takes part in, with the ticket that lets it join."""

    session_id: str
    booking_id: str
    title: str
    start: float
    end: float
    lead: float
    state: str
    ticket: str
    rooms: list[ScheduleRoom]
    connect_mode: str = "automatic"


@dataclass(frozen=True, slots=True)
class MediaStats:
    """What a peer's screen measured over the last reporting period."""

    peer_id: str
    frames: int = 0
    fps: float = 0.0
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None
    freezes: int = 0
    audio_frames: int = 0
    audio_level: float = 0.0
    live: bool = False
    privacy: bool = False
    # From the peer connection's getStats, over the same period (absent until known):
    bitrate_in_kbps: float | None = None
    bitrate_out_kbps: float | None = None
    rtt_ms: float | None = None
    jitter_ms: float | None = None
    packets_lost: int | None = None
    loss_fraction: float | None = None


@dataclass(frozen=True, slots=True)
class ProcessStats:
    """The reporting agent's own process: CPU over the last period, as a percentage of
    one core (several busy cores exceed 100), and its resident memory."""

    cpu_percent: float
    rss_bytes: int | None = None


@dataclass(frozen=True, slots=True)
class ReadinessCheck:
    """One item of a readiness check: ``camera``, ``microphone``, ``signalling``,
    ``turn``, ``clock`` (or a newer agent's own); ``detail`` says what was seen."""

    name: str
    ok: bool
    detail: str = ""


@dataclass(frozen=True, slots=True)
class RoomControlState:
    """What a room's touch panel shows: the room's own switches and where it is."""

    privacy: bool
    content_share: bool
    content_available: bool
    session_id: str | None = None


# --- client -> server -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hello:
    type: ClassVar[str] = "hello"
    protocol: int
    room_id: str | None = None
    key: str | None = field(default=None, repr=False)
    ticket: str | None = field(default=None, repr=False)
    agent: str | None = None
    id: str | None = None


@dataclass(frozen=True, slots=True)
class Join:
    type: ClassVar[str] = "join"
    session_id: str
    ticket: str = field(repr=False)
    id: str | None = None


@dataclass(frozen=True, slots=True)
class Leave:
    type: ClassVar[str] = "leave"
    session_id: str
    id: str | None = None


@dataclass(frozen=True, slots=True)
class Offer:
    """Sent with ``to`` by a client; relayed with ``from_`` (``from`` on the wire)."""

    type: ClassVar[str] = "offer"
    session_id: str
    sdp: str
    conn: str
    to: str | None = None
    from_: str | None = None
    id: str | None = None


@dataclass(frozen=True, slots=True)
class Answer:
    type: ClassVar[str] = "answer"
    session_id: str
    sdp: str
    conn: str
    to: str | None = None
    from_: str | None = None
    id: str | None = None


@dataclass(frozen=True, slots=True)
class Candidate:
    """A trickled ICE candidate (browsers); ``candidate`` None marks the end."""

    type: ClassVar[str] = "candidate"
    session_id: str
    conn: str
    candidate: str | None = None
    sdp_mid: str | None = None
    sdp_mline_index: int | None = None
    to: str | None = None
    from_: str | None = None
    id: str | None = None


@dataclass(frozen=True, slots=True)
class Ping:
    type: ClassVar[str] = "ping"
    t: float
    id: str | None = None


@dataclass(frozen=True, slots=True)
class Stats:
    """A peer's report: a milestone (``event`` at ``at``) and/or media figures."""

    type: ClassVar[str] = "stats"
    session_id: str
    event: Literal["first-frame", "live"] | None = None
    at: float | None = None
    media: list[MediaStats] = field(default_factory=list)
    process: ProcessStats | None = None
    id: str | None = None


@dataclass(frozen=True, slots=True)
class Readiness:
    """A room's readiness check: ``ok`` when every check passed. ``session_id`` names
    the session it was run for (absent: a check at connection time); ``at`` is when
    it ran, on the server's clock as the room estimates it."""

    type: ClassVar[str] = "readiness"
    ok: bool
    checks: list[ReadinessCheck]
    at: float
    session_id: str | None = None
    id: str | None = None


@dataclass(frozen=True, slots=True)
class ControlResult:
    """A room's answer to ``control``; ``state`` is the room's state after it."""

    type: ClassVar[str] = "control-result"
    request_id: str
    ok: bool
    state: RoomControlState
    error_code: str | None = None
    message: str | None = None
    id: str | None = None


@dataclass(frozen=True, slots=True)
class RoomState:
    """Unsolicited, from a room: its control state, after connecting and on each change."""

    type: ClassVar[str] = "room-state"
    state: RoomControlState
    id: str | None = None


ClientMessage = Union[
    Hello, Join, Leave, Offer, Answer, Candidate, Ping, Stats, ControlResult, RoomState, Readiness
]

# --- server -> client -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Welcome:
    type: ClassVar[str] = "welcome"
    protocol: int
    peer_id: str
    name: str
    server_time: float
    heartbeat_interval: float
    heartbeat_timeout: float
    ice_servers: list[IceServer]
    candidate_filter: CandidateFilter
    limits: Limits
    ref: str | None = None


@dataclass(frozen=True, slots=True)
class Schedule:
    type: ClassVar[str] = "schedule"
    room_id: str
    generated_at: float
    sessions: list[ScheduleEntry]


@dataclass(frozen=True, slots=True)
class Joined:
    type: ClassVar[str] = "joined"
    session_id: str
    peer_id: str
    peers: list[PeerInfo]
    state: str | None = None
    ref: str | None = None


@dataclass(frozen=True, slots=True)
class PeerJoined:
    type: ClassVar[str] = "peer-joined"
    session_id: str
    peer: PeerInfo


@dataclass(frozen=True, slots=True)
class PeerLeft:
    type: ClassVar[str] = "peer-left"
    session_id: str
    peer_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class SessionState:
    type: ClassVar[str] = "session-state"
    session_id: str
    state: str
    at: float
    start: float
    end: float


@dataclass(frozen=True, slots=True)
class Pong:
    type: ClassVar[str] = "pong"
    t: float
    server_time: float
    ref: str | None = None


@dataclass(frozen=True, slots=True)
class Control:
    """A command from the room's touch panel (through the web layer) to its agent."""

    type: ClassVar[str] = "control"
    command: str
    args: dict[str, Any]
    request_id: str


@dataclass(frozen=True, slots=True)
class Error:
    type: ClassVar[str] = "error"
    code: str
    message: str
    ref: str | None = None


ServerMessage = Union[
    Welcome,
    Schedule,
    Joined,
    PeerJoined,
    PeerLeft,
    SessionState,
    Offer,
    Answer,
    Candidate,
    Pong,
    Control,
    Error,
]

CLIENT_TYPES: Final[dict[str, type[Any]]] = {
    m.type: m
    for m in (
        Hello,
        Join,
        Leave,
        Offer,
        Answer,
        Candidate,
        Ping,
        Stats,
        ControlResult,
        RoomState,
        Readiness,
    )
}
SERVER_TYPES: Final[dict[str, type[Any]]] = {
    m.type: m
    for m in (
        Welcome,
        Schedule,
        Joined,
        PeerJoined,
        PeerLeft,
        SessionState,
        Offer,
        Answer,
        Candidate,
        Pong,
        Control,
        Error,
    )
}

# --- room control ---------------------------------------------------------------------

CONTROL_COMMANDS: Final[Mapping[str, Mapping[str, type]]] = {
    "join": {"session_id": str},  # join a one-button session now
    "leave": {"session_id": str},
    "privacy": {"on": bool},  # card instead of camera, silence instead of microphone
    "content-share": {"on": bool},
}
"""Each command with the arguments it requires; further arguments are ignored."""


def check_control(command: str, args: Mapping[str, object]) -> None:
    """Refuse an unknown command or missing/mistyped arguments with ``bad-message``."""
    spec = CONTROL_COMMANDS.get(command)
    if spec is None:
        raise ProtocolError(ErrorCode.BAD_MESSAGE, f"unknown control command {command[:40]!r}")
    for name, tp in spec.items():
        value = args.get(name)
        if not isinstance(value, tp) or (tp is str and not value):
            kind = "a boolean" if tp is bool else "a non-empty string"
            raise ProtocolError(ErrorCode.BAD_MESSAGE, f"{command}: args.{name} must be {kind}")


# --- readiness --------------------------------------------------------------------------

MAX_READINESS_CHECKS: Final = 16
MAX_CHECK_NAME: Final = 40
MAX_CHECK_DETAIL: Final = 300


def check_readiness(message: Readiness) -> None:
    """Refuse with ``bad-message`` a readiness report with no checks, more than
    ``MAX_READINESS_CHECKS``, an empty or long name, or a long detail."""
    if not message.checks or len(message.checks) > MAX_READINESS_CHECKS:
        raise ProtocolError(
            ErrorCode.BAD_MESSAGE,
            f"readiness: 1 to {MAX_READINESS_CHECKS} checks",
            message.id,
        )
    for check in message.checks:
        if not check.name or len(check.name) > MAX_CHECK_NAME:
            raise ProtocolError(
                ErrorCode.BAD_MESSAGE,
                f"readiness: a check name has 1 to {MAX_CHECK_NAME} characters",
                message.id,
            )
        if len(check.detail) > MAX_CHECK_DETAIL:
            raise ProtocolError(
                ErrorCode.BAD_MESSAGE,
                f"readiness: a detail has at most {MAX_CHECK_DETAIL} characters",
                message.id,
            )


# --- encoding ---------------------------------------------------------------------------

_WIRE_RENAMES: Final = {"from_": "from"}
_FIELD_RENAMES: Final = {v: k for k, v in _WIRE_RENAMES.items()}


def _to_wire(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {}
        msg_type = getattr(type(value), "type", None)
        if isinstance(msg_type, str):
            out["type"] = msg_type
        for f in dataclasses.fields(value):
            item = getattr(value, f.name)
            if item is None and f.default is None:
                continue  # optional and absent: keep messages small
            out[_WIRE_RENAMES.get(f.name, f.name)] = _to_wire(item)
        return out
    if isinstance(value, list):
        return [_to_wire(v) for v in value]
    return value


def encode(message: Any) -> str:
    """Serialise a message dataclass to its JSON text."""
    return json.dumps(_to_wire(message), separators=(",", ":"), allow_nan=False)


def to_dict(message: Any) -> dict[str, Any]:
    wire = _to_wire(message)
    assert isinstance(wire, dict)
    return wire


# --- decoding and validation ------------------------------------------------------------


def _check(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        errors = []
        for option in typing.get_args(tp):
            try:
                return _check(value, option, where)
            except ProtocolError as exc:
                errors.append(exc.message)
        raise ProtocolError(ErrorCode.BAD_MESSAGE, f"{where}: wrong type")
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise ProtocolError(ErrorCode.BAD_MESSAGE, f"{where}: unexpected value")
        return value
    if tp is type(None):
        if value is not None:
            raise ProtocolError(ErrorCode.BAD_MESSAGE, f"{where}: expected null")
        return None
    if origin is dict:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise ProtocolError(ErrorCode.BAD_MESSAGE, f"{where}: expected an object")
        _, value_tp = typing.get_args(tp)
        return {k: _check(v, value_tp, f"{where}.{k}") for k, v in value.items()}
    if origin is list:
        if not isinstance(value, list):
            raise ProtocolError(ErrorCode.BAD_MESSAGE, f"{where}: expected a list")
        (item_tp,) = typing.get_args(tp)
        return [_check(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value)]
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ProtocolError(ErrorCode.BAD_MESSAGE, f"{where}: expected a number")
        if value != value or value in (float("inf"), float("-inf")):
            raise ProtocolError(ErrorCode.BAD_MESSAGE, f"{where}: expected a finite number")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ProtocolError(ErrorCode.BAD_MESSAGE, f"{where}: expected an integer")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ProtocolError(ErrorCode.BAD_MESSAGE, f"{where}: expected a boolean")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ProtocolError(ErrorCode.BAD_MESSAGE, f"{where}: expected a string")
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ProtocolError(ErrorCode.BAD_MESSAGE, f"{where}: expected an object")
        return _build(typing.cast(type[Any], tp), value, where)
    raise TypeError(f"unsupported field type {tp!r}")  # a bug in this module, not input


_HINTS: dict[type[Any], dict[str, Any]] = {}


def _hints(cls: type[Any]) -> dict[str, Any]:
    hints = _HINTS.get(cls)
    if hints is None:
        hints = typing.get_type_hints(cls)
        _HINTS[cls] = hints
    return hints


def _build(cls: type[Any], data: dict[str, Any], where: str) -> Any:
    hints = _hints(cls)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        wire_name = _WIRE_RENAMES.get(f.name, f.name)
        if wire_name in data:
            kwargs[f.name] = _check(data[wire_name], hints[f.name], f"{where}.{wire_name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ProtocolError(ErrorCode.BAD_MESSAGE, f"{where}: missing field '{wire_name}'")
    # Unknown fields are ignored so that newer peers can add optional fields.
    return cls(**kwargs)


def _decode(raw: str | bytes, table: dict[str, type[Any]]) -> Any:
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(
            ErrorCode.BAD_JSON, f"not valid JSON: {exc.__class__.__name__}"
        ) from None
    if not isinstance(data, dict):
        raise ProtocolError(ErrorCode.BAD_MESSAGE, "a message is a JSON object")
    ref = data.get("id")
    if ref is not None and (not isinstance(ref, str) or len(ref) > MAX_ID_LENGTH):
        raise ProtocolError(ErrorCode.BAD_MESSAGE, "id must be a string of at most 64 characters")
    msg_type = data.get("type")
    if not isinstance(msg_type, str):
        raise ProtocolError(ErrorCode.BAD_MESSAGE, "missing field 'type'", ref)
    cls = table.get(msg_type)
    if cls is None:
        raise ProtocolError(ErrorCode.UNKNOWN_TYPE, f"unknown message type {msg_type[:40]!r}", ref)
    try:
        return _build(cls, data, msg_type)
    except ProtocolError as exc:
        raise ProtocolError(exc.code, exc.message, ref) from None


def decode_client(raw: str | bytes) -> ClientMessage:
    """Parse and validate a message sent by a peer; raises ProtocolError."""
    msg: ClientMessage = _decode(raw, CLIENT_TYPES)
    return msg


def decode_server(raw: str | bytes) -> ServerMessage:
    """Parse and validate a message sent by a server; raises ProtocolError."""
    msg: ServerMessage = _decode(raw, SERVER_TYPES)
    return msg
