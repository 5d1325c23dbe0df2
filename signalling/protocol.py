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

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final, Literal, Union

from common.schedule import ScheduleEntry, ScheduleRoom
from common.sessions import TERMINAL_STATES
from common.sessions import Topology as SessionTopology
from common.turn import ICE_POLICIES
from signalling.codec import MAX_ID_LENGTH, decode, encode, items, number, text, to_dict
from signalling.errors import ErrorCode, ProtocolError

__all__ = [
    "ICE_POLICIES",
    "MAX_ID_LENGTH",
    "ErrorCode",
    "ProtocolError",
    "ScheduleEntry",
    "ScheduleRoom",
    "encode",
    "to_dict",
]

PROTOCOL_VERSION: Final = 1
# Session states after which nobody joins; a session-state with one of them ends it.
TERMINAL_SESSION_STATES: Final = TERMINAL_STATES

# Bounds of what a peer may send (docs/protocol.md §16); the codec checks them.
MAX_PEER_ID: Final = 80
"""``guest:`` and 64 characters, or ``room:`` and a room id, with room to spare."""
MAX_KEY: Final = 256
MAX_TICKET: Final = 4096
MAX_AGENT: Final = 200
MAX_CANDIDATE: Final = 1024
MAX_MEDIA_ENTRIES: Final = 32
"""Media figures per ``stats``: one entry per other site of the session."""
MIN_INSTANT: Final = 946_684_800.0  # 2000-01-01T00:00:00Z
MAX_INSTANT: Final = 4_102_444_800.0  # 2100-01-01T00:00:00Z
ID = text(MAX_ID_LENGTH)
PEER = text(MAX_PEER_ID)
INSTANT = number(MIN_INSTANT, MAX_INSTANT)
MAX_READINESS_CHECKS: Final = 16
MAX_CHECK_NAME: Final = 40
MAX_CHECK_DETAIL: Final = 300


CandidateType = Literal["host", "srflx", "prflx", "relay"]
"""An ICE candidate's type (RFC 8445 section 5.1.1): a local address, one a STUN server
saw (server reflexive), one a peer's check revealed (peer reflexive), a TURN relay."""
IcePolicy = Literal["all", "relay"]
Topology = SessionTopology
"""How a session's media flows: peer to peer, or through an SFU (docs/protocol.md, 20);
spelled once in common.sessions, which the orchestrator plans with."""
"""A room's ICE policy: ``relay`` rooms offer and use only TURN relay candidates
(common.turn.ICE_POLICIES, the same words)."""


# --- value objects carried inside messages -------------------------------------------


@dataclass(frozen=True, slots=True)
class IceServer:
    """A STUN or TURN server; a TURN server's ``username`` and ``credential`` are
    minted per peer (common.turn: ``<expires>:<session id>:<peer id>`` and its HMAC)."""

    urls: list[str]
    username: str | None = None
    credential: str | None = field(default=None, repr=False)


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


# ScheduleEntry and ScheduleRoom (inside ``schedule``) are common.schedule's: the one
# type that flows from the orchestrator's tables to the room agent.


@dataclass(frozen=True, slots=True)
class MediaStats:
    """What a peer's screen measured over the last reporting period."""

    peer_id: str = field(metadata=PEER)
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
    # The candidate pair the media flows on (absent until ICE nominated one): is it
    # relayed through TURN, from this side (local) or the other's (remote)?
    local_candidate: CandidateType | None = None
    remote_candidate: CandidateType | None = None


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

    name: str = field(metadata=text(MAX_CHECK_NAME, min_length=1))
    ok: bool
    detail: str = field(default="", metadata=text(MAX_CHECK_DETAIL))


@dataclass(frozen=True, slots=True)
class RoomControlState:
    """What a room's touch panel shows: the room's own switches and where it is."""

    privacy: bool
    content_share: bool
    content_available: bool
    session_id: str | None = field(default=None, metadata=ID)


# --- client -> server -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hello:
    type: ClassVar[str] = "hello"
    protocol: int
    room_id: str | None = field(default=None, metadata=ID)
    key: str | None = field(default=None, repr=False, metadata=text(MAX_KEY))
    ticket: str | None = field(default=None, repr=False, metadata=text(MAX_TICKET))
    agent: str | None = field(default=None, metadata=text(MAX_AGENT))
    id: str | None = None


@dataclass(frozen=True, slots=True)
class Join:
    type: ClassVar[str] = "join"
    session_id: str = field(metadata=ID)
    ticket: str = field(repr=False, metadata=text(MAX_TICKET))
    id: str | None = None


@dataclass(frozen=True, slots=True)
class Leave:
    type: ClassVar[str] = "leave"
    session_id: str = field(metadata=ID)
    id: str | None = None


@dataclass(frozen=True, slots=True)
class Offer:
    """Sent with ``to`` by a client; relayed with ``from_`` (``from`` on the wire)."""

    type: ClassVar[str] = "offer"
    session_id: str = field(metadata=ID)
    sdp: str
    conn: str = field(metadata=ID)
    to: str | None = field(default=None, metadata=PEER)
    from_: str | None = field(default=None, metadata=PEER)
    id: str | None = None


