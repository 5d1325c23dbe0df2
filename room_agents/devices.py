"""The room's devices: how they are named (device specs), whether this PyAV build can
open them, how open failures read, and what the machine has (``telecentre agent
devices``).

A device spec is ``format:target[?options]``:

- ``format`` is an FFmpeg input (or, for the speaker, output) format of PyAV:
  ``v4l2`` (Linux cameras), ``alsa`` (Linux sound), ``lavfi`` (FFmpeg's generated
  sources, for tests), ``x11grab`` (an X display), ``avfoundation`` (macOS) and
  ``dshow`` (Windows), or ``file`` for a media file FFmpeg probes itself (a camera
  or microphone that loops the file; a speaker that writes one, by its extension);
- ``target`` is what the format opens: ``/dev/video0``, ``hw:1,0``, a filter graph
  ``testsrc2=size=640x360:rate=30``, a display ``:0.0``, ``video=Integrated Camera``;
- ``options`` are FFmpeg options for the format, URL-query style:
  ``v4l2:/dev/video0?video_size=1280x720&framerate=30&input_format=mjpeg``.

Two specs stand alone: ``synthetic`` (the stamped test picture and tone the agent
had before real devices) and ``none`` (no device: a speaker that discards sound).

Rules: specs are parsed without touching a device, so a configuration error is
reported at start-up; a format missing from this PyAV build is named with the fix;
FFmpeg's open errors are translated into ``DeviceError`` with a stable code and a
sentence a room technician can act on.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal
from urllib.parse import parse_qsl

Kind = Literal["camera", "microphone", "speaker", "content"]

SYNTHETIC: Final = "synthetic"
NONE: Final = "none"
FILE: Final = "file"

# Formats that deliver in real time by themselves; anything else (lavfi, files) is
# read as fast as it decodes, so the capture thread paces it on its timestamps.
LIVE_FORMATS: Final = frozenset(
    {"v4l2", "video4linux2", "alsa", "x11grab", "fbdev", "kmsgrab", "oss", "pulse"}
    | {"avfoundation", "dshow", "gdigrab", "jack"}
)
ALIASES: Final = {"video4linux2": "v4l2"}
SYSTEM_FFMPEG_FIX: Final = (
    "install PyAV built against the system FFmpeg: pip install av --no-binary av"
)
MISSING_FORMAT_HINTS: Final = {
    "avfoundation": "avfoundation exists only in macOS builds of FFmpeg",
    "dshow": "dshow exists only in Windows builds of FFmpeg",
    "gdigrab": "gdigrab exists only in Windows builds of FFmpeg",
    "pulse": (
        "use alsa:default (PulseAudio and PipeWire answer through their ALSA plugin), "
        "or " + SYSTEM_FFMPEG_FIX
    ),
}
# What ``devices`` reports on, in this order.
LISTED_FORMATS: Final = (
    "v4l2",
    "alsa",
    "lavfi",
    "x11grab",
    "fbdev",
    "kmsgrab",
    "pulse",
    "avfoundation",
    "dshow",
)
_FORMAT_NAME = re.compile(r"^[a-z0-9_]+$")


class DeviceError(Exception):
    """A device that cannot be used; ``code`` is stable, ``message`` says what to do."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


BAD_SPEC: Final = "bad-spec"
FORMAT_MISSING: Final = "format-missing"
DEVICE_MISSING: Final = "device-missing"
DEVICE_BUSY: Final = "device-busy"
PERMISSION_DENIED: Final = "permission-denied"
DEVICE_FAILED: Final = "device-failed"
DEVICE_STALLED: Final = "device-stalled"


@dataclass(frozen=True, slots=True)
class DeviceSpec:
    format: str
    target: str = ""
    options: tuple[tuple[str, str], ...] = ()

    @property
    def synthetic(self) -> bool:
        return self.format == SYNTHETIC

    @property
    def none(self) -> bool:
        return self.format == NONE

    @property
    def live(self) -> bool:
        """Whether reads block in real time (a device), or must be paced (lavfi, files)."""
        return self.format in LIVE_FORMATS

    @property
    def ffmpeg_format(self) -> str | None:
        """The format to hand FFmpeg; None lets it probe a file."""
        return None if self.format == FILE else ALIASES.get(self.format, self.format)

    def open_options(self) -> dict[str, str]:
        return dict(self.options)

    def __str__(self) -> str:
        if self.format in (SYNTHETIC, NONE):
            return self.format
        query = "&".join(f"{k}={v}" for k, v in self.options)
        return f"{self.format}:{self.target}" + (f"?{query}" if query else "")


