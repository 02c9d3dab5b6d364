"""Versioned policy files: capacity (replicas, utilisation, resources) and DR (RTO / RPO tiers).

The defaults shipped in ``controlplane/policies/`` carry the numbers of the source documents; a
deployment points ``CONTROLPLANE_CAPACITY_POLICY`` / ``CONTROLPLANE_DR_POLICY`` at its own copies.
Errors name the file and the field path.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from controlplane.core.config import DEFAULT_CAPACITY_POLICY, DEFAULT_DR_POLICY, PolicySettings
from controlplane.core.errors import ControlPlaneError
from controlplane.core.validation import Duration
from slo.spec import TierPolicy

Tier = Literal["critical", "standard", "batch", "reporting"]


class PolicyError(ControlPlaneError, ValueError):
    """A policy file is missing or invalid; the message names the file and the field."""


_CPU = re.compile(r"^(\d+(?:\.\d+)?)(m?)$")
_MEMORY = re.compile(r"^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|K|M|G|T)?$")
_MEMORY_FACTOR = {
    None: 1,
    "K": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
}


def cpu_millicores(quantity: str) -> int:
    """Kubernetes CPU quantity to millicores: ``200m`` → 200, ``1`` → 1000, ``0.5`` → 500."""
    match = _CPU.match(str(quantity).strip())
    if match is None:
        raise ValueError(f"{quantity!r} is not a CPU quantity (e.g. 200m or 1)")
    number, milli = float(match.group(1)), match.group(2)
    return round(number if milli else number * 1000)


def memory_bytes(quantity: str) -> int:
    """Kubernetes memory quantity to bytes: ``512Mi`` → 536870912."""
    match = _MEMORY.match(str(quantity).strip())
    if match is None:
        raise ValueError(f"{quantity!r} is not a memory quantity (e.g. 512Mi or 2Gi)")
    return round(float(match.group(1)) * _MEMORY_FACTOR[match.group(2)])


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _cpu_text(value: Any) -> str:
    cpu_millicores(str(value))
    return str(value)


def _memory_text(value: Any) -> str:
    memory_bytes(str(value))
    return str(value)


class Quantities(_Strict):
    cpu: Annotated[str, BeforeValidator(_cpu_text)]
    memory: Annotated[str, BeforeValidator(_memory_text)]

    def same_as(self, other: Quantities) -> bool:
        return cpu_millicores(self.cpu) == cpu_millicores(other.cpu) and memory_bytes(
            self.memory
        ) == memory_bytes(other.memory)


class Resources(_Strict):
    requests: Quantities
    limits: Quantities


class ReplicaBounds(_Strict):
    min: int = Field(ge=0)
    max: int = Field(ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> ReplicaBounds:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) is above max ({self.max})")
        return self


class ServicePolicy(_Strict):
    name: str
    tier: Tier
    replicas: ReplicaBounds
    target_cpu_percent: int = Field(gt=0, le=100)
    target_memory_percent: int | None = Field(default=None, gt=0, le=100)
    resources: Resources


class NodePool(_Strict):
    name: str
    min_nodes: int = Field(ge=0)
    max_nodes: int = Field(ge=1)
    scale_at_cpu_percent: int = Field(gt=0, le=100)
    scale_at_memory_percent: int = Field(gt=0, le=100)


class CapacitySpec(_Strict):
    namespace: str = "default"
    node_pools: tuple[NodePool, ...] = ()
    services: tuple[ServicePolicy, ...]

    def service(self, name: str) -> ServicePolicy | None:
        return next((s for s in self.services if s.name == name), None)


class Metadata(_Strict):
    name: str


class CapacityPolicy(_Strict):
    api_version: Literal["controlplane/v1"] = Field(alias="apiVersion")
    kind: Literal["CapacityPolicy"]
    metadata: Metadata
    spec: CapacitySpec


class TierTargets(_Strict):
    rto: Duration
    rpo: Duration


class RestoreCheckQuery(_Strict):
    """An invariant of the restored data: ``sql`` counts the rows that break it (0 expected)."""

    name: str = Field(min_length=1)
    sql: str = Field(min_length=1)


class BackupPolicy(_Strict):
    full_every: Duration
    differential_every: Duration
    point_in_time_retention: Duration
    restore_validation_max_age: Duration
    #: How often the control plane validates a restore (default: the allowed age, less a day).
    restore_validation_every: Duration | None = None
    #: Invariants every restored copy must hold, besides the row counts and the probe checksum.
    restore_checks: tuple[RestoreCheckQuery, ...] = ()

    @model_validator(mode="after")
    def _cadences(self) -> BackupPolicy:
        if self.differential_every > self.full_every:
            raise ValueError("differential_every is longer than full_every")
        every = self.restore_validation_every
        if every is not None and every > self.restore_validation_max_age:
            raise ValueError("restore_validation_every is longer than restore_validation_max_age")
        return self

    @property
    def validation_every(self) -> timedelta:
        if self.restore_validation_every is not None:
            return self.restore_validation_every
        return max(
            self.restore_validation_max_age - timedelta(days=1), self.restore_validation_max_age / 2
        )


class DrillPolicy(_Strict):
    max_age: Duration


class DatabasePolicy(_Strict):
    name: str
    tier: Tier
    replicas: int = Field(ge=0)


class DRSpec(_Strict):
    tiers: dict[Tier, TierTargets]
    backups: BackupPolicy
    drills: DrillPolicy
    databases: tuple[DatabasePolicy, ...]

    @model_validator(mode="after")
    def _tiers_defined(self) -> DRSpec:
        for database in self.databases:
            if database.tier not in self.tiers:
                raise ValueError(f"database {database.name} uses undefined tier {database.tier}")
        return self


class DRPolicy(_Strict):
    api_version: Literal["controlplane/v1"] = Field(alias="apiVersion")
    kind: Literal["DRPolicy"]
    metadata: Metadata
    spec: DRSpec


ModelT = TypeVar("ModelT", bound=BaseModel)


def load_policy_file(path: Path, model: type[ModelT]) -> ModelT:
    """A YAML policy file read into ``model``; PolicyError names the file and the first field
    path that is wrong."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PolicyError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise PolicyError(f"{path}: not valid YAML: {exc}") from exc
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "(document)"
        raise PolicyError(f"{path}: {field}: {first['msg']}") from exc


