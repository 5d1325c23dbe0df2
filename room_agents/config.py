"""The agent's settings: one declarative table (``OPTIONS``) read from a TOML file,
the environment and command-line flags.

Rules:

- Precedence: flags > environment (``TELECENTRE_AGENT_<NAME>``) > file > defaults.
  The file is named by ``--config`` or ``TELECENTRE_AGENT_CONFIG``; there is none by
  default. An empty environment variable counts as unset (systemd's
  ``EnvironmentFile`` often carries ``NAME=`` lines).
- An unknown key in the file, or an unknown ``TELECENTRE_AGENT_*`` variable, is an
  error that names it: a misspelt ``camera`` must not silently leave the synthetic
  camera on. Tables are not used: every key is top level.
- Relative paths in the file are relative to the file's directory.
- The room key is read from a file (``key_file``), ``TELECENTRE_ROOM_KEY`` or
  ``--key``, never from the configuration file or a URL, and never appears in
  ``repr`` or logs. The key file is re-read on every connection attempt, so an
  operator who rotates a key only replaces the file.
- Device specs are checked for form here (room_agents.devices), not opened.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from room_agents.devices import DeviceError, parse_spec
from signalling.protocol import ICE_POLICIES

KEY_ENV: Final = "TELECENTRE_ROOM_KEY"
ENV_PREFIX: Final = "TELECENTRE_AGENT_"
CONFIG_ENV: Final = ENV_PREFIX + "CONFIG"
# The sizes a room may send. Every frame carries the capture-time stamp, 66 blocks of
# 16x16 pixels from the top-left corner, wrapping to further rows (room_agents.stamp).
# At 320x180 it takes 4 rows (64 px) and leaves the rest to the picture; at 160x120 it
# would take 7 rows, 112 of 120 px: the far room would see the stamp and hardly the
# room, so such sizes are refused at startup rather than served. (The stamp cannot
# shrink: its blocks follow the codec's 16x16 macroblocks, DESIGN "Measuring media".)
MIN_WIDTH: Final = 320
MIN_HEIGHT: Final = 180
MAX_WIDTH: Final = 3840
MAX_HEIGHT: Final = 2160
SIZE_REASON: Final = (
    f"a room sends at least {MIN_WIDTH}x{MIN_HEIGHT}: every frame carries a capture-time "
    "stamp of 66 blocks of 16x16 pixels, which would cover most of a smaller picture"
)

Origin = Literal["default", "file", "env", "flag"]
ValueKind = Literal["str", "int", "float", "path", "camera", "microphone", "speaker", "content"]


class ConfigError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Option:
    name: str  # the key in the file; --name-with-dashes; TELECENTRE_AGENT_NAME
    kind: ValueKind
    default: Any
    help: str
    field: str = ""  # the AgentConfig field, when it is not ``name``
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    reason: str = ""  # why the range is what it is, added to the errors

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def target(self) -> str:
        return self.field or self.name


OPTIONS: Final[tuple[Option, ...]] = (
    Option("server", "str", None, "http(s):// or ws(s):// URL of the service", "server_url"),
    Option("key_file", "path", None, f"file holding the room key (or {KEY_ENV})"),
    Option("cache_dir", "path", None, "where the schedule cache lives"),
    Option(
        "ca_file",
        "path",
        None,
        "PEM file of the certificate authorities to trust for the server "
        "(a centre's private CA or a self-signed certificate); default: the system's",
    ),
    Option(
        "turn_ca_file",
        "path",
        None,
        "PEM file of a private certificate authority to trust for TURN over TLS (turns:), "
        "besides the system's",
    ),
    Option("status_file", "path", None, "write the agent's state as JSON here, twice a second"),
    Option("label", "str", "", "the room's name, drawn on its cards and synthetic camera"),
    Option(
        "camera",
        "camera",
        "synthetic",
        "camera spec: v4l2:/dev/video0?video_size=1280x720&framerate=30, "
        "lavfi:testsrc2, avfoundation:0, dshow:video=<name>, file:<path> or synthetic",
    ),
    Option(
        "microphone",
        "microphone",
        "synthetic",
        "microphone spec: alsa:default, alsa:plughw:CARD=PCH,DEV=0, lavfi:sine, or synthetic",
    ),
    Option(
        "speaker",
        "speaker",
        "none",
        "speaker spec: alsa:default, alsa:plughw:CARD=PCH,DEV=0, alsa:null, file:<path.wav> "
        "or none",
    ),
    Option("content", "content", "none", "content source spec for sharing: x11grab::0.0, or none"),
    Option(
        "width",
        "int",
        640,
        f"width of the video the room sends, even, {MIN_WIDTH} to {MAX_WIDTH}",
        minimum=MIN_WIDTH,
        maximum=MAX_WIDTH,
        reason=SIZE_REASON,
    ),
    Option(
        "height",
        "int",
        360,
        f"height of the video the room sends, even, {MIN_HEIGHT} to {MAX_HEIGHT}",
        minimum=MIN_HEIGHT,
        maximum=MAX_HEIGHT,
        reason=SIZE_REASON,
    ),
    Option("fps", "int", 30, "frames per second the room sends", minimum=1, maximum=60),
    Option(
        "screen",
        "str",
        "headless",
        "headless (no window) or fullscreen (the room screen)",
        choices=("headless", "fullscreen"),
    ),
    Option(
        "readiness_lead",
        "float",
        600.0,
        "seconds before a session when the room checks itself",
        minimum=0,
    ),
    Option(
        "device_retry",
        "float",
        3.0,
        "seconds between attempts to open a missing device",
        minimum=0.1,
    ),
    Option(
        "ice_policy",
        "str",
        "all",
        "all, or relay: use only TURN relay candidates (a network that forbids direct "
        "UDP, or lets out only TCP 443); the server's room setting can also ask for relay",
        choices=ICE_POLICIES,
    ),
    Option(
        "log_level",
        "str",
        "INFO",
        "DEBUG, INFO, WARNING or ERROR",
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
    ),
)
BY_NAME: Final = {o.name: o for o in OPTIONS}


@dataclass(frozen=True, slots=True)
class AgentConfig:
    server_url: str
    key: str | None = field(default=None, repr=False)
    key_file: Path | None = None
    cache_dir: Path | None = None
    ca_file: Path | None = None
    turn_ca_file: Path | None = None
    status_file: Path | None = None
    width: int = 640
    height: int = 360
    fps: int = 30
    label: str = ""
    camera: str = "synthetic"
    microphone: str = "synthetic"
    speaker: str = "none"
    content: str = "none"
    screen: str = "headless"
    readiness_lead: float = 600.0
    device_retry: float = 3.0
    ice_policy: str = "all"
    log_level: str = "INFO"
    backoff_base: float = 0.5
    backoff_cap: float = 5.0

    def __post_init__(self) -> None:
        # Here as well as in ``merge``: a config built by hand (tests, benchmarks,
        # embedding) meets the same rule as one read from flags and files.
        check_video_size(self.width, self.height)

    def read_key(self) -> str:
        if self.key_file is not None:
            try:
                key = self.key_file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(f"cannot read key file {self.key_file}: {exc.strerror}") from None
        else:
            key = self.key or os.environ.get(KEY_ENV, "").strip()
        if not key:
            raise ConfigError(f"no room key: use key_file, {KEY_ENV} or --key")
        return key


@dataclass(frozen=True, slots=True)
class Loaded:
    config: AgentConfig
    origins: dict[str, Origin]  # option name -> where its value came from

    def describe(self) -> dict[str, dict[str, Any]]:
        """The effective settings and their origins (no key: it is never shown)."""
        out: dict[str, dict[str, Any]] = {}
        for option in OPTIONS:
            value = getattr(self.config, option.target)
            out[option.name] = {
                "value": str(value) if isinstance(value, Path) else value,
                "from": self.origins[option.name],
            }
        return out


# --- pure helpers ---------------------------------------------------------------------


def check_video_size(width: int, height: int) -> None:
    """The one rule for the size a room sends: within ``MIN_*`` and ``MAX_*`` (see
    ``SIZE_REASON``), and even, as yuv420p and the encoders need."""
    for side, value, low, high in (
        ("width", width, MIN_WIDTH, MAX_WIDTH),
        ("height", height, MIN_HEIGHT, MAX_HEIGHT),
    ):
        if not low <= value <= high:
            raise ConfigError(f"{side} {value} is not within {low} to {high}: {SIZE_REASON}")
        if value % 2:
            raise ConfigError(f"{side} {value} must be even (yuv420p)")


def ws_url(server: str) -> str:
    """Accept http(s)://host:port or ws(s)://host:port[/ws] and return the WebSocket URL."""
    url = server.rstrip("/")
    if url.startswith("http://"):
        url = "ws://" + url[len("http://") :]
    elif url.startswith("https://"):
        url = "wss://" + url[len("https://") :]
    elif not url.startswith(("ws://", "wss://")):
        raise ConfigError(f"server URL must start with http(s):// or ws(s)://: {server!r}")
    if not url.endswith("/ws"):
        url += "/ws"
    if "?" in url:
        raise ConfigError("the server URL carries no query: keys never travel in URLs")
    return url


