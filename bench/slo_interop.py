"""``make bench-slo``: our SLO rules side by side with Sloth's and Pyrra's, on one real Prometheus.

The same two SLOs (API availability 99.9 %, API latency 99 % under 250 ms, 30 days) are written
three times: as OpenSLO for this control plane, as a Sloth ``prometheus/v1`` file and as Pyrra
``ServiceLevelObjective`` objects (our importer checks that both read as the same SLOs). Each
tool generates its rules with its own binary (``deploy/build-slo-peers.sh`` builds Sloth and
Pyrra from the Go module proxy at pinned versions).

History: 33 days of one-minute counter samples ending at the benchmark instant ``T``, backfilled
into a real Prometheus with ``promtool tsdb create-blocks-from openmetrics``. Spiky traffic:
quiet nights (100 requests a minute, 2 % errors, 3 % slow), busy days (3,000 a minute, 0.05 %
errors, 0.4 % slow), an incident nine days before ``T`` (90 minutes, 25 % errors) and one from
``T - 50m`` to ``T - 20m`` (8 % errors, 30 % slow).

Every tool's recording rules are evaluated over that history as Prometheus evaluates them,
with ``promtool tsdb create-blocks-from rules`` against the same server: first the rules other
rules read over a range (Sloth's 5-minute ratios, over the 30 days its period SLI averages),
then each level of dependent rules at ``T``; the blocks are added to the server between passes.
Then every window's burn rate and the period's SLI, as each tool records them at ``T``, are
compared with the exact value from the raw samples at the instant the rule was evaluated (a group
is evaluated at an offset within its interval, so a tool's newest sample at ``T`` may be up to
one interval older): ``Σ increases of the bad counters / Σ increases of the total`` between the
raw samples the window selects (both edges with Prometheus 2, left-open with Prometheus 3),
computed with fractions. Sloth records error ratios and Pyrra its "burnrate" error ratios: their
burn rates are those over the budget their alerts use.

Last, the three rule sets are loaded into the server and evaluated live for ``--live-seconds``
(every group every 10 s, whatever its own interval): the rule-evaluation cost is Prometheus'
own ``evaluationTime`` of each group (median over the rounds), per SLO, per round and per hour
at each group's own interval.

Prints a table and, as the last line, one JSON object.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import httpx
import yaml
from rich.console import Console
from rich.table import Table

from controlplane.core.processes import free_ports
from controlplane.stack.backends import Prometheus
from controlplane.stack.settings import StackSettings
from slo.durations import format_duration, parse_duration
from slo.rules import generate_rule_files
from slo.spec import SLO, PrometheusRatioSLI, SpecSource, parse_slos

REPO_ROOT = Path(__file__).resolve().parents[1]
SERVICE = "inventory"
STEP = timedelta(minutes=1)
HISTORY = timedelta(days=33)
PERIOD = timedelta(days=30)
#: Prometheus' default evaluation interval: the interval of groups that set none (Sloth's).
DEFAULT_INTERVAL = timedelta(minutes=1)
BASE = 1_000_000  # counters start high: Prometheus' extrapolation never clips at zero
#: Every rule is evaluated over at least the last 15 minutes before ``T``, longer than any group
#: interval: a rule reading another's series then finds one within its 5-minute lookback at
#: every instant, as in a Prometheus that has been running for a while.
SETTLE = timedelta(minutes=15)
TOOLS = ("ours", "sloth", "pyrra")

REQUESTS = 'http_requests_total{job="inventory"}'
ERRORS = 'http_requests_total{job="inventory",code=~"5.."}'
LATENCY_COUNT = 'http_request_duration_seconds_count{job="inventory"}'
LATENCY_FAST = 'http_request_duration_seconds_bucket{job="inventory",le="0.25"}'


# --- the SLOs, three times --------------------------------------------------------------------

OURS = f"""\
apiVersion: openslo/v1
kind: SLO
metadata: {{name: api-availability}}
spec:
  service: {SERVICE}
  indicator:
    metadata: {{name: api-availability}}
    spec:
      ratioMetric:
        counter: true
        bad: {{metricSource: {{type: Prometheus, spec: {{query: '{ERRORS}'}}}}}}
        total: {{metricSource: {{type: Prometheus, spec: {{query: '{REQUESTS}'}}}}}}
  timeWindow: [{{duration: 30d, isRolling: true}}]
  budgetingMethod: Occurrences
  objectives: [{{target: 0.999}}]
