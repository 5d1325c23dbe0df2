"""The product's call code in a lab namespace (``python -m tests.netlab.call_peer CONFIG``):
one room's ``room_agents.calls.SessionCalls`` (with every aioice/aiortc patch it
installs, its liveness channel and its rebuilds), a live stamped camera and synthetic
audio, a headless screen. No signalling server: the test relays the messages, which is
how a lab test drives two rooms' calls across NATs without the whole service.

CONFIG (JSON): ``self_id``, ``session_id``, ``ice_servers`` (protocol ``IceServer``
fields), ``policy`` (``all`` or ``relay``), ``networks`` (the allowed candidate
networks: the host addresses are pinned to this namespace's addresses inside them, as
the agent pins them on its welcome), ``width``, ``height``, ``fps``; ``without_relay_pair_rule`` (a control run) takes
room_agents.ice_relay_pairs out again.

JSON lines on stdin: ``{"offer_to": peer}`` (offer, as the later joiner does),
``{"message": wire}`` (an offer or answer relayed from the other room, ``from`` set),
``{"mark": t}`` (report the first camera frame from each peer captured after wall
time ``t``), ``stop``. On stdout: ``{"send": wire}`` for every message the calls
send, ``{"ready": ...}`` once the media and calls are set up, ``{"back": {"peer", "at", "captured"}}`` for a mark, ``{"state": {"peer",
"state", "at"}}`` on every connection state change (with the selected pair's local and
remote candidate types once connected), and ``{"camera": {"peer", "at", "captured"}}``
at each peer's first camera frame, ``{"log": {"at", "name", "msg"}}`` for the agent's
own log lines (room_agents, INFO and up).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from typing import Any

import av

from room_agents.calls import Outgoing, SessionCalls
from room_agents.ice import local_addresses_in, pin_host_addresses
from room_agents.ice_relay_pairs import uninstall_relay_pair_rule
from room_agents.media import (
    OutgoingVideoTrack,
    PrivacyCard,
    StartingCard,
    SyntheticAudioTrack,
    SyntheticCamera,
)
from room_agents.screen import HeadlessScreen, frame_stamp
from signalling import protocol as p
from signalling.candidates import parse_networks
from signalling.codec import encode

Json = dict[str, Any]


class WallClock:
    def now(self) -> float:
        return time.time()


def say(value: Json) -> None:
    print(json.dumps(value), flush=True)


def selected_types(calls: SessionCalls, peer_id: str) -> list[str] | None:
    """The selected pair's (local, remote) candidate types (aioice's nominated pair)."""
    call = calls.calls.get(peer_id)
    if call is None or call.pc.sctp is None:
        return None
    pair = call.pc.sctp.transport.transport._connection._nominated.get(1)
    if pair is None:
        return None
    return [pair.local_candidate.type, pair.remote_candidate.type]


class StampScreen(HeadlessScreen):
    """The headless screen, also reading each camera frame's capture stamp: the first
    frame captured after a mark is when media is back."""

    def __init__(self) -> None:
        super().__init__(WallClock())
        self.marks: list[tuple[float, set[str]]] = []  # (mark, peers already reported)
        self.cameras: set[str] = set()

    def _on_video_frame(self, peer_id: str, frame: av.VideoFrame) -> None:
        super()._on_video_frame(peer_id, frame)
        stamp = frame_stamp(frame)
        if stamp is None or not stamp.camera:
            return
        now, captured = time.time(), stamp.capture_ms / 1000.0
        if peer_id not in self.cameras:
            self.cameras.add(peer_id)
            say({"camera": {"peer": peer_id, "at": now, "captured": captured}})
        for mark, done in self.marks:
            if peer_id not in done and captured > mark:
                done.add(peer_id)
                say({"back": {"peer": peer_id, "mark": mark, "at": now, "captured": captured}})


async def read_line() -> str:
    return await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)


async def main(config: Json) -> None:
    networks = parse_networks(config["networks"])
    pin_host_addresses(local_addresses_in(networks))
    clock = WallClock()
    width, height, fps = config.get("width", 320), config.get("height", 180), config.get("fps", 15)
    video = OutgoingVideoTrack(
        SyntheticCamera(clock, width, height, fps),
        StartingCard(clock, width, height, fps),
        fps=fps,
        privacy_card=PrivacyCard(clock, width, height, fps),
    )
    video.set_live(True)
    outgoing = Outgoing(video=video, audio=SyntheticAudioTrack())
    screen = StampScreen()

    async def send(message: object) -> None:
        say({"send": json.loads(encode(message))})

    servers = [p.IceServer(**server) for server in config["ice_servers"]]
    calls = SessionCalls(
        config["session_id"], config["self_id"], send, outgoing, screen, servers, networks, print
    )
    calls.ice_policy = config.get("policy", "all")
    if config.get("without_relay_pair_rule"):
        uninstall_relay_pair_rule()  # a control run: aioice's own pairing
    watched: set[int] = set()

    def watch_states() -> None:
        for peer_id, call in calls.calls.items():
            if id(call.pc) in watched:
                continue
            watched.add(id(call.pc))

            def changed(peer_id: str = peer_id, pc: Any = call.pc) -> None:
                state: Json = {"peer": peer_id, "state": pc.connectionState, "at": time.time()}
                if pc.connectionState == "connected":
                    state["pair"] = selected_types(calls, peer_id)
                say({"state": state})

            call.pc.on("connectionstatechange", changed)

    async def keep_watching() -> None:
        while True:  # a rebuild makes a new connection by itself
            watch_states()
            await asyncio.sleep(0.05)

    watcher = asyncio.create_task(keep_watching())
    say({"ready": {"at": time.time()}})
    try:
        while True:
            line = (await read_line()).strip()
            if not line or line == "stop":
                break
            command = json.loads(line)
            if "offer_to" in command:
                await calls.offer_to(command["offer_to"])
            elif "message" in command:
                message = p.decode_server(json.dumps(command["message"]))
                if isinstance(message, p.Offer):
                    await calls.on_offer(message)
                elif isinstance(message, p.Answer):
                    await calls.on_answer(message)
            elif "mark" in command:
                screen.marks.append((float(command["mark"]), set()))
            watch_states()
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
        await calls.close()
        await screen.close()
        video.stop()
        outgoing.audio.stop()


class LineLog(logging.Handler):
    """The agent's own log lines (room_agents, INFO and up) as ``{"log": ...}`` lines."""

    def emit(self, record: logging.LogRecord) -> None:
        say({"log": {"at": record.created, "name": record.name, "msg": record.getMessage()}})


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    agent_log = logging.getLogger("room_agents")
    agent_log.setLevel(logging.INFO)
    agent_log.addHandler(LineLog())
    asyncio.run(main(json.loads(sys.argv[1])))