_KIND_WORDS: Final = {"int": "an integer", "float": "a number"}


def convert(option: Option, raw: object, where: str, base: Path | None = None) -> Any:
    """``raw`` (a TOML value, or a string from the environment or a flag) as the
    option's type, checked; ``where`` names the source in errors. A file's values are
    typed by TOML (``base`` is given for them): a number in quotes is an error there."""
    kind = option.kind
    try:
        if base is not None and kind in ("int", "float") and isinstance(raw, str):
            raise ValueError
        if kind == "int":
            if isinstance(raw, bool) or not isinstance(raw, int | str):
                raise ValueError
            value: Any = int(raw)
        elif kind == "float":
            if isinstance(raw, bool) or not isinstance(raw, int | float | str):
                raise ValueError
            value = float(raw)
        elif not isinstance(raw, str):
            raise ValueError
        else:
            value = raw
    except ValueError:
        expected = _KIND_WORDS.get(kind, "a string")
        raise ConfigError(f"{where}: expected {expected}, got {raw!r}") from None
    if kind == "path":
        path = Path(value).expanduser()
        return base / path if base is not None and not path.is_absolute() else path
    if kind in ("camera", "microphone", "speaker", "content"):
        try:
            parse_spec(value, kind)
        except DeviceError as exc:
            raise ConfigError(f"{where}: {exc.message}") from None
        return value
    if option.choices:
        if kind == "str" and option.name == "log_level":
            value = value.upper()
        if value not in option.choices:
            raise ConfigError(f"{where}: {value!r} is not one of {', '.join(option.choices)}")
    reason = f" ({option.reason})" if option.reason else ""
    if option.minimum is not None and value < option.minimum:
        raise ConfigError(f"{where}: {value} is below the minimum, {option.minimum:g}{reason}")
    if option.maximum is not None and value > option.maximum:
        raise ConfigError(f"{where}: {value} is above the maximum, {option.maximum:g}{reason}")
    return value