---
apiVersion: openslo/v1
kind: SLO
metadata: {{name: api-latency}}
spec:
  service: {SERVICE}
  indicator:
    metadata: {{name: api-latency}}
    spec:
      ratioMetric:
        counter: true
        good: {{metricSource: {{type: Prometheus, spec: {{query: '{LATENCY_FAST}'}}}}}}
        total: {{metricSource: {{type: Prometheus, spec: {{query: '{LATENCY_COUNT}'}}}}}}
  timeWindow: [{{duration: 30d, isRolling: true}}]
  budgetingMethod: Occurrences
  objectives: [{{target: 0.99}}]
"""

SLOTH = f"""\
version: "prometheus/v1"
service: "{SERVICE}"
slos:
  - name: "api-availability"
    objective: 99.9
    sli:
      events:
        error_query: sum(rate({ERRORS}[{{{{.window}}}}]))
        total_query: sum(rate({REQUESTS}[{{{{.window}}}}]))
    alerting:
      name: ApiAvailability
  - name: "api-latency"
    objective: 99
    sli:
      events:
        error_query: |
          sum(rate({LATENCY_COUNT}[{{{{.window}}}}]))
          -
          sum(rate({LATENCY_FAST}[{{{{.window}}}}]))
        total_query: sum(rate({LATENCY_COUNT}[{{{{.window}}}}]))
    alerting:
      name: ApiLatency
"""

PYRRA = f"""\
apiVersion: pyrra.dev/v1alpha1
kind: ServiceLevelObjective
metadata: {{name: api-availability, namespace: {SERVICE}}}
spec:
  target: "99.9"
  window: 30d
  indicator:
    ratio:
      errors: {{metric: '{ERRORS}'}}
      total: {{metric: '{REQUESTS}'}}
---
apiVersion: pyrra.dev/v1alpha1
kind: ServiceLevelObjective
metadata: {{name: api-latency, namespace: {SERVICE}}}
spec:
  target: "99"
  window: 30d
  indicator:
    latency:
      success: {{metric: '{LATENCY_FAST}'}}
      total: {{metric: '{LATENCY_COUNT}'}}
