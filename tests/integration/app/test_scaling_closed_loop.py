"""The closed loop on the real inventory API: injected slowness under load → the read-latency SLO
burns in Prometheus → the control plane's engine adds gunicorn workers through TTIN → the new
worker serves traffic and the latency falls. Nothing is scripted between onset and reaction:
the engine ticks on its own, as in ``controlplane serve``."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from controlplane.actions.engine import ActionEngine
from controlplane.actions.policy import ActionPolicy, load_action_policy
from controlplane.actions.scaling_drill import run_scaling_drill
from controlplane.actions.service import ActionService
from controlplane.actions.signals import prometheus_burn_reader
from controlplane.actuators.local import LocalGunicornActuator
from controlplane.core.config import DEFAULT_ACTION_POLICY
from controlplane.core.specs import load_spec_paths
from controlplane.runtime import Runtime
from controlplane.sources.prometheus import PrometheusSource
from controlplane.store.audit import list_audit
from tests.integration.app.conftest import Stack, eventually, make_item
from tests.support.backends import PrometheusFactory
from tests.support.runtime import leading_runtime

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[3]


def quick_verification(policy: ActionPolicy) -> ActionPolicy:
    """The shipped policy with a 45 s verification (2 min in production) to keep the test short."""
    scaling = {
        name: spec.model_copy(update={"verify_after": timedelta(seconds=45)})
        for name, spec in policy.spec.scaling.items()
    }
    return policy.model_copy(update={"spec": policy.spec.model_copy(update={"scaling": scaling})})


def decisions(runtime: Runtime) -> list[tuple[str, str, str]]:
    with runtime.database.reader() as session:
        return [(e.action, e.decision, e.reason) for e in reversed(list_audit(session))]


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    with leading_runtime(tmp_path / "controlplane") as started:
        yield started


def test_injected_latency_scales_the_real_api_out_through_ttin_and_the_burn_falls(
    stack: Stack, runtime: Runtime, prometheus_factory: PrometheusFactory, tmp_path: Path
) -> None:
    faults = tmp_path / "faults.json"
    api = stack.api(workers=1, INVENTORY_FAULTS_FILE=str(faults))
    with api.client() as client:
        skus = [make_item(client) for _ in range(3)]
    prometheus = prometheus_factory(
        config={
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [
                {
                    "job_name": "inventory",
                    "static_configs": [{"targets": [f"127.0.0.1:{api.port}"]}],
                }
            ],
        }
    )
    slos = load_spec_paths([REPO_ROOT / "slo" / "specs" / "inventory-api.yaml"])
    burn = prometheus_burn_reader(PrometheusSource(url=prometheus.url, timeout=5), slos)
    actuator = LocalGunicornActuator(pidfile=api.pidfile)
    engine = ActionEngine(
        policy=quick_verification(load_action_policy(DEFAULT_ACTION_POLICY)),
        database=runtime.database,
        leadership=runtime.leadership,
        lease_name=runtime.settings.leader.leader_name,
        actuator=actuator,
        burn_reader=burn,
    )
    service = ActionService(runtime=runtime, engine=engine, interval=2.0)
    cycle = itertools.cycle(skus)
    service.start()
    try:
        result = run_scaling_drill(
            api_url=api.url,
            faults_file=faults,
            path=lambda: f"/api/v1/stock/{next(cycle)}",
            rate=15,
            service_time_ms=100,  # one worker serves 10 reads/s: 15/s is 1.5 times that
            timeout_s=150,
            settle_s=40,
        )
        assert result.reacted, f"no worker was added: {result}; audit: {decisions(runtime)}"
        print(f"\nscale reaction {result.reaction_s} s; {result}")
        # The added capacity shows: the burn over the last minute falls under the page tier.
        eventually(
            lambda: (burn("inventory", "read-latency", "1m").value or 99) < 14.4,
            timeout=150,
            interval=2,
            what="read-latency burn back under 14.4",
        )
        eventually(lambda: len(engine._verifications) == 0, timeout=60, what="verification")
    finally:
        service.stop()

    assert actuator.current_replicas("inventory") > 1
    with runtime.database.reader() as session:
        entries = list(reversed(list_audit(session)))
    taken = [e for e in entries if e.action == "scale_out" and e.decision == "taken"]
    assert taken, [(e.action, e.decision, e.reason) for e in entries]
    first = taken[0]
    assert first.outcome == "succeeded"
    assert first.evidence["result"]["via"] == "workers"
    assert first.evidence["result"]["before"] == 1
    assert first.evidence["burn_trigger"]["value"] > 14.4
    assert first.evidence["rule"] == "latency-fast-burn-scales-out"
    assert "escalate" not in [e.action for e in entries]  # the verification saw the burn drop
    assert result.after is not None
    assert result.after.over_threshold < result.during.over_threshold
    assert result.after.p95_ms is not None
    assert result.during.p95_ms is not None
    assert result.after.p95_ms < result.during.p95_ms