def parse_file(text: str, name: str) -> dict[str, Any]:
    """The file's keys, with unknown ones refused by name."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{name}: not valid TOML: {exc}") from None
    if "key" in data:
        raise ConfigError(
            f"{name}: 'key': the room key does not belong in the configuration file; "
            f"put it in a file of its own (key_file) or in {KEY_ENV}"
        )
    unknown = sorted(k for k in data if k not in BY_NAME)
    if unknown:
        raise ConfigError(f"{name}: unknown key {unknown[0]!r} (known keys: {', '.join(BY_NAME)})")
    return data


def merge(
    flags: Mapping[str, Any],
    env: Mapping[str, str],
    file_values: Mapping[str, Any] | None = None,
    file_name: str = "",
    file_dir: Path | None = None,
) -> Loaded:
    """Combine the sources (flags > env > file > defaults) into a checked config.

    ``flags`` holds only the flags given, by option name (``key`` too, the one
    setting that is a flag only).
    """
    for name in env:
        if name.startswith(ENV_PREFIX) and name != CONFIG_ENV:
            if name[len(ENV_PREFIX) :].lower() not in BY_NAME:
                raise ConfigError(f"unknown environment variable {name}")
    values: dict[str, Any] = {}
    origins: dict[str, Origin] = {}
    for option in OPTIONS:
        value: Any = option.default
        origin: Origin = "default"
        if file_values is not None and option.name in file_values:
            where = f"{file_name}: {option.name}"
            value = convert(option, file_values[option.name], where, file_dir or Path.cwd())
            origin = "file"
        if env.get(option.env, "").strip():
            value, origin = convert(option, env[option.env].strip(), option.env), "env"
        if flags.get(option.name) is not None:
            value, origin = convert(option, flags[option.name], option.flag), "flag"
        values[option.target] = value
        origins[option.name] = origin
    server = values.pop("server_url")
    if not server:
        raise ConfigError(f"no server: set server in the file, {BY_NAME['server'].env} or --server")
    # AgentConfig checks the size as a whole (check_video_size): odd sizes fail there.
    config = AgentConfig(server_url=ws_url(server), key=flags.get("key"), **values)
    return Loaded(config, origins)


def load(flags: Mapping[str, Any], env: Mapping[str, str] | None = None) -> Loaded:
    """Read the configuration file named by ``flags['config']`` or the environment,
    then ``merge``."""
    env = os.environ if env is None else env
    path_text = flags.get("config") or env.get(CONFIG_ENV, "").strip()
    if not path_text:
        return merge(flags, env)
    path = Path(path_text).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read configuration file {path}: {exc.strerror}") from None
    return merge(flags, env, parse_file(text, str(path)), str(path), path.parent.absolute())
