"""Where the local backends live on this machine, and as whom they run.

Every path can be overridden with an environment variable (prefix ``STACK_``), which is also how a
test makes a backend unstartable on purpose (``STACK_REDIS_SERVER=/nonexistent``).
"""

from __future__ import annotations

import os
import pwd
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[2]
VERSIONS_FILE = REPO_ROOT / "deploy" / "versions.env"

#: The unprivileged account that PostgreSQL and Elasticsearch run as when we are root (both refuse
#: to run as root). ``make bootstrap`` creates it.
SERVICE_USER = "slostack"


def read_versions(path: Path = VERSIONS_FILE) -> dict[str, str]:
    """Parse ``deploy/versions.env`` (KEY=VALUE lines, ``#`` comments, optional double quotes)."""
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        values[key.strip()] = value.strip().strip('"')
    return values


def default_cache_dir() -> Path:
    """Downloads and builds are cached outside the git tree.

    As root the cache lives under ``/var/cache`` so that the unprivileged service account can read
    the Elasticsearch distribution; otherwise under the user's XDG cache folder.
    """
    if os.geteuid() == 0:
        return Path("/var/cache/inventory-slo")
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "inventory-slo"


def _default_pg_bindir() -> Path:
    root = Path("/usr/lib/postgresql")
    if root.is_dir():
        versions = sorted(
            (p for p in root.iterdir() if (p / "bin" / "postgres").exists()),
            key=lambda p: int(p.name) if p.name.isdigit() else 0,
        )
        if versions:
            return versions[-1] / "bin"
    return root / "15" / "bin"


def _default_java_home() -> Path:
    for candidate in (
        Path("/usr/lib/jvm/java-17-openjdk-amd64"),
        Path("/usr/lib/jvm/java-17-openjdk-arm64"),
    ):
        if (candidate / "bin" / "java").exists():
            return candidate
    return Path("/usr/lib/jvm/java-17-openjdk-amd64")


#: Keycloak 26 runs on Java 21 or later (Debian bookworm's OpenJDK 17 is too old).
KEYCLOAK_MIN_JAVA = 21


def java_feature_version(java_home: Path) -> int | None:
    """The feature version (17, 21, 25, ...) of the JDK or JRE at ``java_home``, read from its
    ``release`` file; None when there is no Java there."""
    release = java_home / "release"
    if not (java_home / "bin" / "java").exists() or not release.is_file():
        return None
    for line in release.read_text(encoding="utf-8", errors="replace").splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "JAVA_VERSION":
            head = value.strip().strip('"').split(".")[0]
            return int(head) if head.isdigit() else None
    return None


def find_java_home(minimum: int, *, root: Path = Path("/usr/lib/jvm")) -> Path | None:
    """The newest Java >= ``minimum`` under ``root`` (Temurin preferred at equal versions)."""
    if not root.is_dir():
        return None
    found: list[tuple[int, bool, str, Path]] = []
    for candidate in root.iterdir():
        if candidate.is_symlink():
            continue
        version = java_feature_version(candidate)
        if version is not None and version >= minimum:
            found.append((version, "temurin" in candidate.name, candidate.name, candidate))
    return max(found)[3] if found else None


def _default_keycloak_java_home() -> Path:
    return find_java_home(KEYCLOAK_MIN_JAVA) or Path("/usr/lib/jvm/temurin-21-jdk-amd64")


def _default_run_as() -> str | None:
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SERVICE_USER)
    except KeyError:
        return None
    return SERVICE_USER