# --- pure helpers ---------------------------------------------------------------------


def parse_spec(text: str, kind: Kind) -> DeviceSpec:
    """Parse ``format:target[?options]``; ``synthetic`` and ``none`` stand alone.

    A camera or microphone may be ``synthetic``; a speaker or a content source may be
    ``none`` (the empty string means ``none`` too). Raises ``DeviceError`` (bad-spec).
    """
    text = text.strip()
    if kind in ("speaker", "content") and text in ("", NONE):
        return DeviceSpec(NONE)
    if text == SYNTHETIC:
        if kind in ("camera", "microphone"):
            return DeviceSpec(SYNTHETIC)
        raise DeviceError(BAD_SPEC, f"a {kind} cannot be synthetic (use none)")
    if text == NONE:
        raise DeviceError(BAD_SPEC, f"the {kind} cannot be none (use synthetic)")
    fmt, colon, rest = text.partition(":")
    fmt = fmt.lower()
    if not colon or not _FORMAT_NAME.match(fmt):
        raise DeviceError(
            BAD_SPEC,
            f"{kind} {text!r}: expected format:target[?options], "
            "e.g. v4l2:/dev/video0, alsa:default, lavfi:testsrc2, or synthetic",
        )
    target, _, query = rest.partition("?")
    if not target:
        raise DeviceError(BAD_SPEC, f"{kind} {text!r}: nothing to open after {fmt}:")
    try:
        options = tuple(parse_qsl(query, keep_blank_values=True, strict_parsing=True))
    except ValueError:
        raise DeviceError(
            BAD_SPEC, f"{kind} {text!r}: options must read name=value&name=value"
        ) from None
    if kind == "speaker" and fmt not in ("alsa", "oss", FILE):
        raise DeviceError(BAD_SPEC, f"speaker {text!r}: use alsa:<pcm>, file:<path> or none")
    return DeviceSpec(fmt, target, options)


def missing_format_message(fmt: str) -> str:
    fix = MISSING_FORMAT_HINTS.get(fmt, SYSTEM_FFMPEG_FIX)
    return f"{fmt} is not in this PyAV build; {fix}"


def check_available(spec: DeviceSpec, available: Callable[[str], bool], output: bool) -> None:
    """Raise ``DeviceError`` (format-missing) if this PyAV cannot open ``spec``'s format."""
    fmt = spec.ffmpeg_format
    if spec.synthetic or spec.none or fmt is None:
        return
    if not available(fmt if not output else f"{fmt}:out"):
        raise DeviceError(FORMAT_MISSING, missing_format_message(spec.format))


def open_error(spec: DeviceSpec, kind: Kind, errno: int | None, detail: str) -> DeviceError:
    """Translate an FFmpeg open or read error into a sentence and a stable code."""
    what = f"{kind} {spec}"
    group = "video" if spec.format in ("v4l2", "video4linux2") else "audio"
    if errno == 2:  # ENOENT
        return DeviceError(DEVICE_MISSING, f"{what}: no such device or file (unplugged?)")
    if errno == 19:  # ENODEV: a camera unplugged while open
        return DeviceError(DEVICE_MISSING, f"{what}: the device went away (unplugged?)")
    if errno == 16:  # EBUSY
        return DeviceError(DEVICE_BUSY, f"{what}: busy, another program is using it")
    if errno in (1, 13):  # EPERM, EACCES
        return DeviceError(
            PERMISSION_DENIED, f"{what}: permission denied (is the agent's user in '{group}'?)"
        )
    if spec.format == "alsa" and errno == 5:  # EIO: alsa-lib could not open the PCM
        return DeviceError(
            DEVICE_MISSING,
            f"{what}: ALSA cannot open PCM {spec.target!r} (no sound card, or an unknown "
            "PCM name: see telecentre agent devices)",
        )
    return DeviceError(DEVICE_FAILED, f"{what}: {detail}")


def alsa_environment(env: Mapping[str, str], root: Path = Path("/")) -> dict[str, str]:
    """Variables that point the PyAV wheel's own alsa-lib at the system's ALSA files.

    The wheel bundles alsa-lib built with a prefix that does not exist on the room
    PC, so without these it knows no PCM but ``null`` and ``hw``. Variables already
    set are left alone.
    """
    found: dict[str, str] = {}
    share = root / "usr/share/alsa"
    if "ALSA_CONFIG_DIR" not in env and (share / "alsa.conf").is_file():
        found["ALSA_CONFIG_DIR"] = str(share)
    if "ALSA_PLUGIN_DIR" not in env:
        for candidate in sorted((root / "usr/lib").glob("*/alsa-lib")):
            found["ALSA_PLUGIN_DIR"] = str(candidate)
            break
    return found


