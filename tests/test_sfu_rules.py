"""The pure parts of SFU sessions: which candidates of an SFU's SDP reach members, and
how the dashboard says where a session runs."""

from __future__ import annotations

from datetime import UTC, datetime

from signalling.candidates import keep_allowed_candidates, parse_networks, refused_in_sdp
from signalling.ports import SessionTopology
from web.ui.dashboard_sites import ViewContext
from web.ui.dashboard_state import media_path
from web.ui.i18n import Formatter

LOOPBACK = parse_networks(["127.0.0.1/32"])

JANUS_SDP = "\r\n".join(
    [
        "v=0",
        "o=- 1 1 IN IP4 10.9.8.7",
        "s=VideoRoom 1234",
        "t=0 0",
        "m=video 9 UDP/TLS/RTP/SAVPF 96",
        "c=IN IP4 10.9.8.7",
        "a=rtcp:9 IN IP4 10.9.8.7",
        "a=candidate:1 1 udp 2015363327 10.9.8.7 40001 typ host",
        "a=candidate:2 1 udp 2015363071 127.0.0.1 40002 typ host",
        "a=candidate:3 1 udp 2015363071 bad line",
        "a=candidate:4 1 udp 1679819007 127.0.0.1 40003 typ srflx raddr 10.9.8.7 rport 40001",
        "a=end-of-candidates",
        "",
    ]
)


def test_an_sfu_sdp_keeps_only_the_candidates_the_deployment_allows() -> None:
    assert refused_in_sdp(JANUS_SDP, LOOPBACK) is not None  # the premise: as sent, refused
    kept = keep_allowed_candidates(JANUS_SDP, LOOPBACK)
    assert refused_in_sdp(kept, LOOPBACK) is None
    lines = kept.split("\r\n")
    assert "a=candidate:2 1 udp 2015363071 127.0.0.1 40002 typ host" in lines
    assert not any(line.startswith("a=candidate:1 ") for line in lines)
    assert not any(line.startswith("a=candidate:3 ") for line in lines)
    assert not any(line.startswith("a=candidate:4 ") for line in lines)  # related address
    assert "c=IN IP4 0.0.0.0" in lines
    assert not any(line.startswith("a=rtcp:") for line in lines)
    assert "a=end-of-candidates" in lines and "o=- 1 1 IN IP4 10.9.8.7" in lines


def test_an_allowed_sdp_passes_unchanged() -> None:
    sdp = JANUS_SDP.replace("10.9.8.7", "127.0.0.1").replace(
        "a=candidate:3 1 udp 2015363071 bad line\r\n", ""
    )
    assert keep_allowed_candidates(sdp, LOOPBACK) == sdp


def _ctx() -> ViewContext:
    return ViewContext(
        user=None,
        now=datetime(2030, 6, 3, 9, 0, tzinfo=UTC),
        fmt=Formatter("en"),
        _=lambda m: m,
        zones={},
        centre_names={},
        room_names={},
        room_centres={},
        online=frozenset(),
        media={},
        kept={},
        owners={},
    )


def _placed(reason: str, previous: str | None) -> SessionTopology:
    at = datetime(2030, 6, 3, 9, 2, 3, tzinfo=UTC).timestamp()
    return SessionTopology(1, "s1", "sfu", 2, "127.0.0.1:8289", previous, reason, at)


def test_the_dashboard_says_which_janus_a_session_runs_on_and_its_move() -> None:
    assert media_path(None, "UTC", _ctx()) == ""
    assert media_path(_placed("mesh-limit", None), "UTC", _ctx()) == "SFU: 127.0.0.1:8289"
    moved = media_path(_placed("janus-down", "127.0.0.1:8188"), "Europe/Paris", _ctx())
    assert moved.startswith("SFU: 127.0.0.1:8289 (moved from 127.0.0.1:8188 at ")
    assert "11:02:03" in moved  # the viewer's zone


def test_the_guest_camera_setting_is_read_or_refused_with_its_name() -> None:
    from web.settings import Settings

    assert Settings(guest_video="320x180@15").guest_camera() == (320, 180, 15)
    assert Settings().guest_camera() == (640, 360, 30)
    for bad in ("320x180@0", "big", "0x0@30", "640x360@x"):
        try:
            Settings(guest_video=bad).guest_camera()
        except ValueError as exc:
            assert "guest_video" in str(exc)
        else:
            raise AssertionError(f"{bad!r} was taken")
