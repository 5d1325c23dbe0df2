"""``telecentre user`` and ``telecentre token``: people who log in, and admin API
tokens."""

from __future__ import annotations

import argparse
import secrets
import sys
from typing import Any

from orchestrator.db import DbSession
from orchestrator.models import User
from orchestrator.people import accounts, api_tokens
from web.cli.base import CliError, data_opts, emit, run_db


def _password_from_stdin() -> str:
    """The first line of standard input (a pipe or a prompt-less terminal read)."""
    line = sys.stdin.readline()
    password = line.rstrip("\r\n")
    if not password:
        raise CliError("weak-password", "no password on standard input")
    return password


def cmd_user_add(args: argparse.Namespace) -> None:
    generated = not args.password_stdin
    password = secrets.token_urlsafe(12) if generated else _password_from_stdin()
    user = run_db(
        args,
        lambda s: accounts.create_user(s, args.email, args.name, password, args.role, args.centre),
    )
    data: dict[str, Any] = {
        "id": user.id,
        "email": user.email,
        "name": user.name,
        "role": user.role,
        "centre_id": user.centre_id,
    }
    text = f"user {user.id} {user.email} ({user.role})"
    if generated:
        data["password"] = password
        text += f"\npassword  {password}\n(shown only this once; they can change it on /account)"
    emit(args, data, text)


def cmd_user_list(args: argparse.Namespace) -> None:
    users = run_db(args, accounts.list_users)
    items = [
        {
            "id": u.id,
            "email": u.email,
            "name": u.name,
            "role": u.role,
            "centre_id": u.centre_id,
            "locale": u.locale,
            "timezone": u.timezone,
            "disabled": u.disabled,
        }
        for u in users
    ]
    lines = [
        f"{u.email:<32} {u.role:<9} {u.centre_id or '-':<32} {u.name}"
        f"{'  (disabled)' if u.disabled else ''}"
        for u in users
    ]
    emit(args, {"users": items}, "\n".join(lines) or "(none)")


def cmd_user_set_password(args: argparse.Namespace) -> None:
    if not args.password_stdin:
        raise CliError("bad-request", "give the password on standard input (--password-stdin)")
    password = _password_from_stdin()

    def change(s: DbSession) -> User:
        user = accounts.user_by_email(s, args.email)
        accounts.set_password(s, user.id, password)
        return user

    user = run_db(args, change)
    emit(
        args,
        {"id": user.id, "email": user.email},
        f"password of {user.email} changed (their open logins ended)",
    )


def cmd_token_create(args: argparse.Namespace) -> None:
    token = run_db(args, lambda s: api_tokens.create_api_token(s, args.name))
    emit(
        args,
        {"token": token},
        f"{token}\n(shown only this once; send it as 'Authorization: Bearer ...')",
    )


def add_user_parser(sub: Any) -> None:
    user = sub.add_parser("user", help="people who log in").add_subparsers(
        dest="action", required=True
    )
    u_add = user.add_parser(
        "add",
        help="add a person; without --password-stdin a password is generated and printed once",
    )
    u_add.add_argument("email")
    u_add.add_argument("--name", required=True)
    u_add.add_argument("--role", required=True, choices=("admin", "staff", "organiser"))
    u_add.add_argument("--centre", help="centre id (staff and organisers belong to one)")
    u_add.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    data_opts(u_add)
    u_add.set_defaults(func=cmd_user_add)
    u_list = user.add_parser("list", help="everyone who may log in")
    data_opts(u_list)
    u_list.set_defaults(func=cmd_user_list)
    u_pw = user.add_parser("set-password", help="a new password; their open logins end")
    u_pw.add_argument("email")
    u_pw.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    data_opts(u_pw)
    u_pw.set_defaults(func=cmd_user_set_password)


def add_token_parser(sub: Any) -> None:
    token = sub.add_parser("token", help="admin API tokens").add_subparsers(
        dest="action", required=True
    )
    t_create = token.add_parser("create", help="create an admin bearer token (shown once)")
    t_create.add_argument("--name", default="admin")
    data_opts(t_create)
    t_create.set_defaults(func=cmd_token_create)
