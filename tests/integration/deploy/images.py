"""What the deploy tests read without any tool: the Dockerfile's stages, the raw base manifests and
the environment variable names the processes really read."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from app.core.config import Settings
from controlplane.core.config import environment_names

REPO = Path(__file__).resolve().parents[3]
DOCKERFILE = REPO / "deploy" / "docker" / "Dockerfile"
K8S_BASE = REPO / "deploy" / "k8s" / "base"
#: The build targets, one per process of the product.
TARGETS = ("app", "worker", "controlplane", "dashboards")
#: Where the images keep the probe script (deploy/docker/httpprobe.py).
PROBE_IN_IMAGE = "/opt/inventory-slo/httpprobe.py"


@dataclass
class Stage:
    name: str
    parent: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, instruction: str) -> list[str]:
        return [args for name, args in self.instructions if name == instruction]


def _logical_lines(text: str) -> list[str]:
    """Dockerfile lines with comments dropped and backslash continuations joined."""
    lines: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        lines.append(pending + line)
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    return lines


def dockerfile_stages(path: Path = DOCKERFILE) -> dict[str, Stage]:
    stages: dict[str, Stage] = {}
    current: Stage | None = None
    for line in _logical_lines(path.read_text(encoding="utf-8")):
        instruction, _, args = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            match = re.fullmatch(r"(\S+)(?:\s+AS\s+(\S+))?", args.strip(), flags=re.IGNORECASE)
            assert match is not None, line
            assert match[2], f"every stage is named: {line}"
            current = Stage(name=match[2], parent=match[1])
            stages[current.name] = current
        elif instruction != "ARG" or current is not None:
            assert current is not None, f"{line} before the first FROM"
            current.instructions.append((instruction, args.strip()))
    return stages


def effective(stages: dict[str, Stage], target: str, instruction: str) -> str | None:
    """The last value of ``instruction`` in ``target`` or the stages it is built FROM."""
    stage: Stage | None = stages[target]
    seen = 0
    while stage is not None and seen < len(stages):
        values = stage.all(instruction)
        if values:
            return values[-1]
        stage = stages.get(stage.parent)
        seen += 1
    return None


def base_manifests() -> list[dict[str, Any]]:
    """The objects of deploy/k8s/base as written (before kustomize)."""
    objects: list[dict[str, Any]] = []
    for path in sorted(K8S_BASE.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        objects.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc)
    return objects


def inventory_variables() -> set[str]:
    """INVENTORY_* names the API and the workers read: settings fields and app.serve options."""
    fields = {f"INVENTORY_{name.upper()}" for name in Settings.model_fields}
    serve = (REPO / "app" / "serve.py").read_text(encoding="utf-8")
    options = set(re.findall(r"os\.environ\.get\(\"(INVENTORY_[A-Z_]+)\"", serve))
    assert options, "app/serve.py reads no INVENTORY_* option any more: update this helper"
    return fields | options


def controlplane_variables() -> set[str]:
    return set(environment_names())
