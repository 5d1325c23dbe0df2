"""The lab's delaying forwarder, for kernels without the netem qdisc (these machines').

Runs inside a router namespace (``python -m tests.netlab.delay``): the router's
iptables rules send each direction's forwarded packets to an NFQUEUE (1: uplink,
2: downlink); this process holds each packet's verdict back for the direction's delay
(plus a uniform jitter in +- jitter) and then accepts it, so the kernel forwards it
unchanged. Only the packet's id crosses into user space (copy mode "meta"), and the
order of each direction is kept (a packet never overtakes the one before it: jitter
without reordering, as on most real paths).

Pure standard library: netfilter's queue protocol spoken over a netlink socket.
Commands on stdin, one per line: ``set QUEUE DELAY_MS JITTER_MS`` (answered ``ok``),
``stats`` (answered ``stats QUEUE:PACKETS ...``), ``quit``; end of input also quits.
``ready`` is printed once both queues are bound.
"""

from __future__ import annotations

import heapq
import os
import random
import selectors
import socket
import struct
import sys
import time
from dataclasses import dataclass

NETLINK_NETFILTER = 12
SOL_NETLINK = 270
NETLINK_NO_ENOBUFS = 5
SO_RCVBUFFORCE = 33  # not in Python's socket module
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET, NFQNL_MSG_VERDICT, NFQNL_MSG_CONFIG = 0, 1, 2
NFQA_PACKET_HDR, NFQA_VERDICT_HDR = 1, 2
NFQA_CFG_CMD, NFQA_CFG_PARAMS, NFQA_CFG_QUEUE_MAXLEN = 1, 2, 3
NFQNL_CFG_CMD_BIND = 1
NFQNL_COPY_META = 1
NLM_F_REQUEST, NLM_F_ACK = 1, 4
NLMSG_ERROR = 2
NF_ACCEPT = 1
NLA_TYPE_MASK = 0x3FFF
QUEUE_MAXLEN = 8192
HEADER = struct.Struct("=IHHII")
# epoll waits in whole milliseconds, rounded up, and waking costs a little more: a
# packet released up to half a millisecond early is on time on average.
EARLY = 0.0005


def attribute(kind: int, data: bytes) -> bytes:
    size = 4 + len(data)
    return struct.pack("=HH", size, kind) + data + b"\0" * (-size % 4)


def message(msg: int, queue: int, attrs: bytes, flags: int = NLM_F_REQUEST, seq: int = 0) -> bytes:
    """A netfilter queue message for ``queue``: nlmsghdr, nfgenmsg, attributes."""
    body = struct.pack("=BB", socket.AF_UNSPEC, 0) + struct.pack("!H", queue) + attrs
    kind = (NFNL_SUBSYS_QUEUE << 8) | msg
    return HEADER.pack(HEADER.size + len(body), kind, flags, seq, 0) + body


def verdict(queue: int, packet_id: int) -> bytes:
    return message(
        NFQNL_MSG_VERDICT,
        queue,
        attribute(NFQA_VERDICT_HDR, struct.pack("!II", NF_ACCEPT, packet_id)),
    )


def packet_ids(data: bytes) -> list[tuple[int, int]]:
    """(queue, packet id) of each queued-packet message in one netlink read."""
    found = []
    offset = 0
    while offset + HEADER.size <= len(data):
        length, kind, _flags, _seq, _pid = HEADER.unpack_from(data, offset)
        if length < HEADER.size:
            break
        if kind == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
            (queue,) = struct.unpack_from("!H", data, offset + HEADER.size + 2)
            pos = offset + HEADER.size + 4
            end = offset + length
            while pos + 4 <= end:
                size, attr = struct.unpack_from("=HH", data, pos)
                if size < 4:
                    break
                if attr & NLA_TYPE_MASK == NFQA_PACKET_HDR:
                    found.append((queue, struct.unpack_from("!I", data, pos + 4)[0]))
                    break
                pos += size + (-size % 4)
        offset += length + (-length % 4)
    return found