"""


# --- traffic and its exact ratios -------------------------------------------------------------


@dataclass(frozen=True)
class Minute:
    """Requests that arrived in one minute."""

    total: int
    errors: int
    fast: int


#: Time of day at ``T`` (in minutes after midnight): 14:00, a busy afternoon.
T_MINUTE_OF_DAY = 14 * 60


def traffic(m: int, rng: random.Random) -> Minute:
    """The requests of minute ``m`` before ``T`` (``m = 0`` ends at ``T``)."""
    minute_of_day = (T_MINUTE_OF_DAY - 1 - m) % 1440
    day = 8 * 60 <= minute_of_day < 20 * 60
    total = round((3000 if day else 100) * rng.uniform(0.8, 1.2))
    error_share, slow_share = (0.0005, 0.004) if day else (0.02, 0.03)
    if 9 * 1440 <= m < 9 * 1440 + 90:  # an incident nine days ago
        error_share, slow_share = 0.25, 0.5
    if 20 <= m < 50:  # and one that ended 20 minutes ago
        error_share, slow_share = 0.08, 0.3
    errors = min(total, round(total * error_share * rng.uniform(0.5, 1.5)))
    slow = min(total, round(total * slow_share * rng.uniform(0.5, 1.5)))
    return Minute(total=total, errors=errors, fast=total - slow)


@dataclass(frozen=True)
class History:
    """Counter values at each sample, oldest first: sample ``k`` is at ``T - k`` minutes."""

    minutes: int
    total: list[int]
    errors: list[int]
    fast: list[int]

    @classmethod
    def build(cls, *, seed: int) -> History:
        rng = random.Random(seed)
        minutes = int(HISTORY / STEP)
        per_minute = [traffic(m, rng) for m in range(minutes)]  # index m: m minutes before T
        total, errors, fast = [BASE], [BASE], [BASE]
        for m in range(minutes - 1, -1, -1):
            total.append(total[-1] + per_minute[m].total)
            errors.append(errors[-1] + per_minute[m].errors)
            fast.append(fast[-1] + per_minute[m].fast)
        return cls(minutes=minutes, total=total, errors=errors, fast=fast)

    def increase(self, values: list[int], *, end: float, window: timedelta, left_open: bool) -> int:
        """The counter's increase between the first and the last raw sample that a range
        selector of ``window`` ending at ``end`` (seconds before ``T``, negative) selects:
        ``[end - w, end]`` with Prometheus 2, ``(end - w, end]`` with Prometheus 3. Every series
        has samples at the same instants, so Prometheus' extrapolation scales the increases of
        one window alike and their ratio is exactly this one's."""
        step = STEP.total_seconds()
        origin = -self.minutes * step  # the first sample, in seconds from T
        first_at = (end - window.total_seconds() - origin) / step
        first = math.ceil(first_at)
        if left_open and first == first_at:
            first += 1
        last = math.floor((end - origin) / step)
        return values[last] - values[first]

    def error_ratio(self, slo: str, *, end: float, window: timedelta, left_open: bool) -> Fraction:
        def increase(values: list[int]) -> int:
            return self.increase(values, end=end, window=window, left_open=left_open)

        total = increase(self.total)
        bad = increase(self.errors) if slo == "api-availability" else total - increase(self.fast)
        return Fraction(bad, total)

    def openmetrics(self, at: datetime) -> str:
        series = {
            'http_requests_total{job="inventory",code="200"}': [
                BASE + t - e for t, e in zip(self.total, self.errors, strict=True)
            ],
            'http_requests_total{job="inventory",code="500"}': self.errors,
            'http_request_duration_seconds_bucket{job="inventory",le="0.25"}': self.fast,
            'http_request_duration_seconds_bucket{job="inventory",le="+Inf"}': self.total,
            'http_request_duration_seconds_count{job="inventory"}': self.total,
        }
        lines = ["# TYPE http_requests counter"]
        stamps = [int((at - k * STEP).timestamp()) for k in range(self.minutes, -1, -1)]
        for name, values in series.items():
            if name.startswith("http_request_duration"):
                continue
            lines.extend(f"{name} {v} {s}" for v, s in zip(values, stamps, strict=True))
        lines.append("# TYPE http_request_duration_seconds histogram")
        for name, values in series.items():
            if name.startswith("http_request_duration"):
                lines.extend(f"{name} {v} {s}" for v, s in zip(values, stamps, strict=True))
        lines.append("# EOF")
        return "\n".join(lines) + "\n"


# --- rules ------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Rule:
    """One recording rule of a tool's rule file (compared by identity)."""

    tool: str
    group: str
    interval: timedelta
    record: str
    expr: str
    labels: Mapping[str, str]
    index: int  # position in its group: rules of a group read the ones above them


@dataclass
class RuleSet:
    tool: str
    files: dict[str, str]  # file name -> YAML text
    rules: list[Rule] = field(default_factory=list)

    def parse(self) -> None:
        for text in self.files.values():
            for group in yaml.safe_load(text)["groups"]:
                interval = parse_duration(group["interval"]) if "interval" in group else None
                for index, rule in enumerate(group["rules"]):
                    if "record" not in rule:
                        continue
                    self.rules.append(
                        Rule(
                            tool=self.tool,
                            group=group["name"],
                            interval=interval or DEFAULT_INTERVAL,
                            record=rule["record"],
                            expr=str(rule["expr"]),
                            labels=rule.get("labels") or {},
                            index=index,
                        )
                    )


