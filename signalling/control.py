"""Room control: commands from a room's touch panel to its agent, and the room's state.

The web layer calls ``Hub.control`` (which sends a ``control`` message to the
room's connection and waits for its ``control-result``) and ``Hub.room_state``
(the latest ``room-state`` the room reported). This module keeps the requests in
flight and the reported states; the hub owns the connections.

Rules (docs/protocol.md, "Room control"):

- A ``control-result`` settles the request it names only if it comes from the
  room the request was sent to; any other is ignored (a room cannot answer for
  another, a late answer finds nothing).
- A room that goes offline fails its requests in flight with ``room-offline``
  at once, and forgets its state: ``room_state`` is None while a room is offline.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass

from signalling import protocol as p

log = logging.getLogger(__name__)

RoomStateListener = Callable[[str, p.RoomControlState | None], None]
"""Called with (room id, state) on every reported change; state None: the room went offline."""


@dataclass(slots=True)
class _Pending:
    room_id: str
    future: asyncio.Future[p.ControlResult]


class RoomControls:
    """Requests in flight per room and the latest state each online room reported."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self._pending: dict[str, _Pending] = {}
        self._states: dict[str, p.RoomControlState] = {}
        self._listeners: list[RoomStateListener] = []

    def state(self, room_id: str) -> p.RoomControlState | None:
        return self._states.get(room_id)

    def add_listener(self, listener: RoomStateListener) -> Callable[[], None]:
        self._listeners.append(listener)

        def remove() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return remove

    def open(self, room_id: str) -> tuple[str, asyncio.Future[p.ControlResult]]:
        """A new request id for ``room_id`` and the future its result will settle."""
        request_id = f"rc{next(self._ids)}"
        future: asyncio.Future[p.ControlResult] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = _Pending(room_id, future)
        return request_id, future

    def close(self, request_id: str) -> None:
        self._pending.pop(request_id, None)

    def result(self, room_id: str, result: p.ControlResult) -> None:
        """A room answered; settle its request, or ignore an answer nobody waits for."""
        pending = self._pending.get(result.request_id)
        if pending is None or pending.room_id != room_id:
            log.info("ignored control-result %r from room %s", result.request_id[:64], room_id)
            return
        self.report(room_id, result.state)
        if not pending.future.done():
            pending.future.set_result(result)

    def report(self, room_id: str, state: p.RoomControlState) -> None:
        if self._states.get(room_id) == state:
            return
        self._states[room_id] = state
        self._notify(room_id, state)

    def offline(self, room_id: str) -> None:
        for pending in self._pending.values():
            if pending.room_id == room_id and not pending.future.done():
                pending.future.set_exception(
                    p.ProtocolError(p.ErrorCode.ROOM_OFFLINE, "the room went offline")
                )
        if self._states.pop(room_id, None) is not None:
            self._notify(room_id, None)

    def cancel_all(self) -> None:
        for pending in self._pending.values():
            pending.future.cancel()
        self._pending.clear()

    def _notify(self, room_id: str, state: p.RoomControlState | None) -> None:
        for listener in list(self._listeners):
            try:
                listener(room_id, state)
            except Exception:
                log.exception("a room-state listener failed")
