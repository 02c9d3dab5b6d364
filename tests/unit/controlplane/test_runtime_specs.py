"""The SLO specs are read once per process: the evaluation and the action engine share the same
models (10,000 SLOs held twice were about 60 MB more), and a bad spec still stops start-up with
every problem named."""

from __future__ import annotations

from pathlib import Path

import pytest

from controlplane.actions.service import ActionService
from controlplane.evaluation.metrics import ControlPlaneMetrics
from controlplane.evaluation.service import EvaluationService
from controlplane.runtime import Runtime
from slo.spec import SpecErrors
from tests.unit.controlplane.conftest import settings_for
from tests.unit.controlplane.evaluation.specs import native

pytestmark = pytest.mark.unit


def test_the_evaluation_and_the_action_engine_share_one_read_of_the_specs(tmp_path: Path) -> None:
    folder = tmp_path / "specs"
    folder.mkdir()
    (folder / "availability.yaml").write_text(native("availability"), encoding="utf-8")
    (folder / "checkout.yaml").write_text(native("checkout", service="cart"), encoding="utf-8")
    settings = settings_for(tmp_path, evaluation={"slo_specs": [folder]})
    runtime = Runtime.from_settings(settings)
    try:
        evaluation = EvaluationService.from_settings(
            settings, runtime=runtime, metrics=ControlPlaneMetrics()
        )
        # Gone after the first read: the action engine must not need the files again.
        for spec in folder.iterdir():
            spec.unlink()
        ActionService.from_settings(settings, runtime=runtime)

        shared = runtime.slos()
        assert sorted(slo.name for slo in shared) == ["availability", "checkout"]
        assert runtime.slos() is shared
        assert len(evaluation.evaluator.slos) == len(shared)
        assert all(
            ours is theirs for ours, theirs in zip(evaluation.evaluator.slos, shared, strict=True)
        )
    finally:
        runtime.stop()


def test_a_bad_spec_names_every_problem_before_any_service_is_built(tmp_path: Path) -> None:
    folder = tmp_path / "specs"
    folder.mkdir()
    (folder / "a.yaml").write_text(native("a", objective=1.5), encoding="utf-8")
    (folder / "b.yaml").write_text(native("b", window="zero"), encoding="utf-8")
    settings = settings_for(tmp_path, evaluation={"slo_specs": [folder]})
    runtime = Runtime.from_settings(settings)
    try:
        with pytest.raises(SpecErrors) as raised:
            ActionService.from_settings(settings, runtime=runtime)
        files = sorted(Path(error.file).name for error in raised.value.errors)
        assert files == ["a.yaml", "b.yaml"]
        with pytest.raises(SpecErrors):  # not cached: a failed read is not a configuration
            runtime.slos()
    finally:
        runtime.stop()