def our_rules(slos: Sequence[SLO]) -> RuleSet:
    return RuleSet(tool="ours", files={f.filename: f.content for f in generate_rule_files(slos)})


def sloth_rules(binary: Path, work: Path) -> RuleSet:
    spec, out = work / "sloth.yml", work / "sloth.rules.yml"
    spec.write_text(SLOTH, encoding="utf-8")
    _checked([str(binary), "generate", "--no-log", "-i", str(spec), "-o", str(out)])
    return RuleSet(tool="sloth", files={"sloth.rules.yml": out.read_text(encoding="utf-8")})


def pyrra_rules(binary: Path, work: Path) -> RuleSet:
    specs, out = work / "pyrra", work / "pyrra-rules"
    specs.mkdir()
    out.mkdir()
    for index, document in enumerate(PYRRA.split("---\n")):
        (specs / f"slo-{index}.yaml").write_text(document, encoding="utf-8")
    _checked(
        [
            str(binary),
            "generate",
            f"--config-files={specs}/*.yaml",
            f"--prometheus-folder={out}",
            "--generic-rules",
        ]
    )
    return RuleSet(
        tool="pyrra",
        files={f"pyrra-{p.name}": p.read_text(encoding="utf-8") for p in sorted(out.iterdir())},
    )


def _checked(argv: list[str]) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


#: A range read right after a series name: ``{matchers}[30d]`` or ``[5m:1m]``.
_RANGE_READ = re.compile(r"(?:\{[^}]*\})?\s*\[(\d+[smhdwy](?:\d+[smhdwy])*)(?::[^\]]*)?\]")


def _reads(rule: Rule, record: str) -> re.Match[str] | None:
    """Where ``rule`` reads the series named ``record``, if it does."""
    return re.search(rf"(?<![\w:]){re.escape(record)}(?![\w:])", rule.expr)


def plan(rules: Sequence[Rule]) -> list[list[tuple[Rule, timedelta]]]:
    """Backfill passes: each pass holds rules whose inputs earlier passes (or the raw history)
    provide, each with the history it must cover before ``T``: the longest range over which a
    later rule of the same tool reads it (zero: evaluated at ``T`` only). Tools spell some
    records alike (``slo:sli_error:ratio_rate5m``) but read only their own, by label."""
    records = {(r.tool, r.record) for r in rules}
    depends: dict[Rule, set[tuple[str, str]]] = {}
    history: dict[tuple[str, str], timedelta] = {}
    for rule in rules:
        depends[rule] = set()
        for tool, name in records:
            found = _reads(rule, name) if tool == rule.tool and name != rule.record else None
            if found is None:
                continue
            depends[rule].add((tool, name))
            ranged = _RANGE_READ.match(rule.expr, found.end())
            if ranged:
                span = parse_duration(ranged.group(1))
                history[(tool, name)] = max(history.get((tool, name), timedelta(0)), span)
    done: set[tuple[str, str]] = set()
    passes: list[list[tuple[Rule, timedelta]]] = []
    left = list(rules)
    while left:
        ready = [r for r in left if depends[r] <= done]
        if not ready:
            raise SystemExit(f"circular rules: {[r.record for r in left]}")
        passes.append([(r, history.get((r.tool, r.record), timedelta(0))) for r in ready])
        done.update((r.tool, r.record) for r in ready)
        left = [r for r in left if r not in ready]
    return passes


def rule_file(rules: Iterable[Rule]) -> str:
    groups: dict[tuple[str, str], list[Rule]] = {}
    for rule in rules:
        groups.setdefault((rule.tool, rule.group), []).append(rule)
    return yaml.safe_dump(
        {
            "groups": [
                {
                    "name": f"{tool}-{name}",
                    "interval": format_duration(members[0].interval),
                    "rules": [
                        {"record": r.record, "expr": r.expr, "labels": dict(r.labels)}
                        for r in sorted(members, key=lambda r: r.index)
                    ],
                }
                for (tool, name), members in groups.items()
            ]
        },
        sort_keys=False,
        width=100_000,
    )


