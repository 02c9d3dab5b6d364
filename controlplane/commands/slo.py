"""``controlplane slo``: validate SLO specs and generate their Prometheus rules.

The SLO core (``slo``) is pure; reading spec files and writing rule files happens here.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from controlplane.core.config import DEFAULT_CAPACITY_POLICY, DEFAULT_DR_POLICY, setting_name
from controlplane.core.specs import load_specs, read_spec_sources
from controlplane.evaluation.report import SLOReport, SLOReporter
from controlplane.sources.prometheus import PrometheusSource
from controlplane.targets.policy import PolicyError, slo_tier_policy
from slo.durations import format_duration
from slo.rules import RuleFile, generate_rule_files
from slo.spec import SLO, CalendarWindow, SpecErrors, SpecNote, convert_to_openslo

__all__ = ["EXIT_INVALID", "app"]

EXIT_INVALID = 2
"""Exit code for invalid specs (and for usage errors, as Click uses it too)."""
#: How long ``slo report`` waits for one answer of Prometheus or Elasticsearch.
REPORT_TIMEOUT_SECONDS = 10.0

app = typer.Typer(
    name="slo",
    help="SLO specs (OpenSLO v1, native, Sloth prometheus/v1, Pyrra): validate them, generate "
    "Prometheus rules, report, convert to OpenSLO.",
    no_args_is_help=True,
    add_completion=False,
)

SpecPaths = Annotated[
    list[Path],
    typer.Argument(
        help="Spec files (.yaml/.yml, multi-document allowed) or folders searched recursively.",
        show_default=False,
    ),
]


CapacityPolicy = Annotated[
    Path,
    typer.Option(
        "--capacity-policy",
        envvar=setting_name(("policies", "capacity_policy")),
        help="Capacity policy: the tier of each service, for specs that give none.",
    ),
]
DRPolicy = Annotated[
    Path,
    typer.Option(
        "--dr-policy",
        envvar=setting_name(("policies", "dr_policy")),
        help="DR policy: the tier of a service's database, for specs that give none.",
    ),
]


def _console() -> Console:
    return Console(highlight=False, soft_wrap=True)


def _err_console() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def _print_notes(notes: Sequence[SpecNote]) -> None:
    err = _err_console()
    for note in notes:
        err.print(f"note: {note}", markup=False)


def _exit_invalid(exc: SpecErrors) -> typer.Exit:
    err = _err_console()
    for error in exc.errors:
        err.print(str(error), markup=False)
    err.print(f"{len(exc.errors)} problem(s) found", style="red", markup=False)
    return typer.Exit(EXIT_INVALID)


def _load_or_exit(
    paths: Sequence[Path],
    *,
    capacity_policy: Path = DEFAULT_CAPACITY_POLICY,
    dr_policy: Path = DEFAULT_DR_POLICY,
) -> tuple[SLO, ...]:
    """The SLOs of the spec files, tiers missing from them taken from the policy files; notes
    on fields not carried over go to stderr; invalid specs or policies exit with code 2."""
    try:
        tiers = slo_tier_policy(capacity_path=capacity_policy, dr_path=dr_policy)
    except PolicyError as exc:
        _err_console().print(str(exc), markup=False)
        raise typer.Exit(EXIT_INVALID) from exc
    try:
        parsed = load_specs(paths, tiers=tiers)
    except SpecErrors as exc:
        raise _exit_invalid(exc) from exc
    _print_notes(parsed.notes)
    return parsed.slos


def _window(slo: SLO) -> str:
    if isinstance(slo.window, CalendarWindow):
        return f"calendar {slo.window.unit} ({slo.window.timezone})"
    return f"rolling {format_duration(slo.window.duration)}"


def _objective(slo: SLO) -> str:
    return f"{format((slo.target_decimal * 100).normalize(), 'f')} %"


def _sli(slo: SLO) -> str:
    kind = slo.sli.kind.replace("prometheus_", "").replace("elasticsearch_", "es ")
    if slo.budgeting_method == "Occurrences":
        return kind
    return f"{kind}, {slo.budgeting_method}"


@app.command("validate")
def validate(
    paths: SpecPaths,
    capacity_policy: CapacityPolicy = DEFAULT_CAPACITY_POLICY,
    dr_policy: DRPolicy = DEFAULT_DR_POLICY,
) -> None:
    """Check spec files; print the SLOs they define and where each tier comes from, or one
    line per problem (exit code 2). Fields read but not carried over are noted on stderr."""
    slos = _load_or_exit(paths, capacity_policy=capacity_policy, dr_policy=dr_policy)
    table = Table(title=f"{len(slos)} SLO(s)")
    for column in ("slo", "tier", "tier from", "objective", "window", "sli"):
        table.add_column(column, overflow="fold", no_wrap=column == "slo")
    for slo in slos:
        table.add_row(
            slo.key, slo.tier, Text(slo.tier_origin), _objective(slo), _window(slo), _sli(slo)
        )
    console = _console()
    console.print(table)
    files = len({s.source for s in slos})
    console.print(f"[green]valid:[/green] {len(slos)} SLO(s) in {files} file(s)")


def _describe(rule_file: RuleFile) -> str:
    return (
        f"{rule_file.records} recording rules, {rule_file.alerts} alerts "
        f"({', '.join(rule_file.slos)})"
    )


@app.command("generate")
def generate(
    paths: SpecPaths,
    out: Annotated[
        Path,
        typer.Option("--out", help="Folder for the <service>.rules.yml files.", show_default=False),
    ],
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Write nothing; exit 1 if a file in --out differs from what would be generated.",
        ),
    ] = False,
    capacity_policy: CapacityPolicy = DEFAULT_CAPACITY_POLICY,
    dr_policy: DRPolicy = DEFAULT_DR_POLICY,
) -> None:
    """Generate one Prometheus rule file per service into --out (deterministic output)."""
    slos = _load_or_exit(paths, capacity_policy=capacity_policy, dr_policy=dr_policy)
    files = generate_rule_files(slos)
    console = _console()
    skipped = sorted(s.key for s in slos if s.backend != "prometheus")
    if skipped:
        console.print(
            f"no Prometheus rules for {', '.join(skipped)} (evaluated by the control plane)",
            markup=False,
        )
    if not files:
        console.print("no Prometheus-backed SLOs: nothing to generate")
        return
    if check:
        stale = [
            f
            for f in files
            if not (out / f.filename).is_file()
            or (out / f.filename).read_text(encoding="utf-8") != f.content
        ]
        for f in stale:
            _err_console().print(f"{out / f.filename}: out of date", markup=False)
        if stale:
            raise typer.Exit(1)
        console.print(f"up to date: {len(files)} file(s) in {out}", markup=False)
        return
    out.mkdir(parents=True, exist_ok=True)
    for f in files:
        target = out / f.filename
        target.write_text(f.content, encoding="utf-8")
        console.print(f"wrote {target}: {_describe(f)}", markup=False)


def parse_instant(text: str | None) -> datetime:
    """``--at``: RFC 3339 with a zone (``2026-11-21T10:00:00Z``) or unix seconds; default now."""
    if text is None:
        return datetime.now(UTC)
    try:
        return datetime.fromtimestamp(float(text), tz=UTC)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise typer.BadParameter(
            f"{text!r} is not an RFC 3339 time or unix seconds", param_hint="--at"
        ) from exc
    if parsed.tzinfo is None:
        raise typer.BadParameter(f"{text!r} has no time zone (add Z or +hh:mm)", param_hint="--at")
    return parsed.astimezone(UTC)


def _pct(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value * 100:.{digits}f} %"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _report_table(reports: Sequence[SLOReport], at: datetime) -> Table:
    windows = sorted({w for r in reports for w in r.burn_rates})
    table = Table(title=f"SLO report at {at.isoformat()} (UTC)")
    for column in ("slo", "state", "SLI", "objective", "budget left", "minutes left"):
        table.add_column(column, no_wrap=column == "slo")
    for window in windows:
        table.add_column(f"burn {format_duration(window)}", justify="right")
    table.add_column("firing")
    for report in reports:
        status = report.status
        budget = status.budget
        firing = [
            f"{a.window.severity} "
            f"{format_duration(a.window.long)}/{format_duration(a.window.short)}"
            for a in status.alerts
            if a.firing
        ]
        state = str(status.state)
        reason = report.no_data_reason
        table.add_row(
            report.slo.key,
            state if reason is None else f"{state}: {reason}",
            _pct(status.sli.sli),
            _objective(report.slo),
            _pct(None if budget is None else budget.remaining_ratio, 2),
            "-" if budget is None else f"{budget.remaining_minutes:.1f}",
            *(_num(report.burn_rates.get(window)) for window in windows),
            ", ".join(firing) or "-",
        )
    return table


@app.command("report")
def report(
    paths: SpecPaths,
    prometheus: Annotated[
        str,
        typer.Option("--prometheus", help="Prometheus base URL, e.g. http://127.0.0.1:9090."),
    ],
    elasticsearch: Annotated[
        str | None,
        typer.Option(
            "--elasticsearch", help="Elasticsearch URL for log-based SLOs (else they are skipped)."
        ),
    ] = None,
    at: Annotated[
        str | None,
        typer.Option(
            "--at",
            help="Evaluate at this instant: RFC 3339 with zone, or unix seconds (default: now).",
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per SLO, full precision.")
    ] = False,
    capacity_policy: CapacityPolicy = DEFAULT_CAPACITY_POLICY,
    dr_policy: DRPolicy = DEFAULT_DR_POLICY,
) -> None:
    """SLI, error budget and burn rate per window of each SLO, evaluated at one instant.

    Read as the control plane's evaluator reads them: the recorded error ratios of every SLO
    whose rules Prometheus has at that instant (one query per record name), else event counts
    of every window, all SLOs in a few batched queries."""
    instant = parse_instant(at)
    slos = _load_or_exit(paths, capacity_policy=capacity_policy, dr_policy=dr_policy)
    skipped = [slo.key for slo in slos if slo.backend == "elasticsearch" and elasticsearch is None]
    metrics = PrometheusSource(url=prometheus, timeout=REPORT_TIMEOUT_SECONDS)
    logs = None
    if elasticsearch is not None:
        # Imported here: the Elasticsearch client costs a third of a second to import, and a
        # report of Prometheus SLOs alone never needs it.
        from controlplane.sources.elasticsearch import ElasticsearchSource

        logs = ElasticsearchSource(url=elasticsearch, timeout=REPORT_TIMEOUT_SECONDS)
    reporter = SLOReporter(
        slos=[slo for slo in slos if slo.key not in skipped], metrics=metrics, logs=logs
    )
    try:
        run = reporter.report(at=instant)
    finally:
        metrics.close()
        if logs is not None:
            logs.close()
    reports: list[SLOReport] = []
    for outcome in run.outcomes:
        if not isinstance(outcome, SLOReport):
            _err_console().print(
                f"report failed: {outcome.slo.key}: {outcome.reason}", markup=False
            )
            raise typer.Exit(1)
        reports.append(outcome)
    if as_json and reports:
        # One compact object per line, written as is: rich's JSON printing would cost more
        # than the whole read for 1,000 SLOs.
        typer.echo("\n".join(json.dumps(item.as_dict(), ensure_ascii=False) for item in reports))
    elif not as_json:
        _console().print(_report_table(reports, instant))
    if skipped:
        _err_console().print(f"skipped (needs --elasticsearch): {', '.join(skipped)}", markup=False)


@app.command("convert")
def convert(
    files: Annotated[
        list[Path],
        typer.Argument(
            help="Sloth prometheus/v1 files or Pyrra ServiceLevelObjective objects.",
            show_default=False,
        ),
    ],
    to: Annotated[
        str, typer.Option("--to", help="The format to write: openslo (OpenSLO v1).")
    ] = "openslo",
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Folder for <name>.openslo.yaml, one per input file (default: standard output).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Write Sloth and Pyrra specs as OpenSLO v1. Every field maps, or is listed on stderr as
    not carried over (and in the output's header); an input that cannot be converted exits 2."""
    if to != "openslo":
        raise typer.BadParameter(f"{to!r}: the only target format is openslo", param_hint="--to")
    sources, errors = read_spec_sources(files)
    try:
        conversions = convert_to_openslo(sources)
    except SpecErrors as exc:
        raise _exit_invalid(SpecErrors([*errors, *exc.errors])) from exc
    if errors:
        raise _exit_invalid(SpecErrors(errors))
    console = _console()
    for conversion in conversions:
        _print_notes(conversion.notes)
        if out is None:
            typer.echo(conversion.render(), nl=False)
            continue
        out.mkdir(parents=True, exist_ok=True)
        target = out / f"{Path(conversion.source).name.split('.')[0]}.openslo.yaml"
        target.write_text(conversion.render(), encoding="utf-8")
        console.print(
            f"wrote {target}: {len(conversion.documents)} SLO(s) from {conversion.origin}, "
            f"{len(conversion.notes)} field(s) not carried over",
            markup=False,
        )
