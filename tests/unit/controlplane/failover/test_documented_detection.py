"""The failure detection the READMEs describe is the one the control plane runs by default."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from controlplane.core.config import FailoverSettings
from controlplane.failover.run import watch_primary

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[4]


def _defaults() -> tuple[int, float]:
    fields = FailoverSettings.model_fields
    threshold = fields["failover_probe_threshold"].default
    interval = fields["failover_probe_interval_seconds"].default
    assert isinstance(threshold, int)
    assert isinstance(interval, float)
    return threshold, interval


def test_readme_states_the_default_probe_count_and_interval() -> None:
    text = " ".join((REPO / "README.md").read_text(encoding="utf-8").split())
    found = re.search(
        r"consecutive failed probes \(by default (\d+), ([\d.]+) s apart, each waiting at most"
        r" ([\d.]+) s",
        text,
    )
    assert found is not None, "README.md: failover detection sentence not found"
    assert (int(found[1]), float(found[2])) == _defaults()
    probe_timeout = inspect.signature(watch_primary).parameters["probe_timeout"].default
    assert float(found[3]) == probe_timeout


def test_controlplane_readme_settings_table_states_the_defaults() -> None:
    text = (REPO / "controlplane" / "README.md").read_text(encoding="utf-8")
    found = re.search(
        r"\| `CONTROLPLANE_FAILOVER_PROBE_INTERVAL_SECONDS` / "
        r"`CONTROLPLANE_FAILOVER_PROBE_THRESHOLD` \| `([\d.]+)` / `(\d+)` \|",
        text,
    )
    assert found is not None, "controlplane/README.md: failover probe settings row not found"
    assert (int(found[2]), float(found[1])) == _defaults()