@dataclass(frozen=True, slots=True)
class Answer:
    type: ClassVar[str] = "answer"
    session_id: str = field(metadata=ID)
    sdp: str
    conn: str = field(metadata=ID)
    to: str | None = field(default=None, metadata=PEER)
    from_: str | None = field(default=None, metadata=PEER)
    id: str | None = None


@dataclass(frozen=True, slots=True)
class Candidate:
    """A trickled ICE candidate (browsers); ``candidate`` None marks the end."""

    type: ClassVar[str] = "candidate"
    session_id: str = field(metadata=ID)
    conn: str = field(metadata=ID)
    candidate: str | None = field(default=None, metadata=text(MAX_CANDIDATE))
    sdp_mid: str | None = field(default=None, metadata=ID)
    sdp_mline_index: int | None = field(default=None, metadata=number(0, 1024))
    to: str | None = field(default=None, metadata=PEER)
    from_: str | None = field(default=None, metadata=PEER)
    id: str | None = None


@dataclass(frozen=True, slots=True)
class Subscribe:
    """In an SFU session: ask for a fresh offer of ``publisher``'s publication."""

    type: ClassVar[str] = "subscribe"
    session_id: str = field(metadata=ID)
    publisher: str = field(metadata=PEER)
    id: str | None = None


@dataclass(frozen=True, slots=True)
class Ping:
    """``ice``: a room asks for its ICE servers with a fresh check credential (its
    readiness check), answered in ``pong.ice_servers``."""

    type: ClassVar[str] = "ping"
    t: float
    id: str | None = None
    ice: bool = False


@dataclass(frozen=True, slots=True)
class Stats:
    """A peer's report: a milestone (``event`` at ``at``) and/or media figures."""

    type: ClassVar[str] = "stats"
    session_id: str = field(metadata=ID)
    event: Literal["first-frame", "live"] | None = None
    at: float | None = field(default=None, metadata=INSTANT)
    media: list[MediaStats] = field(default_factory=list, metadata=items(MAX_MEDIA_ENTRIES))
    process: ProcessStats | None = None
    id: str | None = None


@dataclass(frozen=True, slots=True)
class Readiness:
    """A room's readiness check: ``ok`` when every check passed. ``session_id`` names
    the session it was run for (absent: a check at connection time); ``at`` is when
    it ran, on the server's clock as the room estimates it."""

    type: ClassVar[str] = "readiness"
    ok: bool
    checks: list[ReadinessCheck] = field(metadata=items(MAX_READINESS_CHECKS, min_items=1))
    at: float = field(metadata=INSTANT)
    session_id: str | None = field(default=None, metadata=ID)
    id: str | None = None


@dataclass(frozen=True, slots=True)
class ControlResult:
    """A room's answer to ``control``; ``state`` is the room's state after it."""

    type: ClassVar[str] = "control-result"
    request_id: str = field(metadata=ID)
    ok: bool
    state: RoomControlState
    error_code: str | None = field(default=None, metadata=ID)
    message: str | None = field(default=None, metadata=text(MAX_CHECK_DETAIL))
    id: str | None = None


@dataclass(frozen=True, slots=True)
class RoomState:
    """Unsolicited, from a room: its control state, after connecting and on each change."""

    type: ClassVar[str] = "room-state"
    state: RoomControlState
    id: str | None = None


ClientMessage = Union[
    Hello,
    Join,
    Leave,
    Offer,
    Answer,
    Candidate,
    Subscribe,
    Ping,
    Stats,
    ControlResult,
    RoomState,
    Readiness,
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
    ice_policy: IcePolicy = "all"


@dataclass(frozen=True, slots=True)
class Schedule:
    type: ClassVar[str] = "schedule"
    room_id: str
    generated_at: float
    sessions: list[ScheduleEntry]


@dataclass(frozen=True, slots=True)
class Joined:
    """``topology``/``epoch``: how the session's media flows (docs/protocol.md, 20)."""

    type: ClassVar[str] = "joined"
    session_id: str
    peer_id: str
    peers: list[PeerInfo]
    state: str | None = None
    ref: str | None = None
    ice_servers: list[IceServer] = field(default_factory=list)
    topology: Topology = "mesh"
    epoch: int = 0


@dataclass(frozen=True, slots=True)
class TopologyChange:
    """The session moved: from mesh to SFU, or to another SFU (a higher epoch)."""

    type: ClassVar[str] = "topology"
    session_id: str
    topology: Topology
    epoch: int


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
    ice_servers: list[IceServer] | None = None


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
    TopologyChange,
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
        Subscribe,
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
        TopologyChange,
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


# --- encoding and decoding (signalling.codec) ----------------------------------------


def decode_client(raw: str | bytes) -> ClientMessage:
    """Parse and validate a message sent by a peer; raises ProtocolError."""
    msg: ClientMessage = decode(raw, CLIENT_TYPES)
    return msg


def decode_server(raw: str | bytes) -> ServerMessage:
    """Parse and validate a message sent by a server; raises ProtocolError."""
    msg: ServerMessage = decode(raw, SERVER_TYPES)
    return msg
