"""What a session needs of a Janus VideoRoom (plugin ``janus.plugin.videoroom``, the
multistream API of Janus 1.x): a room per session, a publisher handle per member's
publication, a subscriber handle per forwarded publication.

Rules (found against Janus 1.1.2, tests/test_janus_videoroom.py; docs/architecture.md,
"Janus"):

- A room is created with ``permanent: false`` (nothing written to Janus' config), its
  ``secret`` (needed to destroy or edit it) and its ``pin`` (needed to join it, as a
  publisher or a subscriber), private (not listed), VP8 and Opus only, a bitrate cap
  per publisher (``bitrate`` with ``bitrate_cap``: Janus' REMB to the publisher never
  goes above it), ``notify_joining`` and audio-level events (``talking`` /
  ``stopped-talking`` events on the room's handles when a publisher's RFC 6464 audio
  level averages above ``audio_level_average`` over ``audio_active_packets``).
- A publication is one handle: ``joinandconfigure`` as publisher with the member's
  offer; Janus answers with its SDP in the ``joined`` event. A subscription is one
  handle: ``join`` as subscriber to every stream of one feed (``streams: [{feed}]``
  without ``mid``), Janus offers; ``start`` with the subscriber's answer.
- Janus' SDPs carry its candidates (half-trickle, ``full_trickle = false``), with
  ``a=end-of-candidates``: a peer that does not trickle (aiortc) needs nothing more.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from typing import Any, Final

from signalling.janus.client import (
    VIDEOROOM,
    EventCallback,
    JanusConnection,
    JanusError,
    PluginHandle,
)

BITRATE_CAP: Final = 1_500_000  # bit/s per publisher (aiortc's VP8 ceiling)
AUDIO_ACTIVE_PACKETS: Final = 50  # ~1 s of 20 ms Opus packets
AUDIO_LEVEL_AVERAGE: Final = 40  # -dBov: 127 silence, 0 loudest; speech sits well under 40
FIR_FREQ: Final = 10  # s between keyframe requests Janus sends publishers on its own
LEAVE_TIMEOUT: Final = 2.0


@dataclass
class RoomSpec:
    room: int
    secret: str
    pin: str
    publishers: int
    description: str
    bitrate: int = BITRATE_CAP


def create_body(spec: RoomSpec, admin_key: str | None = None) -> dict[str, Any]:
    """The VideoRoom ``create`` request for ``spec`` (with the plugin's ``admin_key``
    when its configuration sets one)."""
    body: dict[str, Any] = {
        "request": "create",
        "room": spec.room,
        "permanent": False,
        "description": spec.description,
        "secret": spec.secret,
        "pin": spec.pin,
        "is_private": True,
        "publishers": spec.publishers,
        "bitrate": spec.bitrate,
        "bitrate_cap": True,
        "fir_freq": FIR_FREQ,
        "videocodec": "vp8",
        "audiocodec": "opus",
        "audiolevel_ext": True,
        "audiolevel_event": True,
        "audio_active_packets": AUDIO_ACTIVE_PACKETS,
        "audio_level_average": AUDIO_LEVEL_AVERAGE,
        "notify_joining": True,
    }
    if admin_key is not None:
        body["admin_key"] = admin_key
    return body


MSID = re.compile(r"^a=msid:(\S+) (\S+)(?=\r?$)", re.MULTILINE)
MID = re.compile(r"^a=mid:(\S+)(?=\r?$)", re.MULTILINE)


def _media_sections(sdp: str) -> list[str]:
    """The SDP cut before each ``m=`` line: the session part, then one part per section."""
    return re.split(r"(?=^m=)", sdp, flags=re.MULTILINE)


def msids_by_mid(sdp: str) -> dict[str, tuple[str, str]]:
    """``mid -> (stream id, track id)`` of every section with both lines."""
    found: dict[str, tuple[str, str]] = {}
    for section in _media_sections(sdp)[1:]:
        mid, msid = MID.search(section), MSID.search(section)
        if mid and msid:
            found[mid.group(1)] = (msid.group(1), msid.group(2))
    return found


def restore_msids(offer_sdp: str, publisher_sdp: str, streams: list[dict[str, Any]]) -> str:
    """Janus' subscription offer with the publisher's own ``a=msid`` (stream and track
    ids) in each section. Janus 1.1 writes ``a=msid:<feed> <publisher mid>`` there (with
    ``use_msid``), so a receiver could not tell the content track (id ``content-...``)
    from the camera by its id. ``streams`` is the ``attached`` event's: each has the
    subscriber ``mid`` and the publisher's ``feed_mid``. A section whose publisher
    section had no msid keeps Janus' line."""
    published = msids_by_mid(publisher_sdp)
    feed_mid = {
        str(stream.get("mid")): str(stream.get("feed_mid"))
        for stream in streams
        if isinstance(stream, dict)
    }
    parts = _media_sections(offer_sdp)
    for index, section in enumerate(parts[1:], start=1):
        mid = MID.search(section)
        source = published.get(feed_mid.get(mid.group(1), "")) if mid else None
        if source is not None:
            parts[index] = MSID.sub(f"a=msid:{source[0]} {source[1]}", section, count=1)
    return "".join(parts)


