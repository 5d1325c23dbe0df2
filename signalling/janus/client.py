"""A Janus API client over the WebSocket transport (subprotocol ``janus-protocol``).

Rules (the Janus API, https://janus.conf.meetecho.com/docs/rest.html, as Janus 1.1 speaks
it on its WebSocket transport):

- One WebSocket carries one Janus session (``create``), kept alive by a ``keepalive``
  every ``keepalive`` seconds (Janus drops a session after 60 s of silence). The
  connection's ``closed`` event is set the moment the socket ends or a keepalive gets
  no ``ack`` in time: a Janus killed with SIGKILL closes its sockets at once (the
  kernel does), so the death is seen well within a second.
- Every request carries a fresh ``transaction``; the answer with that transaction is
  ``success`` (synchronous requests), ``ack`` (accepted, an asynchronous plugin
  request's ``event`` with the same transaction follows; a trickle is answered by the
  ``ack`` alone) or ``error`` (``error.code``, ``error.reason``).
- A plugin reports its own refusals inside ``plugindata.data`` (``error_code`` and
  ``error``, VideoRoom's ``{"videoroom": "event", "error_code": 426, ...}``): these are
  ``JanusError`` too.
- Messages with no pending transaction are events for a handle (``sender``): plugin
  events and the core's ``webrtcup``, ``media``, ``slowlink``, ``hangup``, ``detached``.
  They reach the handle's ``on_event(data, jsep)``: a plugin event as
  ``(plugindata.data, jsep or None)`` (its ``data`` names the plugin, e.g. the key
  ``"videoroom"``); a core event as ``(message, None)`` where ``message`` is Janus' own
  object without ``session_id`` and ``sender`` (its key ``"janus"`` names the event).
- Bounded: a frame above ``MAX_FRAME`` bytes ends the connection (aiohttp refuses it);
  a frame that is not a JSON object, or lacks what its kind needs, is dropped and
  counted (``garbage``); at most ``MAX_PENDING`` requests wait at once; every request
  has a timeout (``JanusError`` with ``TIMEOUT``). When the connection ends, every
  pending request fails at once with ``JanusGone``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import aiohttp

from common.tasks import TaskSet

log = logging.getLogger(__name__)

SUBPROTOCOL: Final = "janus-protocol"
VIDEOROOM: Final = "janus.plugin.videoroom"
MAX_FRAME: Final = 1 << 20  # an SDP with many candidates is a few KiB; 1 MiB is ample
MAX_PENDING: Final = 256
MAX_HANDLES: Final = 4096

# Our own codes for what Janus did not say (Janus' own codes are 4xx-5xx, plugins' too).
TIMEOUT: Final = 1  # no answer in time
GONE: Final = 2  # the connection ended
PROTOCOL: Final = 3  # an answer we cannot read (a success without its data)
BUSY: Final = 4  # too many requests waiting

EventCallback = Callable[[dict[str, Any], dict[str, Any] | None], None]


class JanusError(Exception):
    """Janus (or its plugin) refused a request, or it got no answer in time."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"janus error {code}: {reason}")
        self.code = code
        self.reason = reason


class JanusGone(JanusError):
    """The connection to Janus ended: every request waiting on it fails with this."""

    def __init__(self, reason: str = "connection to janus lost") -> None:
        super().__init__(GONE, reason)


# --- pure helpers ---------------------------------------------------------------------


def new_transaction() -> str:
    return secrets.token_hex(8)


def parse_frame(text: str) -> dict[str, Any] | None:
    """A Janus message, or None for anything that is not a JSON object with a string
    ``janus`` field."""
    try:
        message = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if not isinstance(message, dict) or not isinstance(message.get("janus"), str):
        return None
    return message


def error_of(message: dict[str, Any]) -> JanusError:
    """The ``JanusError`` an ``error`` message stands for."""
    error = message.get("error")
    if isinstance(error, dict):
        code = error.get("code")
        reason = error.get("reason")
        return JanusError(
            code if isinstance(code, int) else PROTOCOL,
            reason if isinstance(reason, str) else "janus error",
        )
    return JanusError(PROTOCOL, "janus error without details")


