"""Helpers every benchmark shares: summaries, ratios, CPU accounting, JSON layout."""

from __future__ import annotations

import json
import os
import statistics
from collections.abc import Iterable
from pathlib import Path
from typing import Any

Json = dict[str, Any]


def summary(values: Iterable[float | None], digits: int = 3, *, round_values: bool = False) -> Json:
    """p50 (median), min and max over the values that exist, plus the raw values
    (themselves rounded to ``digits`` when ``round_values``)."""
    raw = (
        [None if v is None else round(v, digits) for v in values] if round_values else list(values)
    )
    present = [v for v in raw if v is not None]
    if not present:
        return {"p50": None, "min": None, "max": None, "n": 0, "values": raw}
    return {
        "p50": round(statistics.median(present), digits),
        "min": round(min(present), digits),
        "max": round(max(present), digits),
        "n": len(present),
        "values": raw,
    }


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else round(a / b, 3)


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of a process (all its threads), in seconds; None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    """This process's CPU seconds (it is always there to read)."""
    seconds = cpu_seconds(os.getpid())
    assert seconds is not None
    return seconds


def machine_busy_seconds() -> float:
    """CPU seconds all processors spent busy since boot (/proc/stat, all CPUs summed)."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def compact_json(
    value: Any, indent: int = 0, width: int = 100, *, flat_scalar_lists: bool = False
) -> str:
    """JSON with small objects and lists kept on one line, larger ones indented; with
    ``flat_scalar_lists``, lists of numbers (raw timings) stay on one line however long."""
    flat = json.dumps(value)
    if len(flat) + indent <= width or not isinstance(value, dict | list) or not value:
        return flat
    if (
        flat_scalar_lists
        and isinstance(value, list)
        and not any(isinstance(v, dict | list) for v in value)
    ):
        return flat
    pad = " " * (indent + 2)

    def nested(v: Any) -> str:
        return compact_json(v, indent + 2, width, flat_scalar_lists=flat_scalar_lists)

    if isinstance(value, dict):
        items = [f"{pad}{json.dumps(k)}: {nested(v)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + " " * indent + "}"
    items = [pad + nested(v) for v in value]
    return "[\n" + ",\n".join(items) + "\n" + " " * indent + "]"


def emit(report: Json, out: Path | None) -> None:
    """Print a benchmark's report (``compact_json``, raw timings on one line), and write
    the same text to ``out`` when one is given."""
    text = compact_json(report, flat_scalar_lists=True)
    if out:
        out.write_text(text + "\n")
    print(text)