# --- Prometheus -------------------------------------------------------------------------------


class _LongHistoryPrometheus(Prometheus):
    """Prometheus keeping the whole history: its default retention (15 days) would drop the
    first half of a 30-day window."""

    def command(self) -> list[str]:
        return [*super().command(), f"--storage.tsdb.retention.time={HISTORY.days * 2}d"]


class Server:
    """One Prometheus over the backfilled history, restarted as blocks are added."""

    def __init__(self, *, settings: StackSettings, workdir: Path, history: str) -> None:
        self.settings = settings
        self.prometheus = _LongHistoryPrometheus(
            settings=settings,
            workdir=workdir,
            ports={"http": free_ports(1)[0]},
            config={"global": {"scrape_interval": "15s", "evaluation_interval": "10s"}},
            backfill=history,
        )
        self.client = httpx.Client(base_url=self.prometheus.url, timeout=120)

    @property
    def url(self) -> str:
        return self.prometheus.url

    @property
    def data(self) -> Path:
        return self.prometheus.workdir / "data"

    def start(self, rules: Mapping[str, str] | None = None) -> None:
        rules_dir = self.prometheus.workdir / "rules"
        if rules_dir.exists():
            shutil.rmtree(rules_dir)
        self.prometheus.rules = dict(rules or {})
        self.prometheus.start(timeout=300)

    def stop(self) -> None:
        self.prometheus.stop()

    def close(self) -> None:
        self.stop()
        self.client.close()

    def version(self) -> str:
        data = self.client.get("/api/v1/status/buildinfo").json()["data"]
        return str(data["version"])

    def instant(self, query: str, at: datetime) -> list[dict[str, Any]]:
        response = self.client.get("/api/v1/query", params={"query": query, "time": at.timestamp()})
        response.raise_for_status()
        result: list[dict[str, Any]] = response.json()["data"]["result"]
        return result

    def sample(self, series: str, at: datetime) -> Sample | None:
        """The newest sample of one recorded series at or before ``at``, with its own
        timestamp (rules are evaluated at an offset within their interval, not at ``T``)."""
        result = self.instant(f"{series}[10m]", at)
        if len(result) != 1 or not result[0]["values"]:
            return None
        stamp, value = result[0]["values"][-1]
        return Sample(value=float(value), end=float(stamp) - at.timestamp())

    def backfill_rules(self, rules: Sequence[tuple[Rule, timedelta]], *, at: datetime) -> int:
        """Evaluate ``rules`` over the history they need, as Prometheus would have (promtool),
        then add the blocks. Returns the number of evaluations."""
        by_history: dict[timedelta, list[Rule]] = {}
        for rule, span in rules:
            by_history.setdefault(span, []).append(rule)
        out = self.prometheus.workdir / "rule-blocks"
        evaluations = 0
        for span, members in sorted(by_history.items()):
            intervals = {r.interval for r in members}
            for interval in sorted(intervals):
                chosen = [r for r in members if r.interval == interval]
                start = at - max(span, interval, SETTLE)
                start -= timedelta(seconds=(at - start).total_seconds() % interval.total_seconds())
                path = self.prometheus.workdir / "backfill-rules.yml"
                path.write_text(rule_file(chosen), encoding="utf-8")
                _checked(
                    [
                        str(self.settings.promtool),
                        "tsdb",
                        "create-blocks-from",
                        "rules",
                        "--quiet",
                        f"--url={self.url}",
                        f"--start={int(start.timestamp())}",
                        f"--end={int(at.timestamp()) + 1}",
                        f"--output-dir={out}",
                        f"--eval-interval={int(interval.total_seconds())}s",
                        str(path),
                    ]
                )
                evaluations += len(chosen) * (int((at - start) / interval) + 1)
        self.stop()
        for block in out.iterdir():
            shutil.move(str(block), self.data / block.name)
        out.rmdir()
        self.start()
        return evaluations


# --- what each tool records at T --------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """A recorded value and when it was evaluated (seconds from ``T``, zero or negative)."""

    value: float
    end: float