def plugin_data(message: dict[str, Any]) -> dict[str, Any] | None:
    """``plugindata.data`` of a message, when it has one that is an object."""
    plugindata = message.get("plugindata")
    if not isinstance(plugindata, dict):
        return None
    data = plugindata.get("data")
    return data if isinstance(data, dict) else None


def plugin_error(data: dict[str, Any]) -> JanusError | None:
    """A plugin's refusal inside its data (``error_code`` / ``error``), if any."""
    if "error_code" not in data and "error" not in data:
        return None
    code = data.get("error_code")
    reason = data.get("error")
    return JanusError(
        code if isinstance(code, int) else PROTOCOL,
        reason if isinstance(reason, str) else "plugin error",
    )


def jsep_of(message: dict[str, Any]) -> dict[str, Any] | None:
    jsep = message.get("jsep")
    return jsep if isinstance(jsep, dict) else None


def core_event(message: dict[str, Any]) -> dict[str, Any]:
    """A core event as a handle's ``on_event`` gets it."""
    return {k: v for k, v in message.items() if k not in ("session_id", "sender")}


@dataclass
class _Pending:
    """A request waiting for its answer: done on one of ``ends`` (or ``error``)."""

    ends: frozenset[str]
    future: asyncio.Future[dict[str, Any]]
    acked: bool = field(default=False)


# --- the connection -------------------------------------------------------------------


