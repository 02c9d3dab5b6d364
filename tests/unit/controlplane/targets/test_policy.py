from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from controlplane.targets.policy import (
    PolicyError,
    cpu_millicores,
    load_capacity_policy,
    load_dr_policy,
    memory_bytes,
    slo_tier_policy,
)

pytestmark = pytest.mark.unit


def test_capacity_policy_carries_the_seed_numbers() -> None:
    policy = load_capacity_policy()
    inventory = policy.spec.service("inventory")
    assert inventory is not None
    assert (inventory.replicas.min, inventory.replicas.max) == (3, 20)
    assert inventory.target_cpu_percent == 70
    assert inventory.resources.requests.cpu == "200m"
    assert inventory.resources.limits.memory == "2Gi"
    planning = policy.spec.service("demand-planning")
    analytics = policy.spec.service("analytics")
    assert planning is not None
    assert analytics is not None
    assert (planning.replicas.min, planning.replicas.max, planning.target_cpu_percent) == (
        2,
        10,
        80,
    )
    assert (analytics.replicas.min, analytics.replicas.max, analytics.target_cpu_percent) == (
        2,
        8,
        75,
    )
    (pool,) = policy.spec.node_pools
    assert (pool.scale_at_cpu_percent, pool.scale_at_memory_percent) == (70, 80)


def test_dr_policy_carries_the_seed_tiers() -> None:
    tiers = load_dr_policy().spec.tiers
    assert (tiers["critical"].rto, tiers["critical"].rpo) == (
        timedelta(minutes=15),
        timedelta(minutes=5),
    )
    assert (tiers["standard"].rto, tiers["standard"].rpo) == (
        timedelta(hours=1),
        timedelta(minutes=30),
    )
    assert (tiers["batch"].rto, tiers["batch"].rpo) == (timedelta(hours=4), timedelta(hours=2))
    assert (tiers["reporting"].rto, tiers["reporting"].rpo) == (
        timedelta(hours=8),
        timedelta(hours=4),
    )
    backups = load_dr_policy().spec.backups
    assert backups.point_in_time_retention == timedelta(days=35)
    assert (backups.full_every, backups.differential_every) == (
        timedelta(days=1),
        timedelta(hours=1),
    )
    assert backups.validation_every < backups.restore_validation_max_age
    assert [check.name for check in backups.restore_checks] == [
        "no negative on-hand",
        "reservations within on-hand",
    ]


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("differential_every: 1h", "differential_every: 2d", "longer than full_every"),
        (
            "restore_validation_every: 30d",
            "restore_validation_every: 40d",
            "longer than restore_validation_max_age",
        ),
    ],
)
def test_backup_cadences_that_cannot_hold_are_refused(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    text = Path("controlplane/policies/dr.yaml").read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "dr.yaml"
    path.write_text(text.replace(old, new), encoding="utf-8")
    with pytest.raises(PolicyError, match=message):
        load_dr_policy(path)


@pytest.mark.parametrize(
    ("replace", "field"),
    [
        ("replicas: {min: 3, max: 20}", "spec.services.0.replicas"),
        ("target_cpu_percent: 70", "spec.services.0.target_cpu_percent"),
        ("cpu: 200m", "spec.services.0.resources.requests.cpu"),
    ],
)
def test_invalid_capacity_policy_names_file_and_field(
    tmp_path: Path, replace: str, field: str
) -> None:
    text = Path("controlplane/policies/capacity.yaml").read_text(encoding="utf-8")
    broken = {
        "replicas: {min: 3, max: 20}": "replicas: {min: 30, max: 20}",
        "target_cpu_percent: 70": "target_cpu_percent: 170",
        "cpu: 200m": "cpu: lots",
    }[replace]
    path = tmp_path / "capacity.yaml"
    path.write_text(text.replace(replace, broken, 1), encoding="utf-8")
    with pytest.raises(PolicyError) as caught:
        load_capacity_policy(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ")
    assert field in message


def test_bad_duration_in_dr_policy_is_refused(tmp_path: Path) -> None:
    text = Path("controlplane/policies/dr.yaml").read_text(encoding="utf-8")
    path = tmp_path / "dr.yaml"
    path.write_text(text.replace("rpo: 5m", "rpo: five minutes"), encoding="utf-8")
    with pytest.raises(PolicyError, match=r"spec\.tiers\.critical\.rpo"):
        load_dr_policy(path)


def test_missing_policy_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read"):
        load_dr_policy(tmp_path / "absent.yaml")


def test_kubernetes_quantities() -> None:
    assert cpu_millicores("200m") == 200
    assert cpu_millicores("1") == 1000
    assert cpu_millicores("0.5") == 500
    assert memory_bytes("512Mi") == 512 * 2**20
    assert memory_bytes("2Gi") == 2 * 2**30
    assert memory_bytes("1G") == 10**9
    with pytest.raises(ValueError, match="CPU quantity"):
        cpu_millicores("fast")


def test_slo_tiers_come_from_the_capacity_then_the_dr_policy(tmp_path: Path) -> None:
    policies = Path(__file__).resolve().parents[4] / "controlplane" / "policies"
    dr = tmp_path / "dr.yaml"
    dr.write_text(
        (policies / "dr.yaml")
        .read_text()
        .replace(
            "      replicas: 1          # streaming replicas expected in pg_stat_replication\n",
            "      replicas: 1\n    - name: ledger\n      tier: batch\n      replicas: 0\n",
        )
    )
    tiers = slo_tier_policy(capacity_path=policies / "capacity.yaml", dr_path=dr)
    assert tiers.tier_for("analytics") == (
        "reporting",
        "capacity policy capacity.yaml: services[analytics].tier",
    )
    assert tiers.tier_for("ledger") == ("batch", "DR policy dr.yaml: databases[ledger].tier")
    assert tiers.tier_for("search") == ("standard", "default (standard)")
