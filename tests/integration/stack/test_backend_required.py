"""A backend that cannot start: a failure naming it in CI mode, a skip with the reason elsewhere."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
SMOKE = "tests/integration/stack/test_smoke.py::test_redis_set_then_get"
BROKEN = "/nonexistent/bin/redis-server"


def run_smoke(**env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in {"CI", "REQUIRE_BACKENDS"}}
    clean.update(env, STACK_REDIS_SERVER=BROKEN)
    return subprocess.run(
        [sys.executable, "-m", "pytest", SMOKE, "-p", "no:cacheprovider", "-rs", "-q"],
        cwd=REPO,
        env=clean,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.parametrize("env", [{"CI": "true"}, {"REQUIRE_BACKENDS": "1"}])
def test_ci_mode_fails_and_names_the_backend(env: dict[str, str]) -> None:
    done = run_smoke(**env)
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "backend redis could not start" in output
    assert BROKEN in output
    assert "1 error" in output


def test_without_ci_mode_the_test_is_skipped_with_the_reason() -> None:
    done = run_smoke()
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "1 skipped" in output
    assert "backend redis could not start" in output
    assert BROKEN in output
