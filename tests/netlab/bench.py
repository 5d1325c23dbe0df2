"""What the lab's delaying forwarder costs (``python -m tests.netlab.bench``, as root;
JSON on stdout): the round trip a 25 ms-each-way link really gives (and the bare
lab's, the floor), and how many packets per second of 1,200-byte UDP it carries
without loss when each offered rate is paced for two seconds through a 10 ms delay.
"""

from __future__ import annotations

import asyncio
import json
import socket
import statistics
import time

from tests.netlab.lab import Lab
from tests.netlab.plan import Link, SiteSpec

OFFERED_PPS = (1000, 3000, 6000, 10000)
SIZE = 1200


async def _rtts(lab: Lab, n: int) -> list[float]:
    loop = asyncio.get_running_loop()
    to = (lab.wan_host("service"), 7000)
    with lab.wan.socket(bind=to) as server, lab.site("a").lan.socket() as client:
        rtts = []
        for _ in range(n):
            start = time.monotonic()
            await loop.sock_sendto(client, b"p", to)
            _, source = await asyncio.wait_for(loop.sock_recvfrom(server, 64), 2)
            await loop.sock_sendto(server, b"p", source)
            await asyncio.wait_for(loop.sock_recv(client, 64), 2)
            rtts.append((time.monotonic() - start) * 1000)
        return rtts


async def _flood(lab: Lab, pps: int, seconds: float = 2.0) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    to = (lab.wan_host("service"), 7001)
    received = 0
    with lab.wan.socket(bind=to) as sink, lab.site("a").lan.socket() as source:
        sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 20)

        async def count() -> None:
            nonlocal received
            while True:
                await loop.sock_recv(sink, 2048)
                received += 1

        counter = asyncio.ensure_future(count())
        total = int(pps * seconds)
        start = time.monotonic()
        for i in range(total):
            source.sendto(b"x" * SIZE, to)
            if i % 100 == 99:
                await asyncio.sleep(max(0.0, start + (i + 1) / pps - time.monotonic()))
        sent_in = time.monotonic() - start
        await asyncio.sleep(0.5)  # the delay and the queues drain
        counter.cancel()
    return {
        "offered_pps": pps,
        "sent": total,
        "sent_pps": round(total / sent_in),
        "received": received,
        "lost": total - received,
    }


async def main() -> None:
    result: dict[str, object] = {}
    with Lab.build(sites=(SiteSpec("a"),)) as lab:
        result["backend"] = lab.delay_backend
        result["rtt_ms_bare_p50"] = round(statistics.median(await _rtts(lab, 50)), 2)
        await asyncio.to_thread(lab.site("a").shape, up=Link(delay_ms=25), down=Link(delay_ms=25))
        rtts = await _rtts(lab, 50)
        result["rtt_ms_50_configured"] = {
            "p50": round(statistics.median(rtts), 2),
            "min": round(min(rtts), 2),
            "max": round(max(rtts), 2),
        }
        await asyncio.to_thread(lab.site("a").shape, up=Link(delay_ms=10), down=Link())
        result["flood_through_10ms"] = [await _flood(lab, pps) for pps in OFFERED_PPS]
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
