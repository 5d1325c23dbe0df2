"""``telecentre centre`` and ``telecentre room``: centres, rooms, their keys, booking
policies and panel links."""

from __future__ import annotations

import argparse
import json
from typing import Any

from common.turn import ICE_POLICIES
from orchestrator.centres import add_centre, add_room, rotate_room_key, set_room_policy
from orchestrator.sessions.panels import create_panel_token
from web.cli.base import data_opts, emit, run_db, settings_from


def cmd_centre_add(args: argparse.Namespace) -> None:
    centre = run_db(args, lambda s: add_centre(s, args.name, args.timezone))
    emit(args, {"id": centre.id, "name": centre.name, "timezone": centre.timezone}, centre.id)


def cmd_room_add(args: argparse.Namespace) -> None:
    room, key = run_db(args, lambda s: add_room(s, args.centre, args.name))
    emit(
        args,
        {"id": room.id, "name": room.name, "centre_id": room.centre_id, "key": key},
        f"room {room.id}\nkey  {key}\n(the key is shown only this once; give it to the room's agent)",
    )


def cmd_room_rotate(args: argparse.Namespace) -> None:
    key = run_db(args, lambda s: rotate_room_key(s, args.room_id))
    emit(
        args,
        {"room_id": args.room_id, "key": key},
        f"key  {key}\n(the old key stopped working; the key is shown only this once)",
    )


def cmd_room_set(args: argparse.Namespace) -> None:
    room = run_db(
        args,
        lambda s: set_room_policy(
            s,
            args.room_id,
            buffer_seconds=args.buffer,
            max_duration_seconds=args.max_duration,
            max_advance_days=args.max_advance_days,
            aliases=args.alias,
            ice_policy=args.ice_policy,
            small_uplink=args.small_uplink,
        ),
    )
    data = {
        "id": room.id,
        "buffer_seconds": room.buffer_seconds,
        "max_duration_seconds": room.max_duration_seconds,
        "max_advance_days": room.max_advance_days,
        "aliases": json.loads(room.aliases),
        "ice_policy": room.ice_policy,
        "small_uplink": room.small_uplink,
    }
    emit(args, data, "\n".join(f"{k}: {v}" for k, v in data.items()))


def cmd_room_panel_link(args: argparse.Namespace) -> None:
    settings = settings_from(args)
    token = run_db(args, lambda s: create_panel_token(s, args.room_id))
    base = settings.public_url or (
        f"{'https' if settings.tls_cert else 'http'}://{settings.host}:{settings.port}"
    )
    url = f"{base.rstrip('/')}/panel/{token}"
    emit(
        args,
        {"room_id": args.room_id, "url": url},
        f"{url}\n(shown only this once; open it on the room's tablet or touch panel)",
    )


def add_centre_parser(sub: Any) -> None:
    centre = sub.add_parser("centre", help="centres").add_subparsers(dest="action", required=True)
    c_add = centre.add_parser("add", help="declare a centre; prints its id")
    c_add.add_argument("name")
    c_add.add_argument("--timezone", required=True, help="IANA zone, e.g. Europe/Paris")
    data_opts(c_add)
    c_add.set_defaults(func=cmd_centre_add)


def add_room_parser(sub: Any) -> None:
    room = sub.add_parser("room", help="rooms").add_subparsers(dest="action", required=True)
    r_add = room.add_parser("add", help="declare a room; prints its id and key (once)")
    r_add.add_argument("--centre", required=True, help="centre id")
    r_add.add_argument("name")
    data_opts(r_add)
    r_add.set_defaults(func=cmd_room_add)
    r_set = room.add_parser(
        "set", help="a room's booking policy, aliases, ICE and topology policies"
    )
    r_set.add_argument("room_id")
    r_set.add_argument("--buffer", type=int, help="seconds kept free around each booking")
    r_set.add_argument("--max-duration", type=int, help="longest booking, seconds")
    r_set.add_argument("--max-advance-days", type=int, help="how far ahead it may be booked")
    r_set.add_argument(
        "--alias", action="append", help="another name calendars use for it (repeat)"
    )
    r_set.add_argument(
        "--ice-policy",
        choices=ICE_POLICIES,
        help="relay: the room uses only TURN relay candidates (its network forbids direct "
        "UDP or lets out only TCP 443); applies from the agent's next connection",
    )
    r_set.add_argument(
        "--small-uplink",
        action=argparse.BooleanOptionalAction,
        help="the room's uplink is small: its sessions always run on the SFU (when the "
        "deployment has one), where it uploads one stream whatever the number of sites",
    )
    data_opts(r_set)
    r_set.set_defaults(func=cmd_room_set)
    r_rot = room.add_parser("rotate-key", help="give a room a new key; the old one stops working")
    r_rot.add_argument("room_id")
    data_opts(r_rot)
    r_rot.set_defaults(func=cmd_room_rotate)

    r_panel = room.add_parser(
        "panel-link", help="a new URL for the room's tablet or touch panel (shown once)"
    )
    r_panel.add_argument("room_id")
    data_opts(r_panel)
    r_panel.set_defaults(func=cmd_room_panel_link)