# --- what the machine has -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Device:
    kind: str  # camera, microphone, speaker, display
    spec: str
    name: str
    note: str = ""


@dataclass(frozen=True, slots=True)
class Inventory:
    cameras: list[Device] = field(default_factory=list)
    microphones: list[Device] = field(default_factory=list)
    speakers: list[Device] = field(default_factory=list)
    displays: list[Device] = field(default_factory=list)
    formats: dict[str, bool] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        def rows(devices: list[Device]) -> list[dict[str, str]]:
            return [{"spec": d.spec, "name": d.name, "note": d.note} for d in devices]

        return {
            "cameras": rows(self.cameras),
            "microphones": rows(self.microphones),
            "speakers": rows(self.speakers),
            "displays": rows(self.displays),
            "formats": self.formats,
            "notes": self.notes,
        }

    def to_text(self) -> str:
        lines: list[str] = []
        for title, devices in (
            ("cameras", self.cameras),
            ("microphones", self.microphones),
            ("speakers", self.speakers),
            ("displays", self.displays),
        ):
            lines.append(f"{title}:")
            if not devices:
                lines.append("  (none found)")
            width = max((len(d.spec) for d in devices), default=0)
            for d in devices:
                note = f"  ({d.note})" if d.note else ""
                lines.append(f"  {d.spec.ljust(width)}  {d.name}{note}")
        have = [f for f, ok in self.formats.items() if ok]
        lack = [f for f, ok in self.formats.items() if not ok]
        lines.append("PyAV formats: " + ", ".join(have) + (f" (not: {', '.join(lack)})"))
        lines.extend(f"note: {n}" for n in self.notes)
        return "\n".join(lines)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return ""


def _node_number(path: Path) -> int:
    digits = re.sub(r"\D", "", path.name)
    return int(digits) if digits else -1


def list_cameras(root: Path) -> list[Device]:
    """/dev/video* with the names sysfs gives them; ``index`` > 0 is usually a
    UVC camera's metadata node, which cannot deliver pictures."""
    cameras = []
    for node in sorted((root / "dev").glob("video*"), key=_node_number):
        sysfs = root / "sys/class/video4linux" / node.name
        name = _read(sysfs / "name") or "(no name in sysfs)"
        index = _read(sysfs / "index")
        note = "metadata node, probably not a picture" if index not in ("", "0") else ""
        cameras.append(Device("camera", f"v4l2:/dev/{node.name}", name, note))
    return cameras


_PCM_LINE = re.compile(r"^(\d+)-(\d+):\s*([^:]*?)\s*:\s*([^:]*?)\s*:(.*)$")
_CARD_LINE = re.compile(r"^\s*(\d+)\s+\[(\S+)\s*\]:\s*(.*)$")


def alsa_cards(root: Path) -> dict[int, tuple[str, str]]:
    """Card number -> (card id, name), from /proc/asound/cards."""
    cards: dict[int, tuple[str, str]] = {}
    for line in _read(root / "proc/asound/cards").splitlines():
        m = _CARD_LINE.match(line)
        if m:
            _driver, _, name = m.group(3).partition(" - ")  # "HDA-Intel - HDA Intel PCH"
            cards[int(m.group(1))] = (m.group(2), (name or m.group(3)).strip())
    return cards


def list_alsa(root: Path) -> tuple[list[Device], list[Device]]:
    """ALSA PCMs from /proc/asound/pcm, named by the stable card id (``CARD=PCH``)
    rather than the card number, which can change when USB devices come and go;
    plus ``default`` and ``null``, and the PipeWire and PulseAudio PCMs when their
    ALSA plugin configuration is installed."""
    cards = alsa_cards(root)
    mics: list[Device] = []
    speakers: list[Device] = []
    for line in _read(root / "proc/asound/pcm").splitlines():
        m = _PCM_LINE.match(line)
        if not m:
            continue
        card, dev, _id, name, rest = int(m.group(1)), int(m.group(2)), *m.groups()[2:]
        card_id, card_name = cards.get(card, (str(card), ""))
        spec = f"alsa:plughw:CARD={card_id},DEV={dev}"
        label = f"{card_name}: {name}" if card_name else name
        if "capture" in rest:
            mics.append(Device("microphone", spec, label, f"hw:{card},{dev}"))
        if "playback" in rest:
            speakers.append(Device("speaker", spec, label, f"hw:{card},{dev}"))
    servers = []
    for conf in ("usr/share/alsa/alsa.conf.d", "etc/alsa/conf.d"):
        for path in sorted((root / conf).glob("*.conf")):
            for server in ("pipewire", "pulse"):
                if server in path.name and server not in servers:
                    servers.append(server)
    for server in servers:
        note = f"through {'PipeWire' if server == 'pipewire' else 'PulseAudio'}"
        mics.append(Device("microphone", f"alsa:{server}", server, note))
        speakers.append(Device("speaker", f"alsa:{server}", server, note))
    default_note = "the system's default PCM" + ("; no sound card found" if not cards else "")
    mics.insert(0, Device("microphone", "alsa:default", "default", default_note))
    speakers.insert(0, Device("speaker", "alsa:default", "default", default_note))
    speakers.append(Device("speaker", "alsa:null", "null", "discards sound, needs no card"))
    return mics, speakers


