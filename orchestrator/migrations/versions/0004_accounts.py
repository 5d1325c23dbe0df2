"""Accounts, web sessions, login throttling, approvals, guests, panel tokens, outbox.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _instant(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _fk(table: str, column: str, target: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{target}.id"], name=op.f(f"fk_{table}_{column}_{target}")
    )


def upgrade() -> None:
    op.create_table(
        "app_user",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("email", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("password_hash", sa.String(), nullable=False),
        sa.Column("role", sa.String(), nullable=False),
        sa.Column("centre_id", sa.String(), nullable=True),
        sa.Column("locale", sa.String(), nullable=True),
        sa.Column("timezone", sa.String(), nullable=True),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        _instant("created_at"),
        _fk("app_user", "centre_id", "centre"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_app_user")),
        sa.UniqueConstraint("email", name=op.f("uq_app_user_email")),
    )
    op.create_table(
        "web_session",
        sa.Column("token_hash", sa.String(), nullable=False),
        sa.Column("user_id", sa.String(), nullable=False),
        _instant("created_at"),
        _instant("expires_at"),
        _fk("web_session", "user_id", "app_user"),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_web_session")),
    )
    op.create_index(op.f("ix_web_session_user_id"), "web_session", ["user_id"], unique=False)
    op.create_table(
        "login_throttle",
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        _instant("first_failure_at"),
        _instant("locked_until", nullable=True),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_login_throttle")),
    )
    op.create_table(
        "approval",
        sa.Column("booking_id", sa.String(), nullable=False),
        sa.Column("room_id", sa.String(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        _instant("requested_at"),
        _instant("decided_at", nullable=True),
        sa.Column("decided_by", sa.String(), nullable=True),
        sa.Column("note", sa.String(), nullable=True),
        _fk("approval", "booking_id", "booking"),
        _fk("approval", "room_id", "room"),
        sa.ForeignKeyConstraint(
            ["decided_by"], ["app_user.id"], name=op.f("fk_approval_decided_by_app_user")
        ),
        sa.PrimaryKeyConstraint("booking_id", "room_id", name=op.f("pk_approval")),
    )
    op.create_index(op.f("ix_approval_room_id"), "approval", ["room_id"], unique=False)
    op.create_table(
        "guest",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("booking_id", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("email", sa.String(), nullable=True),
        sa.Column("token_hash", sa.String(), nullable=False),
        _instant("revoked_at", nullable=True),
        _instant("created_at"),
        _fk("guest", "booking_id", "booking"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_guest")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_guest_token_hash")),
    )
    op.create_index(op.f("ix_guest_booking_id"), "guest", ["booking_id"], unique=False)
    op.create_table(
        "panel_token",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("token_hash", sa.String(), nullable=False),
        sa.Column("room_id", sa.String(), nullable=False),
        _instant("created_at"),
        _fk("panel_token", "room_id", "room"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_panel_token")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_panel_token_token_hash")),
    )
    op.create_index(op.f("ix_panel_token_room_id"), "panel_token", ["room_id"], unique=False)
    op.create_table(
        "outbox_mail",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("recipient", sa.String(), nullable=False),
        sa.Column("subject", sa.String(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("ics", sa.Text(), nullable=True),
        sa.Column("ics_method", sa.String(), nullable=True),
        sa.Column("kind", sa.String(), nullable=False),
        _instant("created_at"),
        _instant("sent_at", nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _instant("next_attempt_at"),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox_mail")),
    )
    with op.batch_alter_table("room") as batch:
        batch.add_column(
            sa.Column("requires_approval", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("room") as batch:
        batch.alter_column("requires_approval", server_default=None)
    with op.batch_alter_table("booking") as batch:
        batch.add_column(sa.Column("owner_id", sa.String(), nullable=True))
        batch.add_column(sa.Column("owner_centre_id", sa.String(), nullable=True))
        batch.create_foreign_key(
            op.f("fk_booking_owner_id_app_user"), "app_user", ["owner_id"], ["id"]
        )
        batch.create_foreign_key(
            op.f("fk_booking_owner_centre_id_centre"), "centre", ["owner_centre_id"], ["id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("booking") as batch:
        batch.drop_constraint(op.f("fk_booking_owner_centre_id_centre"), type_="foreignkey")
        batch.drop_constraint(op.f("fk_booking_owner_id_app_user"), type_="foreignkey")
        batch.drop_column("owner_centre_id")
        batch.drop_column("owner_id")
    with op.batch_alter_table("room") as batch:
        batch.drop_column("requires_approval")
    op.drop_table("outbox_mail")
    op.drop_index(op.f("ix_panel_token_room_id"), table_name="panel_token")
    op.drop_table("panel_token")
    op.drop_index(op.f("ix_guest_booking_id"), table_name="guest")
    op.drop_table("guest")
    op.drop_index(op.f("ix_approval_room_id"), table_name="approval")
    op.drop_table("approval")
    op.drop_table("login_throttle")
    op.drop_index(op.f("ix_web_session_user_id"), table_name="web_session")
    op.drop_table("web_session")
    op.drop_table("app_user")
