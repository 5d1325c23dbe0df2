"""common/: the words both planes agree on (peer ids, ticket claims, session states,
connect modes, the schedule entry, the room record), said once and read the same way
by the orchestrator, signalling and the room agent."""

from __future__ import annotations

import dataclasses
import json

import pytest

from common import peers, sessions, tickets
from common.schedule import NO_TICKET, RoomRecord, ScheduleEntry, ScheduleRoom
from orchestrator import lifecycle
from orchestrator.booking import policy
from orchestrator.ports import RoomCredential, RoomSchedule
from orchestrator.sessions.schedules import room_schedule
from orchestrator.sessions.tickets import TicketSigner
from room_agents.layout import names_from_schedule
from room_agents.schedule import merge_state
from signalling import protocol as p
from signalling.auth import CredentialStore, TicketVerifier, hash_key
from web.adapters import schedule_message

START = 1_800_000_000.0

# --- peer ids ---------------------------------------------------------------------------


@pytest.mark.parametrize("room_id", ["r1", "3f2a9c0d" * 4, "room-with:colon"])
def test_a_room_peer_id_reads_back_as_its_room(room_id: str) -> None:
    peer_id = peers.room_peer_id(room_id)
    assert peer_id == f"room:{room_id}"
    assert peers.parse_peer_id(peer_id) == peers.PeerRef("room", room_id)
    assert peers.room_id_of(peer_id) == room_id
    assert not peers.is_guest_peer_id(peer_id)


@pytest.mark.parametrize("guest_id", ["g", "7f3a90", "A-z_0" * 12 + "abcd"])
def test_a_guest_peer_id_reads_back_as_its_guest(guest_id: str) -> None:
    peer_id = peers.guest_peer_id(guest_id)
    assert peer_id == f"guest:{guest_id}"
    assert peers.parse_peer_id(peer_id) == peers.PeerRef("guest", guest_id)
    assert peers.is_guest_peer_id(peer_id)
    assert peers.room_id_of(peer_id) is None


@pytest.mark.parametrize("guest_id", ["", "x" * 65, "a b", "ad@m", "é", "a\n"])
def test_a_malformed_guest_id_is_refused(guest_id: str) -> None:
    with pytest.raises(ValueError, match="guest id"):
        peers.guest_peer_id(guest_id)
    assert not peers.is_guest_peer_id("guest:" + guest_id)


@pytest.mark.parametrize(
    "peer_id", ["", "room:", "guest:", "r1", "ROOM:r1", "room", "guest:a b", "guest:" + "x" * 65]
)
def test_parse_refuses_what_is_no_peer_id(peer_id: str) -> None:
    with pytest.raises(ValueError, match="not a peer id"):
        peers.parse_peer_id(peer_id)
    assert peers.room_id_of(peer_id) is None


def test_the_longest_guest_peer_id_fits_the_wire_bound() -> None:
    assert len(peers.guest_peer_id("x" * 64)) <= p.MAX_PEER_ID


# --- ticket claims ----------------------------------------------------------------------


def test_a_minted_ticket_carries_the_claims_signalling_reads() -> None:
    signer = TicketSigner.generate()
    token, jti = signer.mint(
        peers.guest_peer_id("ada"),
        "s1",
        tickets.GUEST_ROLE,
        START,
        START + 60,
        issued_at=START,
        name="Ada",
    )
    verifier = TicketVerifier(clock=lambda: START + 1)
    verifier.add_public_key(signer.kid, signer.public_key_pem())
    claims = verifier.verify_guest(token)
    assert (claims.ticket_id, claims.peer_id, claims.session_id) == (jti, "guest:ada", "s1")
    assert (claims.role, claims.name) == (tickets.GUEST_ROLE, "Ada")


def test_ticket_words_are_the_documented_ones() -> None:
    assert tickets.ISSUER == "telecentre"
    assert tickets.ROLES == {"room", "guest"}
    assert (tickets.SESSION_CLAIM, tickets.ROLE_CLAIM, tickets.NAME_CLAIM) == (
        "sid",
        "role",
        "name",
    )
    assert set(tickets.REQUIRED_CLAIMS) == {"iss", "sub", "nbf", "exp", "jti"}
    assert tickets.MAX_NAME_LENGTH == 100


# --- session states and connect modes ---------------------------------------------------


def test_states_are_one_definition_under_both_planes() -> None:
    assert lifecycle.STATES is sessions.STATES
    assert lifecycle.TERMINAL_STATES is sessions.TERMINAL_STATES
    assert p.TERMINAL_SESSION_STATES is sessions.TERMINAL_STATES
    assert sessions.OPEN_STATES == ("scheduled", "preparing", "live", "ending")
    assert sessions.TERMINAL_STATES == {"ended", "cancelled", "failed"}