def list_displays(root: Path, env: Mapping[str, str]) -> list[Device]:
    """X displays with a socket in /tmp/.X11-unix, and $DISPLAY."""
    displays: list[Device] = []
    seen: set[str] = set()
    for sock in sorted((root / "tmp/.X11-unix").glob("X*"), key=_node_number):
        number = sock.name[1:]
        if number.isdigit():
            seen.add(f":{number}")
            displays.append(
                Device("display", f"x11grab::{number}", f":{number}", f"socket {sock.name}")
            )
    current = env.get("DISPLAY", "")
    if current and current.split(".")[0] not in seen:
        displays.append(Device("display", f"x11grab:{current}", current, "from $DISPLAY"))
    elif current:
        displays = [
            Device(d.kind, d.spec, d.name, d.note + ", $DISPLAY")
            if d.name == current.split(".")[0]
            else d
            for d in displays
        ]
    return displays


def inventory(
    root: Path = Path("/"),
    env: Mapping[str, str] | None = None,
    available: Callable[[str], bool] | None = None,
) -> Inventory:
    """What the machine under ``root`` has, and which formats this PyAV can open."""
    env = os.environ if env is None else env
    available = available or format_available
    mics, speakers = list_alsa(root)
    formats = {fmt: available(fmt) for fmt in LISTED_FORMATS}
    notes = [
        "macOS cameras are avfoundation:<index> (avfoundation:0); Windows cameras are "
        "dshow:video=<name>; neither can be listed from Linux",
    ]
    if not formats.get("v4l2", True):
        notes.append(missing_format_message("v4l2"))
    return Inventory(
        cameras=list_cameras(root),
        microphones=mics,
        speakers=speakers,
        displays=list_displays(root, env),
        formats=formats,
        notes=notes,
    )


# --- PyAV -----------------------------------------------------------------------------


def format_available(name: str) -> bool:
    """Whether this PyAV opens ``name`` as input (``name:out``: as output)."""
    import av

    fmt, _, direction = name.partition(":")
    try:
        container_format = av.ContainerFormat(ALIASES.get(fmt, fmt))
    except ValueError:
        return False
    return bool(container_format.is_output if direction == "out" else container_format.is_input)


def use_system_alsa() -> None:
    """Point the bundled alsa-lib at the system's ALSA files (see ``alsa_environment``)
    before the first device is opened."""
    os.environ.update(alsa_environment(os.environ))


def open_input(spec: DeviceSpec, kind: Kind, read_timeout: float = 2.0) -> Any:
    """Open ``spec`` for reading; FFmpeg's errors become ``DeviceError``."""
    import av

    check_available(spec, format_available, output=False)
    target = spec.target
    try:
        return av.open(
            target,
            format=spec.ffmpeg_format,
            options=spec.open_options(),
            timeout=(max(read_timeout, 5.0), read_timeout),
        )
    except av.FFmpegError as exc:
        raise open_error(spec, kind, exc.errno, exc.strerror or str(exc)) from None


def open_output(spec: DeviceSpec) -> Any:
    """Open ``spec`` for writing (a speaker); FFmpeg's errors become ``DeviceError``."""
    import av

    check_available(spec, format_available, output=True)
    try:
        if spec.format == FILE:
            return av.open(spec.target, mode="w", options=spec.open_options())
        return av.open(
            spec.target, mode="w", format=spec.ffmpeg_format, options=spec.open_options()
        )
    except av.FFmpegError as exc:
        raise open_error(spec, "speaker", exc.errno, exc.strerror or str(exc)) from None
