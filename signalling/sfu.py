"""SFU sessions: the server drives one Janus VideoRoom per session on its members'
behalf, so that room agents and guest pages keep speaking docs/protocol.md (20).

Rules:

- A session on an SFU has one VideoRoom on one Janus of the pool (never two),
  created with a random secret and PIN when the session starts on the SFU (prepared
  as one, or moved from the mesh), destroyed when it ends or empties.
- A member's ``offer`` to ``sfu`` publishes it: a publisher handle joins the room
  with the offer; Janus' answer goes back from ``sfu``. A newer publication of the
  same member replaces the older one.
- Each member is subscribed to every other member's publication: a subscriber
  handle per (member, publisher) pair, whose offer goes to the member from
  ``sfu:<publisher>``; the member's answer starts it. Janus refuses a subscription
  to a feed whose connection is not up yet (428), so subscriptions are made when
  the publication's ``webrtcup`` arrives (for every member), when a member joins
  (to every publication up), and again on the member's ``subscribe``.
- Janus names a forwarded track by feed and section; the subscription's offer gets
  the publisher's own track ids back (``restore_msids``), so a member tells a
  site's content from its camera as in a mesh.
- Janus' SDPs reach members with only the candidates the deployment allows.
- Janus dies (its connection closes, or the pool finds it unhealthy): each of its
  sessions moves to another Janus of the pool with a new epoch; the hub tells the
  members (``topology``), who publish again; nothing is asked of the dead Janus.
  With no Janus to go to, the session waits (its members' requests get
  ``sfu-unavailable``) and moves as soon as one is healthy.
- Work for one session is serialised (a lock): a move never interleaves with a
  publication. Results that come back after a move (an older epoch) are dropped.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from common.peers import SFU_PEER, sfu_peer_id, sfu_publisher
from common.tasks import TaskSet
from signalling import protocol as p
from signalling.candidates import Network, keep_allowed_candidates
from signalling.janus.client import JanusError
from signalling.janus.pool import JanusPool, JanusServer
from signalling.janus.videoroom import (
    Publication,
    RoomSpec,
    Subscription,
    VideoRoom,
    restore_msids,
)

log = logging.getLogger(__name__)

Send = Callable[[str, object], bool]
"""Queue a message to a member (by peer id); False when it has no connection."""


@dataclass(frozen=True, slots=True)
class SfuMove:
    """A session started on a Janus, or moved to another one (``previous``)."""

    session_id: str
    epoch: int
    server: str
    previous: str | None
    reason: str  # "planned", "mesh-limit", "janus-down"


MoveListener = Callable[[SfuMove], Awaitable[None]]


@dataclass(slots=True)
class _Sub:
    conn: str
    subscription: Subscription


@dataclass(slots=True)
class _Pub:
    conn: str
    offer_sdp: str
    publication: Publication | None = None
    up: bool = False


@dataclass(slots=True)
class _Room:
    session_id: str
    epoch: int
    server: JanusServer | None = None
    room: VideoRoom | None = None
    feeds: dict[str, int] = field(default_factory=dict)
    publications: dict[str, _Pub] = field(default_factory=dict)
    subscriptions: dict[tuple[str, str], _Sub] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def _id() -> int:
    """A room or feed number Janus accepts (a positive 53-bit-safe integer)."""
    return secrets.randbelow(2**31 - 1) + 1


def _conn() -> str:
    return secrets.token_hex(6)


def _unavailable(ref: str | None, why: str) -> p.ProtocolError:
    return p.ProtocolError(p.ErrorCode.SFU_UNAVAILABLE, why, ref)


class SfuBridge:
    """The hub's SFU: sessions on the Janus pool, members' messages to ``sfu`` and
    ``sfu:<P>`` turned into Janus requests. The hub decides who is a member."""

    def __init__(
        self,
        pool: JanusPool,
        send: Send,
        members: Callable[[str], Sequence[str]],
        networks: Sequence[Network],
        *,
        publishers: int = 16,
        on_move: MoveListener | None = None,
    ) -> None:
        self._pool = pool
        self._send = send
        self._members = members
        self._networks = networks
        self._publishers = publishers
        self._on_move = on_move
        self._rooms: dict[str, _Room] = {}
        self._tasks = TaskSet()
        pool.on_down.append(self._server_down)
        pool.on_up.append(self._server_up)

    # --- queries -------------------------------------------------------------------

    def server_of(self, session_id: str) -> str | None:
        room = self._rooms.get(session_id)
        return room.server.name if room and room.server else None

    # --- sessions ------------------------------------------------------------------

    async def start(self, session_id: str, reason: str) -> int:
        """Put the session on a Janus (once); returns its epoch. Raises
        ``sfu-unavailable`` when no Janus of the pool is healthy with room for it."""
        room = self._rooms.get(session_id)
        if room is not None:
            return room.epoch
        room = _Room(session_id, epoch=1)
        self._rooms[session_id] = room
        async with room.lock:
            try:
                await self._open(room, avoid=set())
            except Exception:
                del self._rooms[session_id]
                raise
        await self._moved(room, None, reason)
        return room.epoch

    async def end(self, session_id: str) -> None:
        """The session is over (or empty): destroy its room."""
        room = self._rooms.pop(session_id, None)
        if room is None:
            return
        async with room.lock:
            await self._close(room, destroy=True)

    async def _open(self, room: _Room, avoid: set[str]) -> None:
        server = self._pool.place(room.session_id, avoid=avoid)
        if server is None:
            raise _unavailable(None, "no Janus of the pool is healthy with room for the session")
        try:
            conn = await self._pool.connection(server.name)
            spec = RoomSpec(
                room=_id(),
                secret=secrets.token_urlsafe(24),
                pin=f"{secrets.randbelow(10**8):08d}",
                publishers=self._publishers,
                description=f"telecentre {room.session_id}",
            )
            room.room = await VideoRoom.create(conn, spec, admin_key=server.room_admin_key)
        except (JanusError, OSError, TimeoutError) as exc:
            self._pool.release(room.session_id)
            raise _unavailable(None, f"Janus {server.name} refused the session: {exc}") from exc
        room.server = server

    async def _close(self, room: _Room, *, destroy: bool) -> None:
        """Forget the room's handles; with ``destroy``, ask Janus to drop them too."""
        subs = list(room.subscriptions.values())
        pubs = [pub.publication for pub in room.publications.values() if pub.publication]
        room.subscriptions.clear()
        room.publications.clear()
        room.feeds.clear()
        vr, room.room = room.room, None
        if room.server is not None:
            self._pool.release(room.session_id)
        if destroy and vr is not None:
            for sub in subs:
                await _quietly(sub.subscription.leave())
            for pub in pubs:
                await _quietly(pub.leave())
            await _quietly(vr.destroy())

    async def _moved(self, room: _Room, previous: str | None, reason: str) -> None:
        assert room.server is not None
        log.info(
            "session %s on Janus %s (epoch %d, %s)",
            room.session_id,
            room.server.name,
            room.epoch,
            reason,
        )
        if self._on_move is not None:
            await self._on_move(
                SfuMove(room.session_id, room.epoch, room.server.name, previous, reason)
            )

    # --- members -------------------------------------------------------------------

    async def publish(self, member: str, offer: p.Offer) -> None:
        """A member's offer to ``sfu``: publish it, answer from ``sfu``, then offer its
        publication to every other member."""
        room = self._room_or_error(offer.session_id, offer.id)
        async with room.lock:
            epoch = room.epoch
            vr = room.room
            if vr is None:
                raise _unavailable(offer.id, "the session is moving to another Janus; retry")
            feed = _id()
            pub = _Pub(offer.conn, offer.sdp)
            try:
                publication = await vr.publish(
                    feed, member, offer.sdp, self._publication_events(room, member, pub)
                )
            except (JanusError, TimeoutError) as exc:
                # The publication it has (if any) stays: a refused offer changes nothing.
                raise _unavailable(offer.id, f"Janus refused the publication: {exc}") from exc
            if room.epoch != epoch:
                await _quietly(publication.leave())
                return
            old = room.publications.get(member)
            room.publications[member] = pub
            if old is not None and old.publication is not None:
                await _quietly(old.publication.leave())
            for key in [k for k in room.subscriptions if k[1] == member]:
                await _quietly(room.subscriptions.pop(key).subscription.leave())
            pub.publication = publication
            room.feeds[member] = feed
            if pub.up:  # webrtcup came before the answer was read
                self._offer_to_all(room.session_id, member)
        self._send(
            member,
            p.Answer(
                session_id=offer.session_id,
                sdp=keep_allowed_candidates(publication.answer_sdp, self._networks),
                conn=offer.conn,
                from_=SFU_PEER,
            ),
        )

    def _publication_events(
        self, room: _Room, member: str, pub: _Pub
    ) -> Callable[[dict[str, Any], dict[str, Any] | None], None]:
        """The publication's Janus events: ``webrtcup`` (its media is flowing) makes
        the subscriptions to it; ``hangup`` marks it down until it publishes again."""

        def on_event(data: dict[str, Any], _jsep: dict[str, Any] | None) -> None:
            kind = data.get("janus")
            if kind == "webrtcup" and not pub.up:
                pub.up = True
                # Not yet the member's publication (its answer is on its way): the
                # publish that installs it offers it then.
                if room.publications.get(member) is pub and member in room.feeds:
                    self._offer_to_all(room.session_id, member)
            elif kind == "hangup":
                pub.up = False

        return on_event

    def _offer_to_all(self, session_id: str, publisher: str) -> None:
        for other in self._members(session_id):
            if other != publisher:
                self._tasks.spawn(self._offer_quietly(session_id, other, publisher))

    def joined(self, session_id: str, member: str) -> None:
        """A member joined: offer it every publication already up. A rejoin (its link
        came back) keeps the subscriptions it has: they may well carry media still;
        one it lost, it asks for again (``subscribe``)."""
        room = self._rooms.get(session_id)
        if room is None:
            return
        for publisher, pub in list(room.publications.items()):
            if (member, publisher) in room.subscriptions:
                continue
            if publisher != member and pub.up and publisher in room.feeds:
                self._tasks.spawn(self._offer_quietly(session_id, member, publisher))

    async def subscribe(self, member: str, message: p.Subscribe) -> None:
        room = self._room_or_error(message.session_id, message.id)
        if message.publisher == member or message.publisher not in room.feeds:
            raise p.ProtocolError(
                p.ErrorCode.PEER_NOT_IN_SESSION, "no member publishes under that id", message.id
            )
        await self._offer(message.session_id, member, message.publisher, message.id)

    async def _offer_quietly(self, session_id: str, member: str, publisher: str) -> None:
        try:
            await self._offer(session_id, member, publisher, None)
        except p.ProtocolError as exc:
            log.warning(
                "session %s: cannot offer %s's publication to %s: %s",
                session_id,
                publisher,
                member,
                exc.message,
            )

    async def _offer(self, session_id: str, member: str, publisher: str, ref: str | None) -> None:
        room = self._room_or_error(session_id, ref)
        async with room.lock:
            vr = room.room
            feed = room.feeds.get(publisher)
            pub = room.publications.get(publisher)
            if vr is None or feed is None or pub is None:
                return  # moved meanwhile, or the publisher left: its next publication offers
            old = room.subscriptions.pop((member, publisher), None)
            if old is not None:
                await _quietly(old.subscription.leave())
            try:
                subscription = await vr.subscribe(feed)
            except (JanusError, TimeoutError) as exc:
                raise _unavailable(ref, f"Janus refused the subscription: {exc}") from exc
            conn = _conn()
            room.subscriptions[(member, publisher)] = _Sub(conn, subscription)
            sdp = restore_msids(subscription.offer_sdp, pub.offer_sdp, subscription.streams)
        self._send(
            member,
            p.Offer(
                session_id=session_id,
                sdp=keep_allowed_candidates(sdp, self._networks),
                conn=conn,
                from_=sfu_peer_id(publisher),
            ),
        )

    async def answer(self, member: str, message: p.Answer) -> None:
        """A member's answer to ``sfu:<P>``: start that subscription."""
        room = self._room_or_error(message.session_id, message.id)
        publisher = sfu_publisher(message.to or "")
        if publisher is None:
            raise p.ProtocolError(
                p.ErrorCode.PEER_NOT_IN_SESSION, "the SFU takes offers, not answers", message.id
            )
        sub = room.subscriptions.get((member, publisher))
        if sub is None or sub.conn != message.conn:
            return  # an answer to a subscription that was replaced: ignored, as in a mesh
        try:
            await sub.subscription.start(message.sdp)
        except (JanusError, TimeoutError) as exc:
            raise _unavailable(message.id, f"Janus refused the answer: {exc}") from exc

    async def candidate(self, member: str, message: p.Candidate) -> None:
        """A trickled candidate (browsers) for the publication or a subscription."""
        room = self._room_or_error(message.session_id, message.id)
        target = message.to or ""
        handle = None
        if target == SFU_PEER:
            pub = room.publications.get(member)
            if pub is not None and pub.conn == message.conn and pub.publication is not None:
                handle = pub.publication.handle
        else:
            publisher = sfu_publisher(target)
            sub = room.subscriptions.get((member, publisher or ""))
            if sub is not None and sub.conn == message.conn:
                handle = sub.subscription.handle
        if handle is None:
            return  # for a connection that was replaced: dropped, as in a mesh
        candidate = (
            None
            if not message.candidate
            else {
                "candidate": message.candidate.removeprefix("a="),
                "sdpMid": message.sdp_mid,
                "sdpMLineIndex": message.sdp_mline_index,
            }
        )
        try:
            await handle.trickle(candidate)
        except (JanusError, TimeoutError) as exc:
            raise _unavailable(message.id, f"Janus refused the candidate: {exc}") from exc

    async def left(self, session_id: str, member: str) -> None:
        """A member left the session: drop its publication and subscriptions."""
        room = self._rooms.get(session_id)
        if room is None:
            return
        async with room.lock:
            room.feeds.pop(member, None)
            pub = room.publications.pop(member, None)
            subs = [room.subscriptions.pop(k) for k in list(room.subscriptions) if member in k]
        if pub is not None and pub.publication is not None:
            await _quietly(pub.publication.leave())
        for sub in subs:
            await _quietly(sub.subscription.leave())

    def _room_or_error(self, session_id: str, ref: str | None) -> _Room:
        room = self._rooms.get(session_id)
        if room is None:
            raise p.ProtocolError(p.ErrorCode.NOT_IN_SESSION, "this session is not on an SFU", ref)
        return room

    # --- Janus deaths ----------------------------------------------------------------

    def _server_down(self, server: JanusServer) -> None:
        for room in list(self._rooms.values()):
            if room.server is not None and room.server.name == server.name:
                self._tasks.spawn(self._move(room, server.name), name=f"sfu-move-{room.session_id}")

    def _server_up(self, server: JanusServer) -> None:
        for room in list(self._rooms.values()):
            if room.room is None:  # waiting for a Janus: this one will do
                self._tasks.spawn(self._move(room, None), name=f"sfu-move-{room.session_id}")

    async def _move(self, room: _Room, dead: str | None) -> None:
        async with room.lock:
            if self._rooms.get(room.session_id) is not room:
                return
            if dead is not None and (room.server is None or room.server.name != dead):
                return  # already moved
            if dead is None and room.room is not None:
                return  # it found a Janus meanwhile
            previous = room.server.name if room.server else dead
            await self._close(room, destroy=False)  # the dead Janus took its rooms along
            room.server = None
            room.epoch += 1
            try:
                await self._open(room, avoid={dead} if dead else set())
            except p.ProtocolError as exc:
                log.warning("session %s waits for a Janus: %s", room.session_id, exc.message)
                return
        await self._moved(room, previous, "janus-down")

    async def close(self) -> None:
        self._pool.on_down.remove(self._server_down)
        self._pool.on_up.remove(self._server_up)
        await self._tasks.close()
        for session_id in list(self._rooms):
            await self.end(session_id)


async def _quietly(work: Awaitable[object]) -> None:
    """Janus clean-up whose failure changes nothing (the handle or room is gone anyway)."""
    try:
        await work
    except (JanusError, TimeoutError, OSError) as exc:
        log.debug("Janus clean-up failed: %s", exc)