def test_connect_modes_are_one_definition() -> None:
    assert policy.CONNECT_MODES is sessions.CONNECT_MODES
    assert policy.CALL_MODES is sessions.CALL_MODES
    assert sessions.CONNECT_MODES == {"automatic", "one-button", "reserve-only"}
    assert sessions.canonical_connect_mode("manual") == sessions.ONE_BUTTON
    assert sessions.canonical_connect_mode("automatic") == sessions.AUTOMATIC
    assert sessions.canonical_connect_mode("nonsense") == "nonsense"


# --- the schedule entry -----------------------------------------------------------------

ROOMS = [
    ScheduleRoom(room_id="f", name="Salle Bleue", centre="Fontainebleau"),
    ScheduleRoom(room_id="a", name="Amsterdam", centre="BCA"),
]


def entry(**changes: object) -> ScheduleEntry:
    base = ScheduleEntry(
        session_id="s1",
        booking_id="b1",
        title="Weekly",
        start=START,
        end=START + 3600,
        lead=60.0,
        state="scheduled",
        ticket=NO_TICKET,
        rooms=ROOMS,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_the_wire_and_the_port_carry_the_same_entry_type() -> None:
    assert p.ScheduleEntry is ScheduleEntry and p.ScheduleRoom is ScheduleRoom


def test_a_schedule_from_the_orchestrator_reaches_the_wire_unchanged() -> None:
    """The orchestrator's entries get their room's ticket and go out as they are: the
    adapter copies nothing, and the JSON round trip gives back equal entries."""
    schedule = room_schedule(
        "f", [entry()], lambda room, e: f"ticket-{room}-{e.session_id}", seq=3, now=START
    )
    assert isinstance(schedule, RoomSchedule)
    (item,) = schedule.items
    assert item == entry(ticket="ticket-f-s1")
    message = schedule_message(schedule)
    assert message.sessions[0] is item
    decoded = p.decode_server(p.encode(message))
    assert decoded == message


def test_the_entry_is_written_in_the_documented_field_order() -> None:
    wire = json.loads(
        p.encode(p.Schedule(room_id="f", generated_at=START, sessions=[entry(ticket="t")]))
    )
    assert list(wire["sessions"][0]) == [
        "session_id",
        "booking_id",
        "title",
        "start",
        "end",
        "lead",
        "state",
        "ticket",
        "rooms",
        "connect_mode",
    ]
    assert wire["sessions"][0]["connect_mode"] == "automatic"
    assert wire["sessions"][0]["rooms"][0] == {
        "room_id": "f",
        "name": "Salle Bleue",
        "centre": "Fontainebleau",
    }


def test_an_entry_without_a_ticket_is_refused_on_the_wire() -> None:
    wire = json.loads(
        p.encode(p.Schedule(room_id="f", generated_at=START, sessions=[entry(ticket="t")]))
    )
    del wire["sessions"][0]["ticket"]
    with pytest.raises(p.ProtocolError, match="missing field 'ticket'"):
        p.decode_server(json.dumps(wire))


def test_the_ticket_stays_out_of_the_entry_repr() -> None:
    assert "secret-ticket" not in repr(entry(ticket="secret-ticket"))


def test_a_session_state_moves_the_room_agent_entry_and_nothing_else() -> None:
    first, other = entry(ticket="t1"), entry(session_id="s2", ticket="t2")
    state = p.SessionState(session_id="s1", state="ending", at=START, start=START, end=START + 900)
    merged = merge_state([first, other], state)
    assert merged == [entry(ticket="t1", state="ending", end=START + 900), other]
    assert names_from_schedule(merged) == {"room:f": "Salle Bleue", "room:a": "Amsterdam"}


# --- the room record --------------------------------------------------------------------


def test_the_orchestrator_credential_is_the_record_signalling_keeps() -> None:
    store = CredentialStore()
    credential = RoomCredential(
        seq=1,
        room_id="f",
        name="Salle Bleue",
        centre="Fontainebleau",
        key_hash=hash_key("k1"),
        generation=1,
    )
    assert isinstance(credential, RoomRecord)
    assert not store.set(credential)
    assert store.verify(None, "k1") == credential
    newer = RoomRecord("f", "Salle Bleue", "Fontainebleau", hash_key("k2"), 2)
    assert store.set(newer)  # a newer generation revokes the old key
    with pytest.raises(p.ProtocolError) as refused:
        store.verify(None, "k1")
    assert refused.value.code == p.ErrorCode.KEY_REVOKED


def test_a_key_hash_stays_out_of_the_record_repr() -> None:
    record = RoomRecord("f", "Salle Bleue", "Fontainebleau", "deadbeef" * 8, 1)
    assert "deadbeef" not in repr(record)
    assert "deadbeef" not in repr(RoomCredential(**dataclasses.asdict(record), seq=4))