@dataclass(frozen=True)
class Measure:
    """What one tool records for one SLO: a burn rate over ``window``, or the SLI over the
    period (``window`` None), with the instant it was evaluated at."""

    window: timedelta | None
    sample: Sample | None


@dataclass(frozen=True)
class Reading:
    """One tool's value for one SLO and window, and the exact value at the same instant."""

    tool: str
    slo: str
    window: str  # "30d sli" for the period's SLI, else the window of a burn rate
    value: float | None
    exact: Fraction


def _budget(slo: SLO) -> Fraction:
    return Fraction(Decimal(1) - Decimal(repr(slo.target)))


STANDARD_WINDOWS = tuple(parse_duration(w) for w in ("5m", "30m", "1h", "2h", "6h", "1d", "3d"))


def _scaled(sample: Sample | None, divisor: float | None) -> Sample | None:
    if sample is None or not divisor:
        return None
    return Sample(value=sample.value / divisor, end=sample.end)


def _complement(sample: Sample | None) -> Sample | None:
    return None if sample is None else Sample(value=1 - sample.value, end=sample.end)


def read_ours(server: Server, slo: SLO, at: datetime) -> list[Measure]:
    selector = f'{{service="{slo.service}",slo="{slo.name}"}}'
    found = [
        Measure(w, server.sample(f"slo:burn_rate:rate{format_duration(w)}{selector}", at))
        for w in (*STANDARD_WINDOWS, PERIOD)
    ]
    ratio = server.sample(f"slo:sli_error:ratio_rate30d{selector}", at)
    return [*found, Measure(None, _complement(ratio))]


def read_sloth(server: Server, slo: SLO, at: datetime) -> list[Measure]:
    """Sloth records error ratios; its alerts divide them by its recorded budget."""
    selector = f'{{sloth_service="{slo.service}",sloth_slo="{slo.name}"}}'
    budget = server.sample(f"slo:error_budget:ratio{selector}", at)
    found = [
        Measure(
            w,
            _scaled(
                server.sample(f"slo:sli_error:ratio_rate{format_duration(w)}{selector}", at),
                None if budget is None else budget.value,
            ),
        )
        for w in (*STANDARD_WINDOWS, PERIOD)
    ]
    ratio = server.sample(f"slo:sli_error:ratio_rate30d{selector}", at)
    return [*found, Measure(None, _complement(ratio))]


def read_pyrra(server: Server, slo: SLO, at: datetime, rules: RuleSet) -> list[Measure]:
    """Pyrra's ``<metric>:burnrate<w>`` records are error ratios; its alerts compare them with
    factor x (1 - target). Its SLI is ``pyrra_availability`` (``--generic-rules``)."""
    budget = float(_budget(slo))
    found: list[Measure] = []
    for rule in rules.rules:
        if rule.group != slo.name or ":burnrate" not in rule.record:
            continue
        window = parse_duration(rule.record.rsplit(":burnrate", 1)[1])
        sample = server.sample(f'{rule.record}{{slo="{slo.name}"}}', at)
        found.append(Measure(window, _scaled(sample, budget)))
    return [*found, Measure(None, server.sample(f'pyrra_availability{{slo="{slo.name}"}}', at))]


def readings(
    server: Server,
    slos: Sequence[SLO],
    pyrra: RuleSet,
    history: History,
    *,
    at: datetime,
    left_open: bool,
) -> list[Reading]:
    found: list[Reading] = []
    for slo in slos:
        by_tool = {
            "ours": read_ours(server, slo, at),
            "sloth": read_sloth(server, slo, at),
            "pyrra": read_pyrra(server, slo, at, pyrra),
        }
        budget = _budget(slo)
        for tool, measures in by_tool.items():
            for measure in measures:
                sample = measure.sample
                end = 0.0 if sample is None else sample.end
                value = None if sample is None else sample.value
                window = measure.window or PERIOD
                ratio = history.error_ratio(slo.name, end=end, window=window, left_open=left_open)
                if measure.window is None:
                    found.append(Reading(tool, slo.name, "30d sli", value, 1 - ratio))
                else:
                    label = format_duration(measure.window)
                    found.append(Reading(tool, slo.name, label, value, ratio / budget))
    return found


