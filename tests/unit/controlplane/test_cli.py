"""The ``controlplane`` command line loads a sub-command's module only when it runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[3]

#: What only ``serve``, ``stack`` and ``drill`` need: an SLO command must not wait for them.
HEAVY = ["fastapi", "uvicorn", "apscheduler", "elasticsearch", "sqlalchemy", "controlplane.stack"]

PROGRAM = """
import json, sys
from typer.testing import CliRunner
from controlplane.cli import app
heavy = json.loads(sys.argv[1])
result = CliRunner().invoke(app, sys.argv[2:])
print(json.dumps({"exit": result.exit_code, "output": result.output,
                  "loaded": [m for m in heavy if m in sys.modules]}))
"""


def run(*args: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM, json.dumps(HEAVY), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    answer: dict[str, object] = json.loads(done.stdout.splitlines()[-1])
    return answer


def test_an_slo_command_runs_without_loading_the_server_or_the_stack() -> None:
    answer = run("slo", "validate", "slo/specs")
    assert answer["exit"] == 0, answer["output"]
    assert "valid:" in str(answer["output"])
    assert answer["loaded"] == []


def test_help_lists_every_command_and_an_unknown_one_is_refused() -> None:
    listed = run("--help")
    for name in ("drill", "serve", "slo", "stack", "token"):
        assert name in str(listed["output"])
    unknown = run("nope")
    assert unknown["exit"] == 2
    assert "No such command" in str(unknown["output"])
