"""bench/remap: a centre's NAT changes address mid-session (issue 12, acceptance 5),
several times, with the product itself in the network lab (tests/netlab/remap.py):
A (home NAT, ``all``), B (symmetric NAT, 443 only, ``relay``) and W (public address)
in one session, every access link at 1 % loss and 40 +- 5 ms; A's router is
re-addressed ``--runs`` times, ``--gap`` seconds apart, and each direction of A's calls
is timed from the change to the first frame after its outage. One JSON document on
stdout (per run and summarised per direction), progress on stderr. As root.

    bench/remap [--runs 5] [--gap 8] [--out F]

Findings in docs/architecture.md ("A centre's NAT changes mid-session").
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.measure import emit, summary
from tests.netlab import available
from tests.netlab.lab import Lab
from tests.netlab.plan import DEPLOYMENT_CENTRES
from tests.netlab.remap import remap_session

Json = dict[str, Any]
WITHIN = 20.0  # bound on one run's wait for media back


def log(message: str) -> None:
    print(f"[remap {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def loadavg() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


async def measure(runs: int, gap: float) -> Json:
    lab = await asyncio.to_thread(Lab.build, DEPLOYMENT_CENTRES)
    try:
        with tempfile.TemporaryDirectory() as work:
            session = await remap_session(lab, Path(work), seconds=20 + runs * (gap + WITHIN))
            results: list[Json] = []
            await asyncio.sleep(gap)
            # A healthy lossy call is never torn down: no path found dead before the first.
            dead_before = session.found_dead()
            for run in range(runs):
                if run:
                    await asyncio.sleep(gap)
                backs = await session.readdress(within=WITHIN)
                log(f"run {run + 1}/{runs}: {backs}")
                results.append(
                    {
                        "media_back_s": {k: round(v, 3) for k, v in backs.items()},
                        "loadavg": loadavg(),
                    }
                )
            directions = sorted(results[0]["media_back_s"])
            return {
                "found_dead_before_the_first_change": dead_before,
                "runs": results,
                "media_back_s": {
                    d: summary([r["media_back_s"][d] for r in results], 3) for d in directions
                },
                "worst_s": max(max(r["media_back_s"].values()) for r in results),
            }
    finally:
        await lab.aclose()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--gap", type=float, default=8.0, help="seconds of call before each")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    problem = available()
    if problem:
        log(f"the lab cannot run here: {problem}")
        return 2
    report: Json = {"loadavg_start": loadavg(), "link": {"loss": 0.01, "delay_ms": 40,
                    "jitter_ms": 5}}  # fmt: skip
    report.update(asyncio.run(measure(args.runs, args.gap)))
    report["loadavg_end"] = loadavg()
    emit(report, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
