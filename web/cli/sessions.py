"""``telecentre session show``: a session with its transitions, its rooms and their
readiness, as the API describes it."""

from __future__ import annotations

import argparse
from typing import Any

from orchestrator.sessions import readiness
from orchestrator.sessions.detail import session_detail
from web.api_json import session_detail_json
from web.cli.base import data_opts, emit, run_db


def cmd_session_show(args: argparse.Namespace) -> None:
    detail, ready = run_db(
        args,
        lambda s: (
            session_detail(s, args.session_id),
            readiness.for_session(s, args.session_id),
        ),
    )
    data = session_detail_json(detail, ready)
    lines = [f"{data['title']}  [{data['state']}]  {data['start']} -> {data['end']}"]
    lines += [f"  {t['seq']:>2} {t['state']:<10} {t['at']}" for t in data["transitions"]]
    for r in data["rooms"]:
        check = r.get("readiness")
        ready_text = (
            "not checked"
            if not check
            else "ready"
            if check["ok"]
            else "failing " + ",".join(check.get("failing", []))
        )
        lines.append(
            f"  {r['name']}: joined {r['joined_at']} first frame {r['first_frame_at']} "
            f"live {r['live_at']} left {r['left_at']} readiness {ready_text}"
        )
    emit(args, data, "\n".join(lines))


def add_session_parser(sub: Any) -> None:
    session = sub.add_parser("session", help="sessions").add_subparsers(
        dest="action", required=True
    )
    s_show = session.add_parser("show", help="a session with its transitions and rooms")
    s_show.add_argument("session_id")
    data_opts(s_show)
    s_show.set_defaults(func=cmd_session_show)