class JanusConnection:
    """One WebSocket to Janus carrying one Janus session."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        ws: aiohttp.ClientWebSocketResponse,
        *,
        url: str,
        timeout: float,
        api_secret: str | None,
    ) -> None:
        self.url = url
        self.timeout = timeout
        self.closed = asyncio.Event()
        self.session_id = 0
        self.garbage = 0  # frames dropped as unreadable
        self._http = http
        self._ws = ws
        self._api_secret = api_secret
        self._pending: dict[str, _Pending] = {}
        self._handles: dict[int, PluginHandle] = {}
        self._tasks = TaskSet()

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        timeout: float = 5.0,
        keepalive: float = 10.0,
        api_secret: str | None = None,
    ) -> JanusConnection:
        """Open the WebSocket and create a Janus session; ``JanusError`` if either
        fails within ``timeout``."""
        http = aiohttp.ClientSession()
        try:
            # The handshake is bounded here: aiohttp's own timeouts would wait minutes
            # on a server that accepts the TCP connection and then says nothing.
            ws = await asyncio.wait_for(
                http.ws_connect(
                    url,
                    protocols=(SUBPROTOCOL,),
                    timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=timeout),
                    max_msg_size=MAX_FRAME,
                    autoping=True,
                    heartbeat=None,
                ),
                timeout,
            )
        except (aiohttp.ClientError, OSError, TimeoutError) as error:
            await http.close()
            raise JanusGone(f"cannot reach janus at {url}: {error}") from error
        connection = cls(http, ws, url=url, timeout=timeout, api_secret=api_secret)
        connection._tasks.spawn(connection._read(), name="janus-read")
        try:
            answer = await connection._send({"janus": "create"}, ends=frozenset({"success"}))
            connection.session_id = _data_id(answer)
        except BaseException:
            await connection.close()
            raise
        connection._tasks.spawn(connection._keep_alive(keepalive), name="janus-keepalive")
        return connection

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def close(self) -> None:
        """Destroy the Janus session (best effort) and close the socket."""
        if not self.closed.is_set() and self.session_id:
            with contextlib.suppress(JanusError):
                await self._send(
                    {"janus": "destroy", "session_id": self.session_id},
                    ends=frozenset({"success"}),
                    timeout=min(self.timeout, 1.0),
                )
        self._lost("connection closed")
        await self._ws.close()
        await self._http.close()
        await self._tasks.close()

    async def info(self) -> dict[str, Any]:
        """The server's ``server_info`` (a health check over this connection)."""
        return await self._send({"janus": "info"}, ends=frozenset({"server_info"}))

    async def attach(
        self, plugin: str = VIDEOROOM, on_event: EventCallback | None = None
    ) -> PluginHandle:
        if len(self._handles) >= MAX_HANDLES:
            raise JanusError(BUSY, "too many handles on this connection")
        answer = await self._send(
            {"janus": "attach", "plugin": plugin, "session_id": self.session_id},
            ends=frozenset({"success"}),
        )
        handle = PluginHandle(self, _data_id(answer), plugin, on_event)
        self._handles[handle.handle_id] = handle
        return handle

    # --- requests -----------------------------------------------------------------

    async def _send(
        self,
        message: dict[str, Any],
        *,
        ends: frozenset[str],
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Send ``message`` with a fresh transaction; the answer whose kind is in
        ``ends``. An ``error`` answer raises ``JanusError``."""
        if self.closed.is_set():
            raise JanusGone()
        if len(self._pending) >= MAX_PENDING:
            raise JanusError(BUSY, "too many requests waiting for janus")
        transaction = new_transaction()
        message = {**message, "transaction": transaction}
        if self._api_secret is not None:
            message["apisecret"] = self._api_secret
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[transaction] = _Pending(ends, future)
        try:
            try:
                await self._ws.send_str(json.dumps(message))
            except (ConnectionError, RuntimeError, aiohttp.ClientError) as error:
                self._lost(f"send failed: {error}")
                raise JanusGone() from error
            try:
                return await asyncio.wait_for(
                    asyncio.shield(future), self.timeout if timeout is None else timeout
                )
            except TimeoutError:
                raise JanusError(
                    TIMEOUT, f"no answer to {message['janus']} within the timeout"
                ) from None
        finally:
            self._pending.pop(transaction, None)
            if not future.done():
                future.cancel()

    # --- reading --------------------------------------------------------------------

    async def _read(self) -> None:
        try:
            async for frame in self._ws:
                if frame.type == aiohttp.WSMsgType.TEXT:
                    message = parse_frame(frame.data)
                    if message is None:
                        self._garbage("not a janus message")
                    else:
                        self._dispatch(message)
                elif frame.type == aiohttp.WSMsgType.BINARY:
                    self._garbage("binary frame")
                else:  # ERROR (a frame too large, a broken socket), CLOSE
                    break
        except (aiohttp.ClientError, ConnectionError) as error:
            log.info("janus connection %s ended: %s", self.url, error)
        finally:
            self._lost("connection to janus lost")

    def _garbage(self, why: str) -> None:
        self.garbage += 1
        if self.garbage <= 3 or self.garbage % 1000 == 0:
            log.warning("janus %s sent %s (%d dropped so far)", self.url, why, self.garbage)

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message["janus"]
        transaction = message.get("transaction")
        pending = self._pending.get(transaction) if isinstance(transaction, str) else None
        if pending is not None and not pending.future.done():
            if kind == "error":
                pending.future.set_exception(error_of(message))
                return
            if kind in pending.ends:
                pending.future.set_result(message)
                return
            if kind == "ack":
                pending.acked = True
                return
        if kind == "timeout":  # Janus dropped our session
            self._lost("janus timed the session out")
            return
        sender = message.get("sender")
        handle = self._handles.get(sender) if isinstance(sender, int) else None
        if handle is None:
            if kind not in ("ack", "success"):  # late answers of requests that timed out
                log.debug("janus %s: event for no handle: %s", self.url, kind)
            return
        if kind == "detached":
            self._handles.pop(handle.handle_id, None)
        handle._event(message)

    def _forget(self, handle_id: int) -> None:
        self._handles.pop(handle_id, None)

    def _lost(self, reason: str) -> None:
        """The connection is over: fail every waiting request at once."""
        if self.closed.is_set():
            return
        self.closed.set()
        for pending in self._pending.values():
            if not pending.future.done():
                pending.future.set_exception(JanusGone(reason))
        if not self._ws.closed:
            self._tasks.spawn(self._ws.close(), name="janus-close")

    async def _keep_alive(self, interval: float) -> None:
        while not self.closed.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.closed.wait(), interval)
                return
            try:
                await self._send(
                    {"janus": "keepalive", "session_id": self.session_id},
                    ends=frozenset({"ack"}),
                )
            except JanusError as error:
                log.warning("janus %s: keepalive failed: %s", self.url, error.reason)
                self._lost(f"keepalive failed: {error.reason}")
                return


def _data_id(answer: dict[str, Any]) -> int:
    data = answer.get("data")
    ident = data.get("id") if isinstance(data, dict) else None
    if not isinstance(ident, int):
        raise JanusError(PROTOCOL, f"janus answered {answer.get('janus')} without an id")
    return ident


# --- a plugin handle ------------------------------------------------------------------


class PluginHandle:
    """One handle attached to a plugin on a connection's session."""

    def __init__(
        self,
        connection: JanusConnection,
        handle_id: int,
        plugin: str,
        on_event: EventCallback | None,
    ) -> None:
        self.connection = connection
        self.handle_id = handle_id
        self.plugin = plugin
        self.on_event = on_event

    def _envelope(self, kind: str) -> dict[str, Any]:
        return {
            "janus": kind,
            "session_id": self.connection.session_id,
            "handle_id": self.handle_id,
        }

    async def request(self, body: dict[str, Any]) -> dict[str, Any]:
        """A synchronous plugin request (``create``, ``destroy``, ``exists``,
        ``listparticipants``...): its ``plugindata.data``."""
        answer = await self.connection._send(
            {**self._envelope("message"), "body": body}, ends=frozenset({"success"})
        )
        data = plugin_data(answer)
        if data is None:
            raise JanusError(PROTOCOL, "plugin answer without data")
        refused = plugin_error(data)
        if refused is not None:
            raise refused
        return data

    async def message(
        self,
        body: dict[str, Any],
        jsep: dict[str, Any] | None = None,
        timeout: float = 10.0,
    ) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """An asynchronous plugin request: the plugin's event for it, after the
        ``ack``, as ``(data, jsep)``."""
        message = {**self._envelope("message"), "body": body}
        if jsep is not None:
            message["jsep"] = jsep
        # A plugin may also answer synchronously (a request it refuses at once).
        answer = await self.connection._send(
            message, ends=frozenset({"event", "success"}), timeout=timeout
        )
        data = plugin_data(answer)
        if data is None:
            raise JanusError(PROTOCOL, "plugin event without data")
        refused = plugin_error(data)
        if refused is not None:
            raise refused
        return data, jsep_of(answer)

    async def trickle(self, candidate: dict[str, Any] | None) -> None:
        """Send one trickled candidate (``candidate``, ``sdpMid``,
        ``sdpMLineIndex``), or None once gathering is complete."""
        body: dict[str, Any] = {"completed": True} if candidate is None else candidate
        await self.connection._send(
            {**self._envelope("trickle"), "candidate": body}, ends=frozenset({"ack"})
        )

    async def detach(self) -> None:
        """Detach from the plugin (Janus hangs up the handle's PeerConnection)."""
        try:
            await self.connection._send(self._envelope("detach"), ends=frozenset({"success"}))
        finally:
            self.connection._forget(self.handle_id)

    def _event(self, message: dict[str, Any]) -> None:
        if self.on_event is None:
            return
        if message["janus"] == "event":
            data = plugin_data(message)
            if data is None:
                return
            event, jsep = data, jsep_of(message)
        else:
            event, jsep = core_event(message), None
        try:
            self.on_event(event, jsep)
        except Exception:
            log.exception("janus handle %d: on_event failed", self.handle_id)
