"""bench/sfu's pure parts on canned samples: one room's window from two status files,
the set-up time, the table, the break-even rule and the report's shape (no processes,
no timing)."""

from __future__ import annotations

from typing import Any

import pytest

from bench.sfu import (
    FIGURES,
    Sample,
    break_even,
    by_rooms,
    grown,
    parse_args,
    point_summary,
    report,
    room_setup,
    room_window,
    streams_sent,
)

SID = "s1"
KB = 1000 // 8  # bytes in one kbit


def status(
    at: float, sent: dict[str, int], received: dict[str, int], frames: dict[str, int], **peer: Any
) -> dict[str, Any]:
    return {
        "server_now": at,
        "sessions": {SID: sorted(sent)},
        "sent_bytes": {SID: sent},
        "received_bytes": {SID: received},
        "peers": {
            p: {
                "frames": n,
                "latency_p50_ms": peer.get("p50", {}).get(p),
                "latency_p95_ms": peer.get("p95", {}).get(p),
                "first_frame_at": peer.get("first", {}).get(p),
            }
            for p, n in frames.items()
        },
    }


def test_a_mesh_room_sends_one_stream_per_peer_and_an_sfu_room_one_in_all() -> None:
    # Mesh, three rooms: two connections, each sending 400 kbit/s over 10 s.
    a = Sample(status(100.0, {"room:b": 0, "room:c": 0}, {"room:b": 0, "room:c": 0}, {}), 5.0, 0.0)
    b = Sample(
        status(
            110.0,
            {"room:b": 4000 * KB, "room:c": 4000 * KB},
            {"room:b": 3000 * KB, "room:c": 5000 * KB},
            {"room:b": 300, "room:c": 290},
            p50={"room:b": 30.0, "room:c": 40.0},
            p95={"room:b": 60.0, "room:c": 90.0},
        ),
        8.0,
        10.0,
    )
    mesh = room_window(a, b, SID)
    assert mesh["topology"] == "mesh"
    assert mesh["cpu_pct"] == 30.0
    assert mesh["uplink_kbps"] == 800.0
    assert mesh["downlink_kbps"] == 800.0
    assert mesh["streams_sent"] == 2
    assert mesh["uplink_kbps_per_stream"] == 400.0
    assert mesh["fps_per_remote"] == {"room:b": 30.0, "room:c": 29.0}
    assert mesh["fps_min"] == 29.0
    assert mesh["latency_p50_ms"] == 35.0  # median over the remote sites
    assert mesh["latency_p95_ms"] == 90.0  # the worst

    # SFU: the publication carries the stream, the subscriptions only RTCP.
    conns = ("sfu", "sfu:room:b", "sfu:room:c")
    a = Sample(status(100.0, dict.fromkeys(conns, 0), dict.fromkeys(conns, 0), {}), 5.0, 0.0)
    b = Sample(
        status(
            110.0,
            {"sfu": 5000 * KB, "sfu:room:b": 20 * KB, "sfu:room:c": 20 * KB},
            {"sfu": 10 * KB, "sfu:room:b": 4000 * KB, "sfu:room:c": 4000 * KB},
            {"room:b": 300, "room:c": 300},
        ),
        7.0,
        10.0,
    )
    sfu = room_window(a, b, SID)
    assert sfu["topology"] == "sfu"
    assert sfu["streams_sent"] == 1
    assert sfu["uplink_kbps"] == 504.0
    assert sfu["cpu_pct"] == 20.0


def test_a_connection_replaced_within_the_window_counts_from_zero() -> None:
    assert grown({"sfu": 5000, "x": 10}, {"sfu": 700, "x": 30, "y": 5}) == {
        "sfu": 700,
        "x": 20,
        "y": 5,
    }
    assert streams_sent({}) == 0
    assert streams_sent({"a": 10.0, "b": 5.0}) == 0  # RTCP alone is no stream
    assert streams_sent({"a": 900.0, "b": 300.0, "c": 100.0}) == 2


def test_setup_is_the_join_to_the_last_remote_first_frame() -> None:
    seen = status(0, {}, {}, {"room:b": 1, "room:c": 1}, first={"room:b": 92.5, "room:c": 93.0})
    setup = room_setup(92.0, seen, remotes=2, start=100.0, lead_s=8)
    assert setup["setup_ms"] == 1000.0
    assert setup["setup_rel_T_ms"] == -7000.0
    assert setup["joined_rel_T_ms"] == -8000.0
    assert setup["inside_lead"] is True
    # One remote site never showed: no set-up time, not inside the lead.
    partial = room_setup(92.0, seen, remotes=3, start=100.0, lead_s=8)
    assert partial["setup_ms"] is None and partial["inside_lead"] is None


def row(cpu: float, up: float, streams: float = 1) -> dict[str, Any]:
    return {"cpu_pct": cpu, "uplink_kbps": up, "streams_sent_p50": streams}