def sdp_of(jsep: dict[str, Any] | None, kind: str) -> str:
    """The SDP of a jsep of type ``kind``; JanusError if Janus sent none."""
    if jsep is None or jsep.get("type") != kind or not isinstance(jsep.get("sdp"), str):
        raise JanusError(3, f"janus sent no {kind}")
    sdp: str = jsep["sdp"]
    return sdp


async def _leave(handle: PluginHandle) -> None:
    """Detach (Janus hangs up and leaves the room for the handle); a connection
    already gone has left already."""
    with contextlib.suppress(JanusError):
        await handle.detach()


@dataclass
class Publication:
    """A member's publication: the handle and Janus' answer to the member's offer."""

    feed: int
    handle: PluginHandle
    answer_sdp: str

    async def leave(self) -> None:
        await _leave(self.handle)


@dataclass
class Subscription:
    """One feed forwarded to one member: Janus' offer, then ``start`` with the answer."""

    feed: int
    handle: PluginHandle
    offer_sdp: str
    streams: list[dict[str, Any]]  # the ``attached`` event's streams (mid, type, feed_mid...)

    async def start(self, answer_sdp: str) -> None:
        await self.handle.message({"request": "start"}, {"type": "answer", "sdp": answer_sdp})

    async def leave(self) -> None:
        await _leave(self.handle)


class VideoRoom:
    """One session's room on one Janus (its ``control`` handle makes and ends it)."""

    def __init__(self, conn: JanusConnection, spec: RoomSpec, control: PluginHandle) -> None:
        self.conn = conn
        self.spec = spec
        self.control = control

    @classmethod
    async def create(
        cls,
        conn: JanusConnection,
        spec: RoomSpec,
        *,
        admin_key: str | None = None,
        on_event: EventCallback | None = None,
    ) -> VideoRoom:
        """Create the room; ``admin_key``: the plugin's (deploy/janus sets one);
        ``on_event`` gets the control handle's events."""
        control = await conn.attach(VIDEOROOM, on_event)
        try:
            await control.request(create_body(spec, admin_key))
        except BaseException:
            await _leave(control)
            raise
        return cls(conn, spec, control)

    async def exists(self) -> bool:
        data = await self.control.request({"request": "exists", "room": self.spec.room})
        return bool(data.get("exists"))

    async def participants(self) -> list[dict[str, Any]]:
        data = await self.control.request({"request": "listparticipants", "room": self.spec.room})
        found = data.get("participants")
        return found if isinstance(found, list) else []

    async def destroy(self) -> None:
        """Destroy the room (its publishers and subscribers are kicked), then detach."""
        try:
            await self.control.request(
                {"request": "destroy", "room": self.spec.room, "secret": self.spec.secret}
            )
        finally:
            await _leave(self.control)

    async def publish(
        self,
        feed: int,
        display: str,
        offer_sdp: str,
        on_event: EventCallback | None = None,
        *,
        timeout: float = 10.0,
    ) -> Publication:
        handle = await self.conn.attach(VIDEOROOM, on_event)
        try:
            _data, jsep = await handle.message(
                {
                    "request": "joinandconfigure",
                    "ptype": "publisher",
                    "room": self.spec.room,
                    "pin": self.spec.pin,
                    "id": feed,
                    "display": display,
                },
                {"type": "offer", "sdp": offer_sdp},
                timeout=timeout,
            )
            answer = sdp_of(jsep, "answer")
        except BaseException:
            await _leave(handle)
            raise
        return Publication(feed, handle, answer)

    async def subscribe(
        self,
        feed: int,
        on_event: EventCallback | None = None,
        *,
        timeout: float = 10.0,
    ) -> Subscription:
        handle = await self.conn.attach(VIDEOROOM, on_event)
        try:
            data, jsep = await handle.message(
                {
                    "request": "join",
                    "ptype": "subscriber",
                    "room": self.spec.room,
                    "pin": self.spec.pin,
                    "streams": [{"feed": feed}],
                    "use_msid": True,
                },
                timeout=timeout,
            )
            offer = sdp_of(jsep, "offer")
        except BaseException:
            await _leave(handle)
            raise
        streams = data.get("streams")
        return Subscription(feed, handle, offer, streams if isinstance(streams, list) else [])