class StackSettings(BaseSettings):
    """Locations of the backend binaries (``STACK_*`` environment variables override each)."""

    model_config = SettingsConfigDict(env_prefix="STACK_", frozen=True)

    cache_dir: Path = Field(default_factory=default_cache_dir)
    pg_bindir: Path = Field(default_factory=_default_pg_bindir)
    redis_server: Path = Path("/usr/bin/redis-server")
    prometheus: Path = Path("/usr/bin/prometheus")
    promtool: Path = Path("/usr/bin/promtool")
    alertmanager: Path = Path("/usr/bin/prometheus-alertmanager")
    java_home: Path = Field(default_factory=_default_java_home)
    elasticsearch_home: Path | None = None
    #: Keycloak's distribution, built once by ``make bootstrap``; default: in the cache.
    keycloak_home: Path | None = None
    #: A Java >= 21 for Keycloak; default: the newest found under /usr/lib/jvm.
    keycloak_java_home: Path = Field(default_factory=_default_keycloak_java_home)
    jaeger: Path | None = None
    #: kustomize (renders deploy/k8s); default: the versioned build of ``make bootstrap``.
    kustomize: Path | None = None
    #: vegeta (the benchmarks' open-loop HTTP load); default: the versioned build of
    #: ``make bootstrap``.
    vegeta: Path | None = None
    #: Folder of the Kubernetes binaries (etcd, kube-apiserver, ..., kwok, metrics-server);
    #: default: the versioned builds of ``make bootstrap`` in the cache.
    kubernetes_bin_dir: Path | None = None
    #: Patroni's virtualenv (``bin/patroni``, ``bin/patronictl``); default: the versioned
    #: install of ``make bootstrap`` in the cache.
    patroni_home: Path | None = None
    #: The stack's Patroni cluster commits synchronously (a failover loses no acknowledged
    #: write); applied to the running cluster's configuration at every ``stack up``.
    patroni_synchronous_mode: bool = True
    #: etcd without fsync (tests and the demo: no durability against power loss needed).
    etcd_unsafe_no_fsync: bool = True
    #: Account for PostgreSQL and Elasticsearch when running as root (they refuse root).
    run_as: str | None = Field(default_factory=_default_run_as)
    elasticsearch_heap: str = "512m"
    #: Seconds to wait for a backend to become healthy.
    start_timeout: float = 120.0
    #: Seconds to wait for Keycloak (a JVM importing its realms: 25-100 s on 2 busy cores).
    keycloak_start_timeout: float = 300.0

    @field_validator("elasticsearch_heap")
    @classmethod
    def _heap_format(cls, value: str) -> str:
        if not value[:-1].isdigit() or value[-1] not in "mg":
            raise ValueError("elasticsearch_heap must look like 512m or 1g")
        return value

    @property
    def versions(self) -> dict[str, str]:
        return read_versions()

    def es_home(self) -> Path:
        if self.elasticsearch_home is not None:
            return self.elasticsearch_home
        version = self.versions.get("ES_VERSION", "unknown")
        return self.cache_dir / f"elasticsearch-{version}"

    def keycloak_dist(self) -> Path:
        if self.keycloak_home is not None:
            return self.keycloak_home
        version = self.versions.get("KEYCLOAK_VERSION", "unknown")
        return self.cache_dir / f"keycloak-{version}"

    def jaeger_binary(self) -> Path:
        if self.jaeger is not None:
            return self.jaeger
        release = self.versions.get("JAEGER_RELEASE", "unknown")
        return self.cache_dir / "bin" / f"jaeger-{release}"

    def kubernetes_binary(self, name: str, version_key: str) -> Path:
        """``<cache>/bin/<name>-<version>`` as ``make bootstrap`` builds it (``version_key``
        names the version in ``deploy/versions.env``), or ``<kubernetes_bin_dir>/<name>``."""
        if self.kubernetes_bin_dir is not None:
            return self.kubernetes_bin_dir / name
        version = self.versions.get(version_key, "unknown")
        return self.cache_dir / "bin" / f"{name}-{version}"

    def kustomize_binary(self) -> Path:
        if self.kustomize is not None:
            return self.kustomize
        version = self.versions.get("KUSTOMIZE_VERSION", "unknown")
        return self.cache_dir / "bin" / f"kustomize-{version}"

    def vegeta_binary(self) -> Path:
        if self.vegeta is not None:
            return self.vegeta
        version = self.versions.get("VEGETA_VERSION", "unknown")
        return self.cache_dir / "bin" / f"vegeta-{version}"

    def patroni_binary(self, name: str = "patroni") -> Path:
        """``patroni`` or ``patronictl`` of the Patroni install."""
        if self.patroni_home is not None:
            return self.patroni_home / "bin" / name
        version = self.versions.get("PATRONI_VERSION", "unknown")
        return self.cache_dir / f"patroni-{version}" / "bin" / name
