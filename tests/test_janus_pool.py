"""The Janus pool: the placement rule (pure), and health against two real Janus
servers (tests/janus_support.py): a kill -9 is seen within 2 s and placement avoids
the dead server; a restarted one is seen up again and used again."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from signalling.janus.client import JanusGone
from signalling.janus.pool import JanusPool, JanusServer, choose_server
from tests.janus_support import JanusProcess, running_janus

A = JanusServer("a", "ws://a", capacity=2)
B = JanusServer("b", "ws://b", capacity=2)
C = JanusServer("c", "ws://c", capacity=1)


def test_the_least_loaded_healthy_server_with_room_is_chosen() -> None:
    servers = [B, A, C]
    assert choose_server(servers, {"a", "b", "c"}, {}) == A  # a tie goes to the first name
    assert choose_server(servers, {"a", "b", "c"}, {"a": 1}) == B
    assert choose_server(servers, {"a", "b", "c"}, {"a": 1, "b": 1}) == C
    assert choose_server(servers, {"b", "c"}, {}) == B  # a is not healthy
    assert choose_server(servers, {"a", "b", "c"}, {}, avoid={"a"}) == B
    # Full servers are skipped; none left gives None.
    assert choose_server(servers, {"a", "b", "c"}, {"a": 2, "b": 2, "c": 0}) == C
    assert choose_server(servers, {"a", "b", "c"}, {"a": 2, "b": 2, "c": 1}) is None
    assert choose_server(servers, set(), {}) is None
    assert choose_server([], {"a"}, {}) is None


@pytest.fixture
def two_janus(tmp_path: Path) -> Iterator[tuple[JanusProcess, JanusProcess]]:
    with running_janus(tmp_path / "j1") as first, running_janus(tmp_path / "j2") as second:
        yield first, second


def server(name: str, janus: JanusProcess, admin: bool) -> JanusServer:
    return JanusServer(
        name,
        janus.url,
        admin_url=janus.admin_url if admin else None,
        admin_secret=janus.config.admin_secret if admin else None,
        capacity=5,
        api_secret=janus.config.api_secret,
        room_admin_key=janus.config.admin_key,
    )


@pytest.mark.parametrize("admin", [True, False], ids=["admin-api", "janus-api"])
async def test_a_killed_janus_is_down_within_two_seconds_and_comes_back(
    two_janus: tuple[JanusProcess, JanusProcess], admin: bool
) -> None:
    first, second = two_janus
    assert first.url != second.url and first.config.rtp_range != second.config.rtp_range
    pool = JanusPool(
        [server("j1", first, admin), server("j2", second, admin)],
        check_interval=0.5,
        timeout=1.0,
    )
    downs: asyncio.Queue[str] = asyncio.Queue()
    ups: asyncio.Queue[str] = asyncio.Queue()
    pool.on_down.append(lambda s: downs.put_nowait(s.name))
    pool.on_up.append(lambda s: ups.put_nowait(s.name))
    await pool.start()
    try:
        assert pool.healthy() == {"j1", "j2"}
        assert {ups.get_nowait(), ups.get_nowait()} == {"j1", "j2"}
        placed = pool.place("s1")
        assert placed is not None and placed.name == "j1"
        assert pool.place("s2").name == "j2"  # type: ignore[union-attr]
        connection = await pool.connection("j1")
        assert (await connection.info())["janus"] == "server_info"

        loop = asyncio.get_running_loop()
        killed_at = loop.time()
        first.kill9()
        assert await asyncio.wait_for(downs.get(), 2.0) == "j1"
        assert loop.time() - killed_at < 2.0
        assert connection.closed.is_set()
        with pytest.raises(JanusGone):
            await connection.info()
        assert pool.healthy() == {"j2"}
        # A session moved off j1 (and a new one) go to j2.
        assert pool.place("s1", avoid={"j1"}).name == "j2"  # type: ignore[union-attr]
        assert pool.place("s3").name == "j2"  # type: ignore[union-attr]
        with pytest.raises(JanusGone):
            await pool.connection("j1")

        await asyncio.to_thread(first.restart)
        assert await asyncio.wait_for(ups.get(), 5.0) == "j1"
        assert pool.healthy() == {"j1", "j2"}
        again = await pool.connection("j1")
        assert again is not connection and not again.closed.is_set()
        assert pool.place("s4").name == "j1"  # type: ignore[union-attr]
        pool.release("s1")
        pool.release("s3")
        assert pool.load() == {"j1": 1, "j2": 1}
    finally:
        await pool.close()
