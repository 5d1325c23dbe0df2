"""Nothing a peer sends grows the server's memory (issue 9, acceptance 4).

A room joined to a session sends, for 60 s, maximal ``stats`` (64 KiB, 32 media
entries, most about peers that are not in the session) and a candidate the filter
refuses, at its message rate limit. The server's resident memory at the end is
within 10 MiB of where it was once the flood had warmed up (5 s in: the first
messages fill the allocator's pools and caches; what must not happen is growth
with every message, as refused candidates once did: 36 MB in 15 s).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.e2e_support import Network, wait_until
from tests.flood_support import flood_tally, start_flood

pytestmark = pytest.mark.e2e

SECONDS = 60.0
WARM_UP = 5.0
BOUND = 10 * 1024 * 1024


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_a_minute_of_refused_candidates_and_maximal_stats_leaves_memory_flat(
    tmp_path: Path,
) -> None:
    net = Network.create(
        tmp_path,
        [("noisy", "Strasbourg", "Europe/Paris"), ("quiet", "Colmar", "Europe/Paris")],
    )
    net.serve.start()
    try:
        net.serve.wait_ready()
        assert net.serve.proc is not None
        pid = net.serve.proc.pid
        start = time.time() + 3
        session_id = net.book(start, start + SECONDS + 60, ["noisy", "quiet"], lead=3)
        url = net.serve.url.replace("http://", "ws://") + "/ws"
        flood = start_flood(url, WARM_UP + SECONDS, 0, net.key_files["noisy"], session_id)
        began = time.monotonic()
        wait_until("the warm-up", lambda: time.monotonic() - began > WARM_UP, WARM_UP + 5)
        before = rss_bytes(pid)
        tally = flood_tally(flood, SECONDS + 60)
        after = rss_bytes(pid)
        # At its limit (50 messages/s: stats and refused offers in turn) for a minute.
        assert tally["stats"] > 20 * SECONDS and tally["candidates"] == tally["stats"], tally
        growth = after - before
        print(f"RSS {before / 2**20:.1f} MiB -> {after / 2**20:.1f} MiB ({tally})")
        assert growth < BOUND, f"RSS grew {growth / 2**20:.1f} MiB over {SECONDS:.0f} s"
        assert "Traceback" not in net.serve.log()
    finally:
        net.stop_all()
