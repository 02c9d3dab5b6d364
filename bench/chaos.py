"""Reliability under faults: ``make chaos``.

Runs the fault tests (``tests/chaos``, marker ``chaos``) and the API fuzzing
(``tests/integration/fuzz``) with pytest against real servers, then prints one row per fault —
what was done, what must hold, what was seen — and, last, one JSON line:

``faults``, ``faults_survived``, ``acked_lost``, ``actions_doubled``, ``destructive_on_stale``,
``fuzz_cases``, ``fuzz_5xx``, plus ``tests_failed`` and ``duration_s``.

The figures come from the tests themselves (``tests/support/figures.py``): each fault test records
what it saw before it asserts, so a fault that did not hold still shows in the table with what
went wrong. The exit status is 0 only when pytest passed and every fault was survived.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
SUITES = ("tests/chaos", "tests/integration/fuzz")


def run_tests(*, selection: str | None, figures: Path, extra: list[str]) -> int:
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-m",
        "chaos or integration",
        "-p",
        "no:cacheprovider",
        "-q",
        "-rfE",
        *SUITES,
        *(["-k", selection] if selection else []),
        *extra,
    ]
    env = {**os.environ, "FIGURES_FILE": str(figures), "REQUIRE_BACKENDS": "1"}
    return subprocess.run(command, cwd=REPO, env=env, check=False).returncode


def read_rows(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    faults: list[dict[str, Any]] = []
    fuzz: list[dict[str, Any]] = []
    if not path.exists():
        return faults, fuzz
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        (faults if row.pop("kind") == "fault" else fuzz).append(row)
    return faults, fuzz


def print_table(console: Console, faults: list[dict[str, Any]], fuzz: list[dict[str, Any]]) -> None:
    table = Table(title="Faults on real servers", show_lines=True)
    table.add_column("fault", max_width=34)
    table.add_column("what must hold", max_width=46)
    table.add_column("what was seen", max_width=62)
    table.add_column("held", justify="center")
    for row in faults:
        table.add_row(
            row["fault"], row["must_hold"], row["seen"], "yes" if row["survived"] else "NO"
        )
    for tally in fuzz:
        statuses = ", ".join(f"{code}: {n}" for code, n in sorted(tally["statuses"].items()))
        table.add_row(
            f"fuzzing: {tally['api']} API",
            "no 5xx; every answer as its OpenAPI schema says; nothing partial stored",
            f"{tally['cases']} cases ({statuses})",
            "yes" if tally["server_errors"] == 0 else "NO",
        )
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-k", dest="selection", help="only the tests pytest -k selects")
    parser.add_argument("pytest_args", nargs="*", help="passed to pytest after --")
    args = parser.parse_args()
    console = Console(width=170)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="chaos-figures-") as folder:
        figures = Path(folder) / "figures.jsonl"
        code = run_tests(selection=args.selection, figures=figures, extra=args.pytest_args)
        faults, fuzz = read_rows(figures)
    duration = time.monotonic() - started
    print_table(console, faults, fuzz)
    survived = sum(1 for row in faults if row["survived"])
    result = {
        "faults": len(faults),
        "faults_survived": survived,
        "acked_lost": sum(row["acked_lost"] for row in faults),
        "actions_doubled": sum(row["actions_doubled"] for row in faults),
        "destructive_on_stale": sum(row["destructive_on_stale"] for row in faults),
        "fuzz_cases": sum(tally["cases"] for tally in fuzz),
        "fuzz_5xx": sum(tally["server_errors"] for tally in fuzz),
        "tests_failed": code != 0,
        "duration_s": round(duration, 1),
    }
    console.print(
        f"{survived} of {len(faults)} faults survived; pytest exit status {code}; "
        f"{duration / 60:.1f} min"
    )
    sys.stdout.write(json.dumps(result) + "\n")  # the last line: one JSON object
    sys.stdout.flush()
    ok = code == 0 and faults and survived == len(faults) and result["fuzz_5xx"] == 0
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
