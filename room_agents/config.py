"""The agent's settings: one declarative object from flags and environment.

The room key is read from a file, the environment or a flag, never from a URL,
and never appears in ``repr`` or logs. The key file is re-read on every
connection attempt, so an operator who rotates a key only replaces the file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

KEY_ENV = "TELECENTRE_ROOM_KEY"


class ConfigError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class AgentConfig:
    server_url: str
    key: str | None = field(default=None, repr=False)
    key_file: Path | None = None
    cache_dir: Path | None = None
    status_file: Path | None = None
    width: int = 640
    height: int = 360
    fps: int = 30
    label: str = ""
    backoff_base: float = 0.5
    backoff_cap: float = 5.0

    def read_key(self) -> str:
        if self.key_file is not None:
            try:
                key = self.key_file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(f"cannot read key file {self.key_file}: {exc.strerror}") from None
        else:
            key = self.key or os.environ.get(KEY_ENV, "").strip()
        if not key:
            raise ConfigError(f"no room key: use --key-file, {KEY_ENV} or --key")
        return key


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