def relative_error(reading: Reading) -> float:
    if reading.value is None:
        return math.inf
    if reading.exact == 0:
        return 0.0 if reading.value == 0 else math.inf
    return float(abs(Fraction(reading.value) - reading.exact) / abs(reading.exact))


# --- evaluation cost --------------------------------------------------------------------------


def live_cost(
    server: Server, sets: Sequence[RuleSet], *, seconds: float
) -> dict[str, tuple[float, float]]:
    """Per tool: (seconds of rule evaluation per round, per hour at the groups' own intervals),
    from Prometheus' ``evaluationTime`` of each group, median over the live rounds."""
    files: dict[str, str] = {}
    own_interval: dict[str, timedelta] = {}
    for rule_set in sets:
        for name, text in rule_set.files.items():
            document = yaml.safe_load(text)
            for group in document["groups"]:
                own_interval[group["name"]] = (
                    parse_duration(group["interval"]) if "interval" in group else DEFAULT_INTERVAL
                )
                group["interval"] = "10s"
            files[f"{rule_set.tool}-{name}"] = yaml.safe_dump(document, sort_keys=False)
    server.stop()
    server.start(files)
    samples: dict[tuple[str, str], dict[str, float]] = {}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(5)
        groups = server.client.get("/api/v1/rules").json()["data"]["groups"]
        for group in groups:
            tool = Path(group["file"]).name.split("-", 1)[0]
            seen = samples.setdefault((tool, group["name"]), {})
            if group["lastEvaluation"].startswith("0001"):
                continue
            seen[group["lastEvaluation"]] = float(group["evaluationTime"])
    cost: dict[str, tuple[float, float]] = {}
    for tool in TOOLS:
        per_round = 0.0
        per_hour = 0.0
        for (owner, name), seen in samples.items():
            if owner != tool or not seen:
                continue
            median = statistics.median(seen.values())
            per_round += median
            per_hour += median * timedelta(hours=1) / own_interval[name]
        cost[tool] = (per_round, per_hour)
    return cost


# --- main -------------------------------------------------------------------------------------


def _peer(settings: StackSettings, name: str, key: str) -> Path:
    version = settings.versions.get(key)
    binary = settings.cache_dir / "bin" / f"{name}-{version}"
    if version is None or not binary.exists():
        raise SystemExit(
            f"{binary} is missing: run deploy/build-slo-peers.sh (make bench-slo does)"
        )
    return binary


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"


def _err(value: float) -> str:
    return "-" if math.isinf(value) else f"{value:.1e}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--live-seconds", type=float, default=60.0)
    args = parser.parse_args()
    console = Console(width=160)
    settings = StackSettings()
    sloth_binary = _peer(settings, "sloth", "SLOTH_VERSION")
    pyrra_binary = _peer(settings, "pyrra", "PYRRA_VERSION")

    ours = parse_slos([SpecSource(name="ours.yaml", text=OURS)])
    for name, text in (("sloth.yml", SLOTH), ("pyrra.yaml", PYRRA)):
        same = parse_slos([SpecSource(name=name, text=text)])
        assert [_sli(s) for s in same] == [_sli(s) for s in ours], f"{name} differs from ours"

    at = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=1)
    history = History.build(seed=args.seed)
    base = Path(tempfile.mkdtemp(prefix="bench-slo-"))
    base.chmod(0o755)
    started = time.monotonic()
    sets = [
        our_rules(ours),
        sloth_rules(sloth_binary, base),
        pyrra_rules(pyrra_binary, base),
    ]
    for rule_set in sets:
        rule_set.parse()
    server = Server(settings=settings, workdir=base / "prometheus", history=history.openmetrics(at))
    try:
        server.start()
        version = server.version()
        left_open = int(version.split(".")[0]) >= 3
        console.print(
            f"Prometheus {version}, {HISTORY.days} days of history up to {at:%Y-%m-%d %H:%M} UTC"
        )
        all_rules = [r for s in sets for r in s.rules]
        for number, members in enumerate(plan(all_rules), start=1):
            evaluations = server.backfill_rules(members, at=at)
            longest = max(span for _, span in members)
            console.print(
                f"pass {number}: {len(members)} recording rules, {evaluations} evaluations "
                f"(over {format_duration(max(longest, SETTLE))} before T)"
            )
        found = readings(server, ours, sets[2], history, at=at, left_open=left_open)
        cost = live_cost(server, sets, seconds=args.live_seconds)
    finally:
        server.close()
        shutil.rmtree(base, ignore_errors=True)
    print_results(console, found, cost, slos=len(ours), elapsed=time.monotonic() - started)


