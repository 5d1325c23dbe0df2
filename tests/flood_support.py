"""A stranger's flood against a signalling endpoint, as a separate process (its own CPU
is not the server's): ``python -m tests.flood_support --url ws://... --strangers 100``.

- ``--strangers N``: N unauthenticated sockets, each from its own loopback address
  (127.0.0.2 onwards, so the per-address limit does not hide the load), each
  sending a 56 KB ``stats`` before any hello and reconnecting as soon as the server
  closes it (or refuses the upgrade), for ``--seconds``.
- ``--room-key-file F --session S``: one authenticated room that joins session S
  (with the ticket from its schedule) and sends, at its message rate limit, maximal
  ``stats`` (64 KiB, 32 media entries) and offers whose 64 KiB SDP carries nothing
  but refused candidates (about 700 of them, each with a private related address).

Prints one JSON line with what it managed to send, so the test can tell the flood
was real.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp

from signalling import protocol as p
from signalling.client import SignallingClient, SignallingError


def oversize_stats(entries: int = 250) -> str:
    media = [{"peer_id": f"room:{i:032x}", "fps": 30.0, "frames": 60} for i in range(entries)]
    return json.dumps({"type": "stats", "session_id": "s" * 32, "media": media})


def maximal_stats(session_id: str, limit: int = 64 * 1024) -> str:
    """The largest ``stats`` the server accepts: every media entry it allows, each with
    every figure, padded with an unknown field up to the message limit."""
    entry = {
        "peer_id": "room:" + "f" * 32,
        "frames": 60,
        "fps": 30.0,
        "latency_p50_ms": 50.0,
        "latency_p95_ms": 80.0,
        "freezes": 1,
        "audio_frames": 100,
        "audio_level": 0.5,
        "live": True,
        "privacy": False,
        "bitrate_in_kbps": 1500.0,
        "bitrate_out_kbps": 1500.0,
        "rtt_ms": 20.0,
        "jitter_ms": 3.0,
        "packets_lost": 2,
        "loss_fraction": 0.01,
    }
    media = [{**entry, "peer_id": f"room:{i:032x}"} for i in range(p.MAX_MEDIA_ENTRIES)]
    message: dict[str, Any] = {
        "type": "stats",
        "session_id": session_id,
        "media": media,
        "process": {"cpu_percent": 50.0, "rss_bytes": 100_000_000},
    }
    size = len(json.dumps(message))
    message["padding"] = "x" * max(0, limit - size - 20)
    return json.dumps(message)


def refused_offer(session_id: str, limit: int = 64 * 1024) -> str:
    """An offer as large as the server accepts whose SDP offers nothing but addresses
    outside the allowed networks (each with a private related address): every one is
    refused, and none may be kept."""
    lines = ["v=0", "o=- 1 1 IN IP4 0.0.0.0", "s=-", "t=0 0"]
    size, i = 200, 0
    while size < limit - 400:
        line = (
            f"a=candidate:{i} 1 udp 1 10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256} 9 "
            f"typ srflx raddr 192.168.{i // 256 % 256}.{i % 256} rport 9"
        )
        lines.append(line)
        size += len(line) + 4  # "\\r\\n" in JSON
        i += 1
    offer = p.Offer(session_id=session_id, sdp="\r\n".join(lines) + "\r\n", conn="x", to="room:x")
    return p.encode(offer)


async def stranger(url: str, address: str, payload: str, until: float, tally: Counter[str]) -> None:
    loop = asyncio.get_running_loop()
    connector = aiohttp.TCPConnector(local_addr=(address, 0), force_close=True)
    async with aiohttp.ClientSession(connector=connector) as http:
        while loop.time() < until:
            try:
                async with http.ws_connect(url, timeout=aiohttp.ClientWSTimeout(ws_close=1)) as ws:
                    tally["connected"] += 1
                    await ws.send_str(payload)
                    tally["sent"] += 1
                    async for _ in ws:
                        pass
            except aiohttp.WSServerHandshakeError as exc:
                tally[f"refused-{exc.status}"] += 1
                await asyncio.sleep(0.05)
            except (aiohttp.ClientError, OSError, TimeoutError):
                tally["failed"] += 1
                await asyncio.sleep(0.05)


async def noisy_room(
    url: str, key: str, session_id: str, until: float, tally: Counter[str]
) -> None:
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession() as http:
        client = SignallingClient(http, url, key=key, agent="flood")
        await client.connect()
        ticket = None
        while ticket is None and loop.time() < until:
            msg = await asyncio.wait_for(client.recv(), 10.0)
            if isinstance(msg, p.Schedule):
                ticket = next((e.ticket for e in msg.sessions if e.session_id == session_id), None)
        if ticket is None:
            raise SystemExit("the noisy room found no ticket for the session")
        while True:
            try:
                await client.join(session_id, ticket)
                break
            except SignallingError as exc:  # the ticket's window opens at T - lead
                if exc.code != p.ErrorCode.TICKET_NOT_YET_VALID or loop.time() > until:
                    raise
                await asyncio.sleep(0.2)
        assert client.welcome is not None
        rate = client.welcome.limits.rate_per_second
        stats = maximal_stats(session_id, client.welcome.limits.max_message_bytes)
        refused = refused_offer(session_id, client.welcome.limits.max_message_bytes)
        # Half the rate in stats, half in refused offers: the peer stays at its limit.
        interval = 2.0 / rate
        while loop.time() < until and not client.closed.is_set():
            await client.send_text(stats)
            await client.send_text(refused)
            tally["stats"] += 1
            tally["candidates"] += 1
            await asyncio.sleep(interval)
        with contextlib.suppress(Exception):
            await client.close()


def start_flood(
    url: str,
    seconds: float,
    strangers: int,
    room_key_file: Path | None = None,
    session_id: str | None = None,
) -> subprocess.Popen[str]:
    """This module as a child process (tests wait for it with ``flood_tally``)."""
    from tests.e2e_support import ROOT, base_env

    room = [] if room_key_file is None else ["--room-key-file", str(room_key_file)]
    room += [] if session_id is None else ["--session", session_id]
    argv = ["--url", url, "--seconds", str(seconds), "--strangers", str(strangers), *room]
    return subprocess.Popen(
        [sys.executable, "-m", "tests.flood_support", *argv],
        cwd=ROOT,
        env=base_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
    )


def flood_tally(proc: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    """Wait for a flood started by ``start_flood``; what it managed to send."""
    out, err = proc.communicate(timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"the flood failed: {err[-3000:]}")
    tally: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return tally


async def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--strangers", type=int, default=100)
    parser.add_argument("--room-key-file", type=Path)
    parser.add_argument("--session")
    args = parser.parse_args(argv)
    loop = asyncio.get_running_loop()
    until = loop.time() + args.seconds
    tally: Counter[str] = Counter()
    payload = oversize_stats()
    tasks = [
        stranger(args.url, f"127.0.0.{2 + i % 250}", payload, until, tally)
        for i in range(args.strangers)
    ]
    if args.room_key_file is not None:
        key = args.room_key_file.read_text().strip()
        tasks.append(noisy_room(args.url, key, args.session, until, tally))
    await asyncio.gather(*tasks)
    print(json.dumps(dict(tally)), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
