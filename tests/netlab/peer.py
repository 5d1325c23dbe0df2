"""A bare aiortc peer for the lab's own test (``python -m tests.netlab.peer offer|answer``):
proves that a WebRTC call (ICE, DTLS, SCTP) crosses a lab NAT and its shaped link,
without any of the project's code. JSON lines on stdin/stdout:

- offer: prints ``{"type": "offer", "sdp": ...}``, reads the answer, then sends
  ``PINGS`` messages on a data channel one at a time and prints
  ``{"rtts_ms": [...]}`` once every echo is back.
- answer: reads the offer, prints the answer, echoes every data channel message
  until its stdin closes.

No ICE servers (an empty list: aiortc would add a public STUN server for None), so
the answerer, on the WAN, must be reachable at one of its host addresses, and the
offerer is seen from its NAT's public address (a peer-reflexive candidate).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from aiortc import RTCConfiguration, RTCDataChannel, RTCPeerConnection, RTCSessionDescription

PINGS = 10


async def read_line() -> dict[str, str]:
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    value: dict[str, str] = json.loads(line)
    return value


def say(value: object) -> None:
    print(json.dumps(value), flush=True)


async def offer(pc: RTCPeerConnection) -> None:
    channel = pc.createDataChannel("ping")
    opened = asyncio.Event()
    echoes: asyncio.Queue[str] = asyncio.Queue()
    channel.on("open", opened.set)
    channel.on("message", echoes.put_nowait)
    await pc.setLocalDescription(await pc.createOffer())
    say({"type": pc.localDescription.type, "sdp": pc.localDescription.sdp})
    answer = await read_line()
    await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], answer["type"]))
    await asyncio.wait_for(opened.wait(), 20)
    rtts = []
    for i in range(PINGS):
        start = time.monotonic()
        channel.send(f"ping {i}")
        assert await asyncio.wait_for(echoes.get(), 10) == f"ping {i}"
        rtts.append((time.monotonic() - start) * 1000)
    say({"rtts_ms": rtts})


async def answer(pc: RTCPeerConnection) -> None:
    @pc.on("datachannel")
    def on_channel(channel: RTCDataChannel) -> None:
        channel.on("message", channel.send)

    remote = await read_line()
    await pc.setRemoteDescription(RTCSessionDescription(remote["sdp"], remote["type"]))
    await pc.setLocalDescription(await pc.createAnswer())
    say({"type": pc.localDescription.type, "sdp": pc.localDescription.sdp})
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until EOF


async def main(role: str) -> None:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        await (offer(pc) if role == "offer" else answer(pc))
    finally:
        await pc.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