def load_capacity_policy(path: Path = DEFAULT_CAPACITY_POLICY) -> CapacityPolicy:
    return load_policy_file(path, CapacityPolicy)


def load_dr_policy(path: Path = DEFAULT_DR_POLICY) -> DRPolicy:
    return load_policy_file(path, DRPolicy)


def slo_tier_policy(
    *, capacity_path: Path = DEFAULT_CAPACITY_POLICY, dr_path: Path = DEFAULT_DR_POLICY
) -> TierPolicy:
    """The tier of an SLO whose spec names none, per service: the capacity policy's
    ``services[].tier``, else the tier of the DR policy's database named like the service,
    else ``slo.spec.DEFAULT_TIER`` (standard). Each tier says where it was read."""
    services: dict[str, tuple[Tier, str]] = {}
    for database in load_dr_policy(dr_path).spec.databases:
        services[database.name] = (
            database.tier,
            f"DR policy {dr_path.name}: databases[{database.name}].tier",
        )
    for service in load_capacity_policy(capacity_path).spec.services:
        services[service.name] = (
            service.tier,
            f"capacity policy {capacity_path.name}: services[{service.name}].tier",
        )
    return TierPolicy(services=services)


def slo_tiers(policies: PolicySettings) -> TierPolicy:
    """:func:`slo_tier_policy` of the configured policy files."""
    return slo_tier_policy(capacity_path=policies.capacity_policy, dr_path=policies.dr_policy)