def _sli(slo: SLO) -> tuple[str, str, float, timedelta]:
    sli = slo.sli
    assert isinstance(sli, PrometheusRatioSLI)
    part = sli.bad if sli.bad is not None else sli.good
    assert part is not None
    return (slo.key, part.render() + " / " + sli.total.render(), slo.target, slo.period)


def print_results(
    console: Console,
    found: Sequence[Reading],
    cost: Mapping[str, tuple[float, float]],
    *,
    slos: int,
    elapsed: float,
) -> None:
    table = Table(
        title="Burn rate of each window and 30-day SLI at T: each tool against the exact value",
        caption="exact: at the instant our rule was evaluated; each tool's error is against the "
        "exact value at the instant its own rule was evaluated",
    )
    for column in (
        "slo",
        "window",
        "exact",
        *(f"{t}" for t in TOOLS),
        *(f"{t} rel. error" for t in TOOLS),
    ):
        table.add_column(column, justify="left" if column in ("slo", "window") else "right")
    keys = sorted(
        {(r.slo, r.window) for r in found}, key=lambda k: (k[0], k[1] == "30d sli", _order(k[1]))
    )
    for slo, window in keys:
        row = {r.tool: r for r in found if (r.slo, r.window) == (slo, window)}
        exact = next(iter(row.values())).exact
        table.add_row(
            slo,
            window,
            f"{float(exact):.6g}",
            *(_fmt(row[t].value) if t in row else "" for t in TOOLS),
            *(_err(relative_error(row[t])) if t in row else "" for t in TOOLS),
        )
    console.print(table)
    figures: dict[str, Any] = {"slos": slos}
    for tool in TOOLS:
        mine = [r for r in found if r.tool == tool]
        figures[f"{tool}_sli_rel_error"] = max(
            relative_error(r) for r in mine if r.window == "30d sli"
        )
        for reading in mine:
            if reading.window == "30d sli":
                continue
            key = f"{tool}_burn_{reading.window}_rel_error"
            figures[key] = max(figures.get(key, 0.0), relative_error(reading))
        per_round, per_hour = cost[tool]
        figures[f"{tool}_rule_eval_seconds_per_round_per_slo"] = per_round / slos
        figures[f"{tool}_rule_eval_seconds_per_hour_per_slo"] = per_hour / slos
    cost_table = Table(title="Rule evaluation cost (Prometheus' evaluationTime), per SLO")
    for column in ("tool", "per round", "per hour at the groups' own intervals"):
        cost_table.add_column(column, justify="left" if column == "tool" else "right")
    for tool in TOOLS:
        cost_table.add_row(
            tool,
            f"{cost[tool][0] / slos * 1000:.2f} ms",
            f"{cost[tool][1] / slos:.2f} s",
        )
    console.print(cost_table)
    figures["elapsed_seconds"] = round(elapsed, 1)
    figures = {k: None if isinstance(v, float) and math.isinf(v) else v for k, v in figures.items()}
    print(json.dumps(figures))  # noqa: T201 - the benchmark's last line


def _order(window: str) -> float:
    return 0.0 if window == "30d sli" else parse_duration(window).total_seconds()


if __name__ == "__main__":
    main()
