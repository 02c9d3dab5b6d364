"""The ``controlplane`` command line.

Each sub-command lives in its own module of :mod:`controlplane.commands` and is imported only
when it runs (or when ``--help`` lists it): ``controlplane slo report`` does not pay for the web
server, the scheduler or the local stack, which ``serve`` and ``stack`` need.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import typer
from typer.core import TyperGroup

if TYPE_CHECKING:  # Typer ships its own copy of click; only its type is named here.
    from typer._click.core import Command, Context

#: Sub-command name → (module, attribute): a Typer application, or one command function.
COMMANDS: dict[str, tuple[str, str]] = {
    "drill": ("controlplane.commands.drill", "app"),
    "serve": ("controlplane.commands.serve", "serve"),
    "slo": ("controlplane.commands.slo", "app"),
    "stack": ("controlplane.commands.stack", "app"),
    "token": ("controlplane.commands.token", "app"),
}


def _load(name: str) -> Command:
    module, attribute = COMMANDS[name]
    target: typer.Typer | Callable[..., Any] = getattr(importlib.import_module(module), attribute)
    if not isinstance(target, typer.Typer):
        single = typer.Typer(add_completion=False)
        single.command(name)(target)
        target = single
    command = typer.main.get_command(target)
    command.name = name
    return command


class _LazyCommands(TyperGroup):
    """The root group: sub-commands are found in :data:`COMMANDS` and loaded on first use."""

    def list_commands(self, ctx: Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMANDS})

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        if cmd_name in COMMANDS:
            return _load(cmd_name)
        return super().get_command(ctx, cmd_name)


app = typer.Typer(
    cls=_LazyCommands,
    help="Inventory SLO control plane: SLOs, error budgets, targets and actions "
    "for the inventory API.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def _root() -> None:
    """Inventory SLO control plane: SLOs, error budgets, targets and actions for the inventory
    API."""


def main() -> None:
    app()


if __name__ == "__main__":
    main()
