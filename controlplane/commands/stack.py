"""``controlplane stack``: the real backends of the demo on loopback at their demo ports."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from controlplane.core.processes import BackendStartError, require_executable, run_checked
from controlplane.stack.backends import BOOTSTRAP_HINT, PROBE_ERRORS
from controlplane.stack.errors import StackError
from controlplane.stack.keycloak import (
    ADMIN_SECRET_FILE,
    DEPLOYED_CLIENTS,
    INVENTORY_REALM,
    SESSION_SECRET_FILE,
    deployable_realm,
    realm_json,
    secret_variable,
    write_deployment_secrets,
)
from controlplane.stack.patroni import PatroniMember
from controlplane.stack.runner import DEMO_PORTS, LocalStack
from controlplane.stack.settings import REPO_ROOT, StackSettings
from controlplane.stack.topology import format_lag

VERSION_ERRORS: tuple[type[Exception], ...] = (StackError, BackendStartError, *PROBE_ERRORS)

console = Console()
err_console = Console(stderr=True)

app = typer.Typer(
    name="stack",
    help="Run the real backends (PostgreSQL as a Patroni cluster on etcd, Redis, Prometheus, "
    "Alertmanager, Elasticsearch, Jaeger, Keycloak) on loopback at their demo ports.",
    no_args_is_help=True,
)
HomeOption = Annotated[
    Path,
    typer.Option(
        "--home",
        envvar="STACK_HOME",
        help="Folder for the stack's data, logs (logs/) and state file.",
    ),
]
DEFAULT_HOME = REPO_ROOT / ".stack"
#: How often a foreground stack checks that its processes still run (stopped from elsewhere).
WATCH_INTERVAL_S = 2.0


def _stack(home: Path, port_offset: int = 0, *, kubernetes: bool = False) -> LocalStack:
    try:
        return LocalStack.at(
            settings=StackSettings(), home=home, port_offset=port_offset, kubernetes=kubernetes
        )
    except StackError as exc:
        err_console.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(2) from exc


def _print_event(name: str, event: str) -> None:
    colour = {"healthy": "green", "stopped": "yellow"}.get(event, "cyan")
    console.print(f"  [{colour}]{event:>9}[/{colour}]  {name}")


def _status_table(stack: LocalStack) -> tuple[Table, bool]:
    table = Table(title=f"local stack ({stack.home})")
    for column in ("backend", "address", "pid", "state", "version"):
        table.add_column(column)
    all_healthy = True
    for row in stack.status():
        state = (
            "[green]healthy[/green]"
            if row.healthy
            else ("[yellow]running, not healthy[/yellow]" if row.running else "[red]stopped[/red]")
        )
        all_healthy = all_healthy and row.healthy
        table.add_row(
            row.name,
            f"127.0.0.1:{row.port}" if row.port else "-",
            str(row.pid) if row.pid else "-",
            state,
            row.version,
        )
    return table, all_healthy


def _database_table(stack: LocalStack) -> Table | str:
    """Each Patroni member as ``GET /cluster`` shows it, or why it cannot be shown."""
    try:
        members = stack.database_members()
    except BackendStartError as exc:
        return f"Patroni cluster: {exc}"
    table = Table(title="PostgreSQL: Patroni cluster on 127.0.0.1")
    for column in ("member", "port", "REST port", "role", "state", "timeline", "lag"):
        table.add_column(column)
    for view in members:
        ports = stack.ports.get(view.backend, {})
        table.add_row(
            view.member,
            str(ports.get("postgres", "-")),
            str(ports.get("rest", "-")),
            f"[bold]{view.role}[/bold]" if view.leads else view.role,
            view.state,
            "-" if view.timeline is None else str(view.timeline),
            format_lag(view.lag),
        )
    return table


@app.command("up")
def stack_up(
    home: HomeOption = DEFAULT_HOME,
    foreground: Annotated[
        bool,
        typer.Option(
            "--foreground/--detach",
            help="Stay in the foreground and stop everything on Ctrl-C; exit when the stack "
            "is stopped from elsewhere (default: detach).",
        ),
    ] = False,
    port_offset: Annotated[
        int,
        typer.Option(help="Add this to every demo port (when the demo ports are taken)."),
    ] = 0,
    kubernetes: Annotated[
        bool,
        typer.Option(
            "--kubernetes/--no-kubernetes",
            envvar="STACK_KUBERNETES",
            help="Also run a Kubernetes control plane (KWOK nodes), deploy deploy/k8s to it and "
            "let the control plane read and scale its Deployments and HPAs.",
        ),
    ] = False,
) -> None:
    """Start every backend, wait until each is healthy, print where each one listens."""
    stack = _stack(home, port_offset, kubernetes=kubernetes)
    console.print(f"starting the local stack in {home} (logs in {stack.log_dir})")
    try:
        stack.up(on_event=_print_event)
    except (StackError, BackendStartError) as exc:
        err_console.print(f"[red]stack failed to start:[/red] {escape(str(exc))}")
        raise typer.Exit(1) from exc
    table, _ = _status_table(stack)
    console.print(table)
    console.print(_database_table(stack))
    console.print("All processes are up.")
    if stack.cluster is not None:
        console.print(
            f"kubectl: `kubectl --kubeconfig {stack.kubeconfig} get deploy,hpa -n inventory`"
        )
    if not foreground:
        console.print("Stop them with `controlplane stack down` (or `make demo-down`).")
        return
    stop = threading.Event()

    def _on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    console.print("Press Ctrl-C to stop the stack.")
    while not stop.wait(WATCH_INTERVAL_S):
        if not stack.running():  # `controlplane stack down` (make demo-down) elsewhere
            console.print(
                "the local stack was stopped from elsewhere (`controlplane stack down`); exiting"
            )
            return
    console.print("stopping the local stack")
    stack.down(on_event=_print_event)


@app.command("down")
def stack_down(home: HomeOption = DEFAULT_HOME) -> None:
    """Stop every backend the stack started (clean shutdown, then SIGKILL after 60 s)."""
    stack = _stack(home)
    if not stack.state_path.exists():
        console.print("the local stack is not running")
        return
    stack.down(on_event=_print_event)
    console.print("local stack stopped")


@app.command("status")
def stack_status(home: HomeOption = DEFAULT_HOME) -> None:
    """Show each backend, its address, and whether it answers its health check (exit 1 if not)."""
    stack = _stack(home)
    table, all_healthy = _status_table(stack)
    console.print(table)
    if stack.running():
        console.print(_database_table(stack))
    if stack.cluster is not None:
        console.print(f"kubeconfig: {stack.kubeconfig}")
    if not all_healthy:
        raise typer.Exit(1)


def _postgres_version(member: PatroniMember) -> str:
    """``postgres --version`` of the PostgreSQL build a Patroni member runs."""
    postgres = member.settings.pg_bindir / "postgres"
    require_executable("postgresql", postgres, BOOTSTRAP_HINT)
    output = run_checked("postgresql", [str(postgres), "--version"], user=None, timeout=30)
    return output.strip().splitlines()[0] if output.strip() else "postgres ?"


@app.command("versions")
def stack_versions(home: HomeOption = DEFAULT_HOME) -> None:
    """Print each backend's version as its installed binary reports it (no server needed);
    backends that run the same binary (the etcds, the Patroni members) share one line."""
    stack = _stack(home, kubernetes=True)
    failed = False
    sharing: dict[tuple[type, Path], list[str]] = {}
    for name, backend in stack.backends.items():
        sharing.setdefault((type(backend), backend.executable()), []).append(name)
    for names in sharing.values():
        name, backend = ", ".join(names), stack.backends[names[0]]
        try:
            version = backend.binary_version()
            if isinstance(backend, PatroniMember):  # and the PostgreSQL it runs
                version += f", {_postgres_version(backend)}"
        except VERSION_ERRORS as exc:
            console.print(f"  {name:20} [red]unavailable: {exc}[/red]", soft_wrap=True)
            failed = True
            continue
        console.print(f"  {name:20} {version}  [dim]({backend.executable()})[/dim]", soft_wrap=True)
    if failed:
        raise typer.Exit(1)


@app.command("ports")
def stack_ports() -> None:
    """List the demo ports of every backend."""
    for name, ports in DEMO_PORTS.items():
        console.print(f"{name:20} " + "  ".join(f"{label}={port}" for label, port in ports.items()))


def _console_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise typer.BadParameter(f"{value!r} is not an http(s) URL such as https://console.example")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise typer.BadParameter(
            f"{value!r}: give the console's address only (scheme, host, port), no path"
        )
    return f"{parts.scheme}://{parts.netloc}"


@app.command("realm")
def stack_realm(
    out: Annotated[
        Path, typer.Option("--out", help="Where to write the realm JSON (Keycloak's import file).")
    ],
    console_url: Annotated[
        list[str],
        typer.Option(
            "--console-url",
            help="Public address of the console, as browsers open it (repeat for several); "
            "its /auth/callback and / become the console client's redirect URIs.",
        ),
    ],
    secrets_dir: Annotated[
        Path | None,
        typer.Option(
            "--secrets-dir",
            help="Also give each client a secret file <client>.secret here (plus "
            f"{ADMIN_SECRET_FILE} and {SESSION_SECRET_FILE}): new random values, existing "
            "files are kept.",
        ),
    ] = None,
    realm: Annotated[str, typer.Option("--realm", help="Realm name (the issuer's last part).")] = (
        INVENTORY_REALM
    ),
    dev_users: Annotated[
        bool,
        typer.Option(
            "--dev-users/--no-dev-users",
            help="Include the dev people (vera, oscar, ada; password <name>-pass): demos only.",
        ),
    ] = False,
) -> None:
    """Write the realm a deployment imports (docker compose, Kubernetes): the realm the local
    stack imports, without the tests' clients, each client secret a placeholder
    ${REALM_SECRET_<CLIENT>} that Keycloak fills from its environment at import, so the file
    holds no secret."""
    urls = [_console_url(url) for url in console_url]
    if not urls:
        raise typer.BadParameter("give at least one --console-url", param_hint="--console-url")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        realm_json(deployable_realm(urls, realm=realm, dev_users=dev_users)), encoding="utf-8"
    )
    console.print(f"realm {realm} written to {out}", soft_wrap=True)
    console.print(
        "Keycloak reads the client secrets from "
        + ", ".join(secret_variable(c.client_id) for c in DEPLOYED_CLIENTS),
        soft_wrap=True,
    )
    if secrets_dir is not None:
        for path, written in write_deployment_secrets(secrets_dir).items():
            console.print(f"  {'written' if written else 'kept   '}  {path}", soft_wrap=True)
