"""The service's settings: one declarative object, from defaults, environment and flags.

Each field has its default, its environment variable and its help text here, in
one place; secrets never appear in ``repr``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from signalling.janus.pool import JanusServer

ENV_PREFIX = "TELECENTRE_"


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = field(default="127.0.0.1", metadata={"help": "address to listen on"})
    port: int = field(default=8077, metadata={"help": "port to listen on"})
    data_dir: Path = field(
        default=Path("data"), metadata={"help": "where the SQLite file and ticket key live"}
    )
    database_url: str | None = field(
        default=None,
        repr=False,
        metadata={"help": "SQLAlchemy URL of another database (default: SQLite in the data dir)"},
    )
    candidate_networks: tuple[str, ...] = field(
        default=("127.0.0.1/32",),
        metadata={
            "help": "networks (CIDR, comma-separated) whose addresses peers may offer as ICE candidates"
        },
    )
    stun_urls: tuple[str, ...] = field(
        default=(),
        metadata={
            "help": "STUN URLs (stun:host[:port], comma-separated) handed to every peer; "
            "none by default (never a public server)"
        },
    )
    turn_urls: tuple[str, ...] = field(
        default=(),
        metadata={
            "help": "TURN URLs (turn:host:3478?transport=udp, turn:host:3478?transport=tcp, "
            "turns:host:443, comma-separated) handed to every peer with a credential minted "
            "for it; needs turn_secret or turn_secret_file"
        },
    )
    turn_secret: str | None = field(
        default=None,
        repr=False,
        metadata={
            "help": "coturn's static-auth-secret (use-auth-secret): mints the TURN "
            "credentials; prefer turn_secret_file"
        },
    )
    turn_secret_file: Path | None = field(
        default=None,
        metadata={"help": "file holding coturn's static-auth-secret (first line)"},
    )
    turn_check_seconds: float = field(
        default=3600.0,
        metadata={
            "help": "seconds a room's TURN credential for its readiness check stays valid "
            "after it connects (a session's credential lasts its join ticket's window)"
        },
    )
    turn_relay_networks: tuple[str, ...] = field(
        default=(),
        metadata={
            "help": "networks (CIDR, comma-separated) of the TURN servers' relay addresses: "
            "relay candidates there are allowed besides candidate_networks"
        },
    )
    database_busy_wait: float = field(
        default=2.0,
        metadata={
            "help": "seconds a request or a scheduler step waits for a database locked by "
            "another process before it gives up (HTTP 503 database-busy; the scheduler "
            "retries at its next poll)"
        },
    )
    database_startup_check: bool = field(
        default=True,
        metadata={
            "help": "check the SQLite file (PRAGMA quick_check) at start and refuse to "
            "serve a damaged one"
        },
    )
    event_queue_limit: int = field(
        default=1000,
        metadata={
            "help": "signalling events waiting for the database at most (joins, leaves, "
            "milestones, and one merged batch per room of media stats or readiness); when "
            "full, media stats are shed first, then readiness, never joins or leaves"
        },
    )
    stats_write_interval: float = field(
        default=1.0,
        metadata={
            "help": "seconds between two database writes of one room's media stats (or "
            "readiness) in a session; reports arriving in between are merged"
        },
    )
    fault_log_interval: float = field(
        default=60.0,
        metadata={
            "help": "seconds between two log lines about the same database fault "
            "(a locked or damaged database fails every request the same way)"
        },
    )
    listen_backlog: int = field(
        default=4096, metadata={"help": "TCP listen backlog (rooms connect in bursts)"}
    )
    poll_interval: float = field(
        default=0.5, metadata={"help": "seconds between scheduler passes over the database"}
    )
    heartbeat_interval: float = field(
        default=5.0, metadata={"help": "seconds between client pings"}
    )
    heartbeat_timeout: float = field(
        default=15.0, metadata={"help": "silence after which a peer is dropped"}
    )
    grace_seconds: float = field(
        default=30.0, metadata={"help": "how long a peer whose link dropped stays in its sessions"}
    )
    mesh_cap: int = field(
        default=4,
        metadata={
            "help": "largest number of peers in a mesh session; with janus_urls, a session "
            "past it moves to an SFU"
        },
    )
    mesh_limit: int = field(
        default=2,
        metadata={
            "help": "with janus_urls, the largest session kept as a mesh: a larger one runs "
            "on the SFU (2: the break-even bench/sfu measures, two sites stay peer to peer)"
        },
    )
    guest_video: str = field(
        default="640x360@30",
        metadata={
            "help": "the size and frame rate guests' browsers are asked to send "
            "(WIDTHxHEIGHT@FPS): every site decodes each guest, in an SFU session too"
        },
    )
    janus_urls: tuple[str, ...] = field(
        default=(),
        metadata={
            "help": "the Janus SFU pool: WebSocket API URLs (ws://host:8188/, comma-separated); "
            "none: every session is a mesh"
        },
    )
    janus_admin_urls: tuple[str, ...] = field(
        default=(),
        metadata={
            "help": "the pool's admin API URLs (http://host:7088/admin), in janus_urls' "
            "order, for health checks; none: the WebSocket API's info request"
        },
    )
    janus_admin_secret: str | None = field(
        default=None, repr=False, metadata={"help": "the pool's admin_secret (janus.jcfg)"}
    )
    janus_api_secret: str | None = field(
        default=None, repr=False, metadata={"help": "the pool's api_secret (janus.jcfg)"}
    )
    janus_room_admin_key: str | None = field(
        default=None,
        repr=False,
        metadata={"help": "the VideoRoom plugin's admin_key (janus.plugin.videoroom.jcfg)"},
    )
    janus_capacity: int = field(
        default=20, metadata={"help": "sessions one Janus of the pool takes at most"}
    )
    sfu_cap: int = field(default=12, metadata={"help": "largest number of peers in an SFU session"})
    rate_per_second: float = field(
        default=50.0, metadata={"help": "sustained messages per second per connection"}
    )
    rate_burst: int = field(default=200, metadata={"help": "burst of messages per connection"})
    hello_timeout: float = field(
        default=5.0,
        metadata={"help": "seconds a new WebSocket has to send its hello before it is closed"},
    )
    unauthenticated_per_address: int = field(
        default=64,
        metadata={
            "help": "WebSockets from one address that may wait to say hello at once "
            "(more are refused with HTTP 503)"
        },
    )
    unauthenticated_total: int = field(
        default=1024,
        metadata={"help": "WebSockets that may wait to say hello at once, from all addresses"},
    )
    horizon_days: int = field(
        default=180, metadata={"help": "how far ahead recurring bookings get their sessions"}
    )
    no_show_seconds: int = field(
        default=600, metadata={"help": "a room not joined this long after the start is released"}
    )
    caldav_interval: float = field(
        default=60.0, metadata={"help": "seconds between CalDAV sync passes"}
    )
    log_level: str = field(default="INFO", metadata={"help": "logging level"})
    tls_cert: Path | None = field(
        default=None, metadata={"help": "PEM certificate chain: serve HTTPS (needs tls_key)"}
    )
    tls_key: Path | None = field(
        default=None, repr=False, metadata={"help": "PEM private key of the TLS certificate"}
    )
    trusted_proxies: tuple[str, ...] = field(
        default=(),
        metadata={
            "help": "reverse proxies (CIDR, comma-separated) whose X-Forwarded-* headers are believed"
        },
    )
    public_url: str | None = field(
        default=None,
        metadata={"help": "the service's address as people reach it, for links in email"},
    )
    smtp_host: str | None = field(
        default=None, metadata={"help": "SMTP server for email (none: mail stays queued)"}
    )
    smtp_port: int = field(default=25, metadata={"help": "SMTP port"})
    smtp_starttls: bool = field(default=False, metadata={"help": "use STARTTLS with SMTP"})
    smtp_username: str | None = field(default=None, metadata={"help": "SMTP login"})
    smtp_password: str | None = field(default=None, repr=False, metadata={"help": "SMTP password"})
    mail_from: str = field(
        default="telecentre@localhost", metadata={"help": "sender address of the email"}
    )
    alert_webhook_url: str | None = field(
        default=None,
        repr=False,  # chat webhooks carry their secret in the URL
        metadata={
            "help": "URL that receives a JSON POST when a room fails its readiness check "
            "before a session (and when it recovers)"
        },
    )
    alert_webhook_timeout: float = field(
        default=5.0, metadata={"help": "seconds one alert webhook attempt may take"}
    )
    alert_webhook_attempts: int = field(
        default=4, metadata={"help": "attempts to deliver an alert to the webhook"}
    )

    @property
    def allowed_candidate_networks(self) -> tuple[str, ...]:
        """The candidate address filter: the allowed networks and the TURN relay networks."""
        extra = [n for n in self.turn_relay_networks if n not in self.candidate_networks]
        return (*self.candidate_networks, *extra)

    def guest_camera(self) -> tuple[int, int, int]:
        """``guest_video`` read: (width, height, fps); ``ValueError`` when malformed."""
        size, _, fps = self.guest_video.partition("@")
        width, _, height = size.partition("x")
        try:
            values = (int(width), int(height), int(fps or "30"))
        except ValueError:
            raise ValueError(f"guest_video: {self.guest_video!r} is not WIDTHxHEIGHT@FPS") from None
        if not (16 <= values[0] <= 3840 and 16 <= values[1] <= 2160 and 1 <= values[2] <= 60):
            raise ValueError(f"guest_video: {self.guest_video!r} is out of range")
        return values

    def janus_servers(self) -> tuple[JanusServer, ...]:
        """The Janus pool, named by host and port; ``ValueError`` when the admin URLs
        do not pair with the API URLs."""
        if self.janus_admin_urls and len(self.janus_admin_urls) != len(self.janus_urls):
            raise ValueError("janus_admin_urls: give one per janus_urls entry, in its order")
        servers = []
        for i, url in enumerate(self.janus_urls):
            parts = urlsplit(url)
            if parts.scheme not in ("ws", "wss") or not parts.hostname:
                raise ValueError(f"janus_urls: {url!r} is not a ws:// or wss:// URL")
            servers.append(
                JanusServer(
                    name=parts.netloc,
                    url=url,
                    admin_url=self.janus_admin_urls[i] if self.janus_admin_urls else None,
                    admin_secret=self.janus_admin_secret,
                    capacity=self.janus_capacity,
                    api_secret=self.janus_api_secret,
                    room_admin_key=self.janus_room_admin_key,
                )
            )
        return tuple(servers)

    def read_turn_secret(self) -> str | None:
        """The TURN shared secret: ``turn_secret``, else the first line of
        ``turn_secret_file`` (an unreadable or empty file is an error that names the
        file, never the secret)."""
        if self.turn_secret:
            return self.turn_secret
        if self.turn_secret_file is None:
            return None
        try:
            lines = self.turn_secret_file.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(
                f"turn_secret_file {self.turn_secret_file}: cannot read it ({type(exc).__name__})"
            ) from None
        secret = lines[0].strip() if lines else ""
        if not secret:
            raise ValueError(f"turn_secret_file {self.turn_secret_file}: empty")
        return secret

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'telecentre.sqlite3').resolve()}"

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: Any) -> Settings:
        """Defaults, then TELECENTRE_* variables, then explicit overrides (flags)."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is None:
                continue
            values[f.name] = _convert(f.name, raw, type(getattr(cls(), f.name)))
        settings = cls(**values)
        return replace(settings, **{k: v for k, v in overrides.items() if v is not None})


def _convert(name: str, raw: str, current: type) -> Any:
    try:
        if name in (
            "candidate_networks",
            "trusted_proxies",
            "stun_urls",
            "turn_urls",
            "turn_relay_networks",
            "janus_urls",
            "janus_admin_urls",
        ):
            return tuple(x.strip() for x in raw.split(",") if x.strip())
        if name in ("data_dir", "tls_cert", "tls_key", "turn_secret_file"):
            return Path(raw)
        if current is bool:
            return raw.lower() in ("1", "true", "yes", "on")
        if current is int:
            return int(raw)
        if current is float:
            return float(raw)
        return raw
    except ValueError:
        raise ValueError(f"{ENV_PREFIX}{name.upper()}: cannot read {raw!r}") from None