def bind_queue(queue: int) -> socket.socket:
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 8 << 20)
    sock.setsockopt(SOL_NETLINK, NETLINK_NO_ENOBUFS, 1)
    sock.bind((0, 0))
    config = [
        attribute(NFQA_CFG_CMD, struct.pack("!BBH", NFQNL_CFG_CMD_BIND, 0, socket.AF_INET)),
        attribute(NFQA_CFG_PARAMS, struct.pack("!IB", 0, NFQNL_COPY_META)),
        attribute(NFQA_CFG_QUEUE_MAXLEN, struct.pack("!I", QUEUE_MAXLEN)),
    ]
    for seq, attrs in enumerate(config, start=1):
        sock.send(message(NFQNL_MSG_CONFIG, queue, attrs, NLM_F_REQUEST | NLM_F_ACK, seq))
        reply = sock.recv(65536)
        _length, kind, _flags, _seq, _pid = HEADER.unpack_from(reply)
        (error,) = struct.unpack_from("=i", reply, HEADER.size)
        if kind != NLMSG_ERROR or error != 0:
            raise OSError(-error, f"nfqueue {queue} config {seq}: {os.strerror(-error)}")
    sock.setblocking(False)
    return sock


@dataclass
class Direction:
    delay: float = 0.0
    jitter: float = 0.0
    last_release: float = 0.0
    packets: int = 0

    def release_at(self, now: float) -> float:
        """When a packet queued at ``now`` goes on: the delay, a uniform jitter, and
        never before the previous packet of this direction."""
        at = now + self.delay + random.uniform(-self.jitter, self.jitter)
        self.last_release = max(at, self.last_release)
        return self.last_release


def command(words: list[str], directions: dict[int, Direction]) -> bool:
    """Carry out one command line; False to quit."""
    if not words:
        return True
    if words[0] == "quit":
        return False
    if words[0] == "set":
        direction = directions[int(words[1])]
        direction.delay = float(words[2]) / 1000
        direction.jitter = float(words[3]) / 1000
        print("ok", flush=True)
    elif words[0] == "stats":
        counts = " ".join(f"{q}:{d.packets}" for q, d in directions.items())
        print(f"stats {counts}", flush=True)
    else:
        print(f"error unknown command {words[0]}", flush=True)
    return True


def serve(queues: tuple[int, ...] = (1, 2)) -> None:
    sockets = {queue: bind_queue(queue) for queue in queues}
    directions = {queue: Direction() for queue in queues}
    pending: list[tuple[float, int, int, int]] = []  # (release, seq, queue, packet id)
    order = 0
    selector = selectors.DefaultSelector()
    for queue, sock in sockets.items():
        selector.register(sock, selectors.EVENT_READ, queue)
    selector.register(sys.stdin.fileno(), selectors.EVENT_READ, None)
    commands = b""
    print("ready", flush=True)
    while True:
        timeout = None if not pending else max(0.0, pending[0][0] - EARLY - time.monotonic())
        for key, _ in selector.select(timeout):
            if key.data is None:
                data = os.read(sys.stdin.fileno(), 4096)
                if not data:
                    return
                commands += data
                while b"\n" in commands:
                    line, commands = commands.split(b"\n", 1)
                    if not command(line.decode().split(), directions):
                        return
                continue
            try:
                data = sockets[key.data].recv(1 << 20)
            except BlockingIOError:
                continue
            now = time.monotonic()
            for queue, packet_id in packet_ids(data):
                direction = directions[queue]
                direction.packets += 1
                order += 1
                heapq.heappush(pending, (direction.release_at(now), order, queue, packet_id))
        now = time.monotonic()
        while pending and pending[0][0] - EARLY <= now:
            _at, _order, queue, packet_id = heapq.heappop(pending)
            sockets[queue].send(verdict(queue, packet_id))


if __name__ == "__main__":
    serve()
