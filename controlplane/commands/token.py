"""``controlplane token``: create, list and revoke API tokens (an admin's job, not the API's).

The secret is printed once, alone on stdout (``TOKEN=$(controlplane token create ...)``); the
store keeps only its SHA-256. The database comes from ``CONTROLPLANE_DATABASE_URL`` (or
``--database-url``) and is migrated to the current schema first.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from controlplane.core.config import ControlPlaneSettings
from controlplane.core.security import Role
from controlplane.store.database import Database
from controlplane.store.errors import DuplicateTokenName, UnknownTokenName
from controlplane.store.tokens import create_token, list_tokens, revoke_token

__all__ = ["app"]

app = typer.Typer(
    name="token",
    help="API tokens with roles viewer < operator < admin (only a hash is stored).",
    no_args_is_help=True,
    add_completion=False,
)

DatabaseUrlOption = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="SQLAlchemy URL of the store (default: CONTROLPLANE_DATABASE_URL, else the "
        "embedded SQLite file).",
        show_default=False,
    ),
]


def _console() -> Console:
    return Console(highlight=False, soft_wrap=True)


def _err_console() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def _open_store(database_url: str | None) -> Database:
    try:
        settings = ControlPlaneSettings()
        if database_url is not None:
            settings = settings.with_values(store={"database_url": database_url})
    except ValidationError as exc:
        _err_console().print(f"[red]invalid settings:[/red] {exc}")
        raise typer.Exit(2) from exc
    database = Database.from_settings(settings)
    database.migrate()
    return database


@app.command("create")
def create(
    name: Annotated[str, typer.Option("--name", help="Who or what uses the token.")],
    role: Annotated[Role, typer.Option("--role", help="viewer, operator or admin.")],
    database_url: DatabaseUrlOption = None,
) -> None:
    """Create a token and print it once (stdout); store only its hash."""
    if not name.strip() or len(name) > 100:
        _err_console().print("[red]--name must be 1 to 100 characters[/red]")
        raise typer.Exit(2)
    database = _open_store(database_url)
    try:
        with database.writer() as session:
            record, secret = create_token(session, name=name, role=role, at=datetime.now(UTC))
    except DuplicateTokenName as exc:
        _err_console().print(f"[red]{exc}[/red] (revoke it first, or pick another name)")
        raise typer.Exit(1) from exc
    finally:
        database.dispose()
    _err_console().print(
        f"token {record.name!r} ({record.role.value}) created; it is shown only this once:"
    )
    typer.echo(secret)


@app.command("list")
def list_(
    database_url: DatabaseUrlOption = None,
    include_revoked: Annotated[bool, typer.Option("--all", help="Show revoked ones too.")] = False,
) -> None:
    """List tokens (names and roles; secrets are never stored)."""
    database = _open_store(database_url)
    try:
        with database.reader() as session:
            tokens = list_tokens(session, include_revoked=include_revoked)
    finally:
        database.dispose()
    table = Table(title="API tokens")
    for column in ("name", "role", "created", "revoked"):
        table.add_column(column)
    for token in tokens:
        table.add_row(
            token.name,
            token.role.value,
            token.created_at.isoformat(timespec="seconds"),
            token.revoked_at.isoformat(timespec="seconds") if token.revoked_at else "-",
        )
    _console().print(table)


@app.command("revoke")
def revoke(
    name: Annotated[str, typer.Option("--name", help="The token to revoke.")],
    database_url: DatabaseUrlOption = None,
) -> None:
    """Revoke the active token with this name; it stops working at once."""
    database = _open_store(database_url)
    try:
        with database.writer() as session:
            revoke_token(session, name=name, at=datetime.now(UTC))
    except UnknownTokenName as exc:
        _err_console().print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    finally:
        database.dispose()
    _console().print(f"token {name!r} revoked")