def test_break_even_is_the_smallest_n_where_the_sfu_is_lower_and_mesh_cap_one_less() -> None:
    table: dict[str, dict[str, Any]] = {
        "2": {"mesh": row(30, 400), "sfu": row(33, 1400)},
        "3": {"mesh": row(47, 900, 2), "sfu": row(40, 1400)},
        "4": {"mesh": row(65, 1300, 3), "sfu": row(45, 1400)},
        "5": {"mesh": row(90, 1700, 4), "sfu": row(50, 1400)},
    }
    found = break_even(table, 0.1)
    assert (found["n_by_cpu"], found["n_by_uplink"], found["n_by_streams_sent"]) == (3, 5, 3)
    assert found["n"] == 3 and found["mesh_cap"] == 2
    # 40 is not 20 % under 47: with that margin CPU breaks even at 4.
    assert break_even(table, 0.2)["n_by_cpu"] == 4
    # A failed point is skipped; nothing lower anywhere: no break-even.
    table["3"]["sfu"] = {"error": "AssertionError: ..."}
    assert break_even(table, 0.1)["n_by_cpu"] == 4
    # A pair the machine did not let run (starved, saturated, disturbed) is no evidence
    # for CPU or uplink; the streams each room sends still count.
    table["3"] = {"mesh": row(47, 900, 2), "sfu": row(30, 400), "comparable": False}
    skipped = break_even(table, 0.1)
    assert (skipped["n_by_cpu"], skipped["n_by_streams_sent"]) == (4, 3)
    assert skipped["mesh_cap_by_streams_sent"] == 2
    flat = {"2": {"mesh": row(30, 400), "sfu": row(30, 400)}}
    assert break_even(flat, 0.1) == {**break_even(flat, 0.1), "n": None, "mesh_cap": None}


def canned_point(mode: str, n: int, cpu: float, latency: float, streams: int) -> dict[str, Any]:
    rooms = {
        f"room{i}": {
            "topology": mode,
            "cpu_pct": cpu + i,
            "uplink_kbps": 500.0 * streams,
            "downlink_kbps": 500.0 * (n - 1),
            "streams_sent": streams,
            "uplink_kbps_per_stream": 500.0,
            "fps_min": 29.0,
            "latency_p50_ms": latency,
            "latency_p95_ms": latency * 2,
            "setup_ms": 400.0 + i,
            "setup_rel_T_ms": -7000.0,
        }
        for i in range(n)
    }
    return {
        "mode": mode,
        "n": n,
        "janus_cpu_pct": 5.0 if mode == "sfu" else 0.1,
        "serve_cpu_pct": 2.0,
        "busy_fraction": 0.5,
        "contended": False,
        "summary": point_summary(rooms),
        "rooms": rooms,
    }


def test_the_report_puts_mesh_and_sfu_side_by_side_with_ratios_goals_and_floor() -> None:
    points = [
        canned_point("mesh", 2, 30, 20, 1),
        canned_point("sfu", 2, 32, 25, 1),
        canned_point("mesh", 3, 50, 22, 2),
        canned_point("sfu", 3, 35, 40, 1),
        {"mode": "mesh", "n": 4, "error": "RuntimeError: janus"},
    ]
    floor = {"cpu_pct_per_stream": 25.0, "uplink_kbps": 500.0, "latency_p50_ms": 20.0}
    out = report(points, floor, {"lead_s": 8}, 0.1, 8)
    assert set(out) == {
        "benchmark",
        "scenario",
        "floor",
        "by_rooms",
        "break_even",
        "goals",
        "points",
    }
    assert set(points[0]["summary"]) == set(FIGURES)
    three = out["by_rooms"]["3"]
    assert three["mesh"]["cpu_pct"] == 51.0  # p50 over the rooms 50, 51, 52
    assert three["sfu"]["uplink_in_floor_streams"] == 1.0
    assert three["mesh"]["uplink_in_floor_streams"] == 2.0
    assert three["sfu_over_mesh"]["cpu_pct"] == round(36 / 51, 3)
    assert three["sfu_over_mesh"]["latency_p50_minus_mesh_ms"] == 18.0
    assert out["by_rooms"]["4"]["mesh"] == {"error": "RuntimeError: janus"}
    assert out["by_rooms"]["4"]["sfu"] is None
    assert out["break_even"]["n"] == 3 and out["break_even"]["mesh_cap"] == 2
    assert three["comparable"] is True and out["by_rooms"]["4"]["comparable"] is False
    assert out["break_even"]["comparable_n"] == [2, 3]
    starved = [dict(p) for p in points[:4]]
    starved[2] = canned_point("mesh", 3, 50, 22, 2)
    starved[2]["summary"]["fps_min"]["min"] = 5.0  # the mesh rooms got 5 of 30 fps
    assert by_rooms(starved, floor, fps=30)["3"]["comparable"] is False
    uplink, latency, setup = out["goals"]
    assert uplink["met"] is True
    assert latency["sfu_minus_mesh_ms_by_n"] == {"2": 5.0, "3": 18.0}
    assert latency["met"] is False  # 18 ms over the mesh at N = 3
    assert setup["met"] is True


def test_the_options_refuse_what_the_bench_cannot_run() -> None:
    options, out = parse_args(["--rooms", "3,2", "--modes", "sfu", "--out", "x.json"])
    assert options.counts == [2, 3] and options.modes == ["sfu"] and str(out) == "x.json"
    for bad in (["--rooms", "1,2"], ["--rooms", "7"], ["--modes", "star"], ["--margin", "1.5"]):
        with pytest.raises(SystemExit):
            parse_args(bad)
