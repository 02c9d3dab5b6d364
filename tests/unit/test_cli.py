from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

CLI = Path(sys.executable).with_name("controlplane")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CLI), *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_console_script_help_lists_its_sub_commands() -> None:
    done = run("--help")
    assert done.returncode == 0, done.stderr
    assert "stack" in done.stdout


def test_stack_help_lists_up_down_status_versions() -> None:
    done = run("stack", "--help")
    assert done.returncode == 0, done.stderr
    for command in ("up", "down", "status", "versions", "ports"):
        assert command in done.stdout


def test_status_of_a_stack_that_never_ran_says_stopped_and_exits_1(tmp_path: Path) -> None:
    done = run("stack", "status", "--home", str(tmp_path))
    assert done.returncode == 1
    assert "stopped" in done.stdout
    assert "patroni-member-2" in done.stdout
