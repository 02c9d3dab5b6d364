"""``controlplane slo validate`` and ``controlplane slo generate`` (the Typer sub-app)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from controlplane.commands.slo import app
from controlplane.core.specs import load_spec_paths
from slo.rules import generate_rule_files

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]
SPECS = ROOT / "slo" / "specs"

BAD_TARGET = """\
apiVersion: controlplane.slo/v1
kind: SLO
metadata: {name: a}
spec:
  service: s
  tier: batch
  objective: 1.5
  window: 30d
  sli: {ratio: {bad: 'x{ok="0"}', total: x}}
"""


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_validate_lists_the_slos() -> None:
    code, out, err = _run("validate", str(SPECS))
    assert code == 0, err
    for key in (
        "inventory/api-availability",
        "inventory/read-latency",
        "inventory/ingestion-freshness",
        "inventory/worker-apply-success",
        "inventory/log-error-events",
    ):
        assert key in out
    assert "valid: 5 SLO(s) in 4 file(s)" in out


def test_validate_reports_every_problem_and_exits_2(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(BAD_TARGET)
    (tmp_path / "b.yml").write_text("apiVersion: openslo/v1\nkind: Widget\n")
    missing = tmp_path / "missing.yaml"
    code, _, err = _run("validate", str(tmp_path), str(missing))
    assert code == 2
    assert err.splitlines() == [
        f"{tmp_path / 'a.yaml'}: spec.objective: target must be strictly between 0 and 1, got 1.5",
        f"{tmp_path / 'b.yml'}: kind: unknown kind 'Widget' for openslo/v1: "
        "expected SLO, SLI, Service, AlertPolicy, AlertCondition, AlertNotificationTarget, "
        "DataSource",
        f"{missing}: (file): no such file or directory",
        "3 problem(s) found",
    ]


def test_validate_empty_folder_is_an_error(tmp_path: Path) -> None:
    code, _, err = _run("validate", str(tmp_path))
    assert code == 2
    assert err.splitlines()[0] == f"{tmp_path}: (folder): no .yaml or .yml files"


def test_generate_writes_one_file_per_service(tmp_path: Path) -> None:
    out = tmp_path / "rules"
    code, stdout, err = _run("generate", str(SPECS), "--out", str(out))
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["inventory.rules.yml"]
    (expected,) = generate_rule_files(load_spec_paths([SPECS]))
    assert (out / "inventory.rules.yml").read_text() == expected.content
    assert f"wrote {out / 'inventory.rules.yml'}: 80 recording rules, 20 alerts" in stdout
    assert "no Prometheus rules for inventory/log-error-events" in stdout


def test_generate_twice_is_byte_identical(tmp_path: Path) -> None:
    _run("generate", str(SPECS), "--out", str(tmp_path / "one"))
    _run("generate", str(SPECS), "--out", str(tmp_path / "two"))
    one = (tmp_path / "one" / "inventory.rules.yml").read_bytes()
    assert one == (tmp_path / "two" / "inventory.rules.yml").read_bytes()


def test_generate_check_detects_stale_files(tmp_path: Path) -> None:
    code, _, _ = _run("generate", str(SPECS), "--out", str(tmp_path))
    assert code == 0
    code, out, _ = _run("generate", str(SPECS), "--out", str(tmp_path), "--check")
    assert (code, "up to date: 1 file(s)" in out) == (0, True)
    (tmp_path / "inventory.rules.yml").write_text("groups: []\n")
    code, _, err = _run("generate", str(SPECS), "--out", str(tmp_path), "--check")
    assert code == 1
    assert err.strip() == f"{tmp_path / 'inventory.rules.yml'}: out of date"


def test_generate_with_invalid_specs_writes_nothing(tmp_path: Path) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text(BAD_TARGET)
    out = tmp_path / "rules"
    code, _, err = _run("generate", str(spec), "--out", str(out))
    assert code == 2
    assert err.splitlines()[0].startswith(f"{spec}: spec.objective: ")
    assert not out.exists()


def test_generate_requires_out() -> None:
    code, _, _ = _run("generate", str(SPECS))
    assert code == 2
