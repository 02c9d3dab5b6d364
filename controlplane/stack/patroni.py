"""PostgreSQL as a Patroni cluster on loopback: an etcd for the leader lease and two or more
Patroni members, each running its own PostgreSQL (``make bootstrap`` installs Patroni from
PyPI into a virtualenv of its own; etcd is the project's one etcd build).

Patroni, not this module, decides who leads: this module only writes each member's
configuration, starts and stops the processes, and reads Patroni's REST API to say when the
cluster is ready. Faults for tests and benchmarks (a SIGKILLed postmaster, a SIGKILLed member, a
member frozen past its lease) act on the real processes.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar

import httpx
import psycopg
import yaml

from controlplane.core.processes import (
    BackendStartError,
    free_ports,
    kill_processes_under,
    postmaster_pid,
)
from controlplane.stack.backends import BOOTSTRAP_HINT, PROBE_ERRORS, Backend, Etcd
from controlplane.stack.settings import StackSettings
from slo.maths import SRE_WORKBOOK_WINDOWS

#: The Patroni cluster's name (``scope``): its keys live under ``/service/<scope>/`` in etcd.
SCOPE = "inventory"
#: The superuser every member and client connects as (trust on loopback).
SUPERUSER = "postgres"


@dataclass(frozen=True, kw_only=True)
class PatroniTiming:
    """Patroni's HA loop timing (seconds), checked against Patroni's own rules.

    - ``ttl``: the leader lease. Only once it expires may a replica take over, so a lost
      primary member (host, Patroni and PostgreSQL gone at once) is replaced at most ``ttl``
      after the failure (its last renewal was at most ``loop_wait`` before it); the other
      members watch the key in etcd and race as soon as it is gone. It is also how long a
      primary whose Patroni stalls (CPU starvation, a paused VM) keeps its role.
    - ``loop_wait``: the pause between two runs of each member's HA loop: how soon a crashed
      postmaster is noticed (within two loops), a switchover acted on, a rejoin begun.
    - ``retry_timeout``: how long etcd and PostgreSQL calls are retried before the member
      gives up: how long etcd may be out of reach before a primary demotes itself.
    - ``primary_start_timeout``: how long a crashed primary may take to start again in place
      before a failover is preferred; 0 fails over at once when a synchronous standby (or,
      without synchronous mode, a replica within ``maximum_lag_on_failover``) can take over.

    Patroni's rule ``loop_wait + 2 x retry_timeout <= ttl`` makes a primary cut off from etcd
    demote itself before its lease expires, so two primaries never hold the role at once.
    ``docs/failover-tuning.md`` explains how the stack chooses these numbers.
    """

    ttl: int = 30
    loop_wait: int = 10
    retry_timeout: int = 10
    primary_start_timeout: int = 300

    def __post_init__(self) -> None:
        problems = []
        if self.ttl < 20:
            problems.append(f"ttl {self.ttl} < 20")
        if self.loop_wait < 1:
            problems.append(f"loop_wait {self.loop_wait} < 1")
        if self.retry_timeout < 3:
            problems.append(f"retry_timeout {self.retry_timeout} < 3")
        if self.loop_wait + 2 * self.retry_timeout > self.ttl:
            problems.append(
                f"loop_wait + 2 x retry_timeout = {self.loop_wait + 2 * self.retry_timeout} "
                f"> ttl {self.ttl}"
            )
        if self.primary_start_timeout < 0:
            problems.append(f"primary_start_timeout {self.primary_start_timeout} < 0")
        if problems:
            raise ValueError("Patroni timing refused: " + "; ".join(problems))

    def as_dcs(self) -> dict[str, int]:
        return asdict(self)


#: Patroni's own defaults: the baseline the benchmark measures against.
PATRONI_DEFAULT_TIMING = PatroniTiming()

#: Seconds from a free leader key to the first write a client gets on the new primary: the
#: candidate's promotion (0.2-0.6 s measured by ``make bench-failover``) and the client's
#: reconnect, with margin for a loaded machine.
PROMOTION_MARGIN_S = 2
#: Patroni's shortest lease.
MIN_TTL = 20


def worst_failover_s(timing: PatroniTiming) -> float:
    """The longest a client waits for a writable primary after one failure with ``timing``: a
    lost primary member is replaced once its lease expires (at most ``ttl`` later); a crashed
    postmaster is noticed within two HA loops and restarted in place for up to
    ``primary_start_timeout`` before a replica takes over. Each ends with a promotion."""
    crash = 2 * timing.loop_wait + timing.primary_start_timeout
    return max(timing.ttl, crash) + PROMOTION_MARGIN_S


def page_free_outage_s(objective: float, *, period: timedelta = timedelta(days=30)) -> float:
    """Half the longest total outage an SLO of ``objective`` over ``period`` absorbs without
    its fast-burn page firing: that page (SRE Workbook, :data:`slo.maths.SRE_WORKBOOK_WINDOWS`)
    fires once one hour spends 2 % of the period's error budget, e.g. 51.84 s of failing
    requests at 99.9 % over 30 days. Half leaves room for the clients' retries and a second,
    unrelated blip in the same hour: one failover alone does not page."""
    pages = [(long, share) for kind, long, _, share in SRE_WORKBOOK_WINDOWS if kind == "page"]
    _, share = min(pages)  # the fast page: the shortest long window
    return float(share) * period.total_seconds() * (1 - objective) / 2


def timing_for_rto(rto_s: float, *, synchronous: bool = True) -> PatroniTiming:
    """The Patroni timing whose worst single failure (:func:`worst_failover_s`) costs a client
    at most ``rto_s`` seconds without a writable primary, the most tolerant one that fits.

    - A budget that Patroni's defaults meet gets them: the longest lease and retries.
    - Otherwise ``loop_wait`` 1 (a crash is noticed within two seconds); the longest lease that
      fits, never longer than Patroni's 30 s (beyond it a longer lease only lengthens the
      outage of every lost member); the longest ``retry_timeout`` Patroni's rule allows (etcd
      may be out of reach that long before the primary demotes itself); and, with synchronous
      replication, ``primary_start_timeout`` 0: the synchronous standby has every
      acknowledged commit, so failing over to it (measured 2-3 s) beats crash recovery, whose
      length grows with the WAL written since the last checkpoint. Without synchronous
      replication a failover may lose acknowledged writes, so a crashed primary is restarted in
      place for whatever the budget leaves.

    Raises ValueError when no timing fits: the lease is at least 20 s.
    """
    if rto_s >= worst_failover_s(PATRONI_DEFAULT_TIMING):
        return PATRONI_DEFAULT_TIMING
    lease = math.floor(rto_s - PROMOTION_MARGIN_S)
    if lease < MIN_TTL:
        raise ValueError(
            f"no Patroni timing fails over within {rto_s:g} s: a lost primary is replaced "
            f"only once its lease (at least {MIN_TTL} s) expires, and promotion takes "
            f"{PROMOTION_MARGIN_S} s more"
        )
    ttl = min(lease, PATRONI_DEFAULT_TIMING.ttl)
    loop_wait = 1
    restart = 0
    if not synchronous:
        restart = min(PATRONI_DEFAULT_TIMING.primary_start_timeout, lease - 2 * loop_wait)
    return PatroniTiming(
        ttl=ttl,
        loop_wait=loop_wait,
        retry_timeout=(ttl - loop_wait) // 2,
        primary_start_timeout=restart,
    )


def timing_for_tier(
    *,
    rto: timedelta,
    availability_objective: float | None = None,
    availability_period: timedelta = timedelta(days=30),
) -> PatroniTiming:
    """The timing of a database of a tier: the tier's RTO bounds one failover, and an
    availability SLO tightens that budget to the outage it absorbs without paging
    (:func:`page_free_outage_s`)."""
    budget = rto.total_seconds()
    if availability_objective is not None:
        budget = min(budget, page_free_outage_s(availability_objective, period=availability_period))
    return timing_for_rto(budget)


#: The critical tier: RTO 15 min (``controlplane/policies/dr.yaml``), availability 99.9 % over
#: 30 days (``slo/specs/inventory-api.yaml``); a unit test keeps these equal to those files.
CRITICAL_RTO = timedelta(minutes=15)
CRITICAL_AVAILABILITY_OBJECTIVE = 0.999
#: What the stack runs: the critical tier's timing, for a failover budget of 25.92 s (ttl 23,
#: loop_wait 1, retry_timeout 11, primary_start_timeout 0).
FAST_TIMING = timing_for_tier(
    rto=CRITICAL_RTO, availability_objective=CRITICAL_AVAILABILITY_OBJECTIVE
)


class PatroniMember(Backend):
    """One Patroni process and the PostgreSQL server it runs (as the service account)."""

    name = "patroni"
    needs_unprivileged_user = True
    # SIGTERM: Patroni stops PostgreSQL (fast shutdown) and releases its lease if it leads.
    stop_signal = signal.SIGTERM
    port_labels: ClassVar[tuple[str, ...]] = ("postgres", "rest")

    def __init__(
        self,
        *,
        settings: StackSettings,
        workdir: Path,
        ports: Mapping[str, int],
        member: str,
        etcd_url: str,
        timing: PatroniTiming = FAST_TIMING,
        synchronous_mode: bool = False,
        scope: str = SCOPE,
        parameters: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(settings=settings, workdir=workdir, ports=ports)
        self.member = member
        self.name = self.backend_name(member)  # type: ignore[misc]  # one name per member
        self.etcd_url = etcd_url
        #: Whether ``etcd_url`` is a proxy (see :meth:`reach_etcd_through`).
        self.etcd_is_proxy = False
        self.timing = timing
        self.synchronous_mode = synchronous_mode
        self.scope = scope
        self.parameters = dict(parameters or {})

    @staticmethod
    def backend_name(member: str) -> str:
        """The backend name of Patroni member ``member`` (its log file, its row in the stack)."""
        return f"patroni-{member}"

    # -- where things are -------------------------------------------------------------------
    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    @property
    def socket_dir(self) -> Path:
        return self.workdir / "socket"

    @property
    def config_path(self) -> Path:
        return self.workdir / "patroni.yml"

    @property
    def port(self) -> int:
        return self.ports["postgres"]

    @property
    def rest_port(self) -> int:
        return self.ports["rest"]

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    @property
    def main_port(self) -> int:
        return self.port

    def dsn(self, dbname: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{dbname}"

    def executable(self) -> Path:
        return self.settings.patroni_binary()

    # -- configuration ----------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """Patroni's YAML configuration of this member."""
        address = f"127.0.0.1:{self.port}"
        return {
            "scope": self.scope,
            "name": self.member,
            "log": {"level": "INFO", "format": "%(asctime)s %(levelname)s: %(message)s"},
            "restapi": {
                "listen": f"127.0.0.1:{self.rest_port}",
                "connect_address": f"127.0.0.1:{self.rest_port}",
            },
            "etcd3": {
                "hosts": [self.etcd_url.removeprefix("http://")],
                "protocol": "http",
                # Otherwise Patroni also connects to the addresses etcd advertises.
                "use_proxies": self.etcd_is_proxy,
            },
            "bootstrap": {
                # Cluster-wide settings, written to etcd by the member that initialises the
                # cluster (``PATCH /config`` changes them afterwards).
                "dcs": {
                    **self.timing.as_dcs(),
                    "synchronous_mode": self.synchronous_mode,
                    "maximum_lag_on_failover": 16 * 1024 * 1024,
                    "postgresql": {
                        "use_pg_rewind": True,
                        "use_slots": True,
                        "parameters": {
                            "wal_level": "replica",
                            "hot_standby": "on",
                            "wal_log_hints": "on",
                            "max_wal_senders": 10,
                            "max_replication_slots": 10,
                            "wal_keep_size": "256MB",
                            "max_connections": 200,
                            **self.parameters,
                        },
                    },
                },
                "initdb": [{"encoding": "UTF8"}, {"locale": "C"}, {"auth": "trust"}],
            },
            "postgresql": {
                "listen": address,
                "connect_address": address,
                "data_dir": str(self.data_dir),
                "bin_dir": str(self.settings.pg_bindir),
                "pgpass": str(self.workdir / "pgpass"),
                "authentication": {
                    "superuser": {"username": SUPERUSER},
                    "replication": {"username": SUPERUSER},
                    "rewind": {"username": SUPERUSER},
                },
                "pg_hba": [
                    "local all all trust",
                    "host all all 127.0.0.1/32 trust",
                    "host replication all 127.0.0.1/32 trust",
                ],
                "parameters": {
                    "unix_socket_directories": str(self.socket_dir),
                    "logging_collector": "off",
                    "log_line_prefix": "%m [%p] ",
                    # Also here (the member's own configuration wins over etcd's): a cluster
                    # initialised before they were given gets them at its next start.
                    **self.parameters,
                },
                "basebackup": [{"checkpoint": "fast"}],
            },
            "watchdog": {"mode": "off"},
            "tags": {"nofailover": False, "noloadbalance": False, "clonefrom": False},
        }

    def prepare(self) -> None:
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(yaml.safe_dump(self.config(), sort_keys=False), "utf-8")

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("PGHOST", None)
        env["PATH"] = f"{self.settings.pg_bindir}:{env.get('PATH', '/usr/bin:/bin')}"
        return env

    def command(self) -> list[str]:
        return [str(self.executable()), str(self.config_path)]

    def reach_etcd_through(self, url: str) -> None:
        """Talk to etcd only through the proxy at ``url`` (call before the member starts)."""
        self.etcd_url = url
        self.etcd_is_proxy = True

    # -- what Patroni says --------------------------------------------------------------------
    def status(self, timeout: float = 2.0) -> dict[str, Any]:
        """``GET /patroni``: this member's state, role, timeline, WAL positions."""
        answer = httpx.get(f"{self.api_url}/patroni", timeout=timeout)
        body = answer.json()
        if not isinstance(body, dict):
            raise ValueError(f"{self.name}: /patroni answered {body!r}")
        return body

    def healthy(self) -> bool:
        """Patroni answers and its PostgreSQL runs (as primary, or as a replica that has its
        base backup)."""
        return self.status().get("state") == "running"

    def query_version(self) -> str:
        status = self.status()
        server = int(status.get("server_version", 0))
        patroni = status.get("patroni", {}).get("version", "?")
        return f"Patroni {patroni}, PostgreSQL {server // 10000}.{server % 10000}"

    def binary_version(self) -> str:
        return super().binary_version().replace("patroni", "Patroni").strip()

    # -- processes ----------------------------------------------------------------------------
    def postmaster_pid(self) -> int | None:
        return postmaster_pid(self.data_dir)

    def kill_postmaster(self) -> int:
        """SIGKILL this member's postmaster (Patroni stays up); its pid."""
        pid = self.postmaster_pid()
        if pid is None:
            raise BackendStartError(self.name, "no postmaster.pid: PostgreSQL is not running")
        os.kill(pid, signal.SIGKILL)
        return pid

    def kill(self) -> None:
        """SIGKILL the whole member at once: Patroni and every PostgreSQL process (a crashed
        host). :meth:`restart` starts it again on the same data folder."""
        survivors = kill_processes_under(self.workdir)
        if survivors:
            raise BackendStartError(self.name, f"processes {sorted(survivors)} survived SIGKILL")
        if self.process is not None:
            self.process.stop(sig=signal.SIGKILL, timeout=10)  # reaps it
            self.process = None

    def _patroni_pid(self) -> int:
        if self.process is None or self.process.pid is None:
            raise BackendStartError(self.name, "Patroni is not running")
        return self.process.pid

    def freeze(self) -> None:
        """SIGSTOP Patroni (its PostgreSQL keeps running): the member can renew nothing."""
        os.killpg(self._patroni_pid(), signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT Patroni after :meth:`freeze`."""
        os.killpg(self._patroni_pid(), signal.SIGCONT)

    def restart(self, timeout: float | None = None) -> None:
        """Start Patroni again on the same data folder (after :meth:`kill`) and wait until it
        runs PostgreSQL again."""
        self.spawn()
        self.wait_healthy(timeout)

    def stop(self, timeout: float = 30.0) -> None:
        if self.process is not None and self.process.pid is not None:
            # A frozen Patroni would never see the SIGTERM.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGCONT)
        super().stop(timeout=timeout)

    def kill_leftovers(self) -> None:
        """PostgreSQL runs in process groups of its own: a SIGKILLed Patroni leaves it."""
        kill_processes_under(self.workdir)

    def describe(self) -> str:
        return f"{self.name} on 127.0.0.1:{self.port} (REST {self.rest_port})"


class PatroniCluster:
    """An etcd and ``members`` Patroni members (``member-1`` ... bootstraps first)."""

    def __init__(
        self,
        *,
        settings: StackSettings,
        etcd: Etcd,
        member_workdirs: Sequence[Path],
        member_ports: Sequence[Mapping[str, int]],
        timing: PatroniTiming = FAST_TIMING,
        synchronous_mode: bool = False,
        scope: str = SCOPE,
        parameters: Mapping[str, Any] | None = None,
    ) -> None:
        """``parameters``: PostgreSQL settings for every member (Patroni keeps them in etcd,
        so a promoted replica runs with the same ones, ``archive_command`` say; each member's
        own configuration carries them too, so a cluster whose etcd was initialised without
        them runs with them from its next start)."""
        if len(member_workdirs) != len(member_ports) or len(member_workdirs) < 2:
            raise ValueError("a Patroni cluster needs two or more members, each with ports")
        self.settings = settings
        self.etcd = etcd
        self.timing = timing
        self.synchronous_mode = synchronous_mode
        self.scope = scope
        self.members = [
            PatroniMember(
                settings=settings,
                workdir=workdir,
                ports=ports,
                member=f"member-{index}",
                etcd_url=etcd.url,
                timing=timing,
                synchronous_mode=synchronous_mode,
                scope=scope,
                parameters=parameters,
            )
            for index, (workdir, ports) in enumerate(
                zip(member_workdirs, member_ports, strict=True), start=1
            )
        ]

    @classmethod
    def on_free_ports(
        cls, *, settings: StackSettings, base: Path, members: int = 2, **options: Any
    ) -> PatroniCluster:
        """A cluster with its folders under ``base`` and every process on free loopback
        ports (tests and benchmarks; the local stack uses its demo ports)."""
        ports = free_ports(len(Etcd.port_labels) + members * len(PatroniMember.port_labels))
        etcd = Etcd(
            settings=settings,
            workdir=base / "etcd",
            ports=dict(zip(Etcd.port_labels, ports[:2], strict=True)),
        )
        rest = ports[2:]
        member_ports = [
            dict(zip(PatroniMember.port_labels, rest[i * 2 : i * 2 + 2], strict=True))
            for i in range(members)
        ]
        return cls(
            settings=settings,
            etcd=etcd,
            member_workdirs=[base / f"member-{i}" for i in range(1, members + 1)],
            member_ports=member_ports,
            **options,
        )

    @property
    def backends(self) -> list[Backend]:
        """In start order: etcd, then the members (the first one initialises the cluster)."""
        return [self.etcd, *self.members]

    def member(self, name: str) -> PatroniMember:
        for member in self.members:
            if member.member == name:
                return member
        raise KeyError(name)

    # -- what the cluster says ----------------------------------------------------------------
    def cluster_state(self, timeout: float = 2.0) -> dict[str, Any]:
        """``GET /cluster`` from the first member that answers."""
        last: Exception | None = None
        for member in self.members:
            try:
                answer = httpx.get(f"{member.api_url}/cluster", timeout=timeout)
                body = answer.json()
                if isinstance(body, dict):
                    return body
            except PROBE_ERRORS as exc:
                last = exc
        raise BackendStartError("patroni", f"no member answered GET /cluster: {last}")

    def leader(self) -> PatroniMember | None:
        """The member Patroni names leader, if any."""
        try:
            state = self.cluster_state()
        except BackendStartError:
            return None
        for entry in state.get("members", []):
            if entry.get("role") in {"leader", "standby_leader"}:
                return self.member(str(entry["name"]))
        return None

    def replicas(self) -> list[PatroniMember]:
        leader = self.leader()
        return [m for m in self.members if m is not leader]

    def ready(self) -> bool:
        """A leader that takes writes and every other member streaming from it; in synchronous
        mode, one of them named the synchronous standby (until Patroni has recorded one, a lost
        leader is not replaced: no replica is known to have every acknowledged commit)."""
        try:
            state = self.cluster_state()
        except BackendStartError:
            return False
        entries = state.get("members", [])
        if len(entries) != len(self.members):
            return False
        leaders = [e for e in entries if e.get("role") == "leader" and e.get("state") == "running"]
        streaming = [e for e in entries if e.get("state") == "streaming"]
        if len(leaders) != 1 or len(streaming) != len(self.members) - 1:
            return False
        if self.synchronous_mode and not any(e.get("role") == "sync_standby" for e in streaming):
            return False
        leader = self.member(str(leaders[0]["name"]))
        try:
            with psycopg.connect(leader.dsn(), connect_timeout=2) as conn:
                row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
        except psycopg.Error:
            return False
        return row is not None and row[0] is False

    def wait_ready(self, timeout: float = 120.0) -> PatroniMember:
        """Until :meth:`ready`; the leader. Fails with each member's log tail."""
        deadline = time.monotonic() + timeout
        while not self.ready():
            if time.monotonic() > deadline:
                tails = "\n".join(f"--- {m.name}\n{m.log_tail(15)}" for m in self.members)
                raise BackendStartError(
                    "patroni",
                    f"no leader with streaming replicas after {timeout:.0f} s",
                    log_tail=tails,
                )
            time.sleep(0.25)
        leader = self.leader()
        assert leader is not None
        return leader

    def after_start(self, timeout: float = 120.0) -> None:
        """Called once every backend runs: wait for a leader and streaming replicas."""
        self.wait_ready(timeout)

    def multi_host_dsn(self, dbname: str = "postgres", *, connect_timeout: int = 2) -> str:
        """One connection string naming every member; libpq picks the writable one."""
        hosts = ",".join("127.0.0.1" for _ in self.members)
        ports = ",".join(str(m.port) for m in self.members)
        return (
            f"host={hosts} port={ports} user={SUPERUSER} dbname={dbname} "
            f"target_session_attrs=read-write connect_timeout={connect_timeout}"
        )

    def start(self, timeout: float = 120.0) -> None:
        """Start etcd and every member (outside a test pool), then wait for the cluster."""
        started: list[Backend] = []
        try:
            for backend in self.backends:
                backend.start()
                started.append(backend)
            self.after_start(timeout)
        except BaseException:
            for backend in reversed(started):
                backend.stop()
            raise

    def stop(self) -> None:
        """Members first (each replica, then whoever leads), then etcd."""
        leader = self.leader()
        order = [m for m in self.members if m is not leader] + ([leader] if leader else [])
        for member in order:
            member.stop()
        self.etcd.stop()


__all__ = [
    "BOOTSTRAP_HINT",
    "CRITICAL_AVAILABILITY_OBJECTIVE",
    "CRITICAL_RTO",
    "FAST_TIMING",
    "PATRONI_DEFAULT_TIMING",
    "PROMOTION_MARGIN_S",
    "SCOPE",
    "SUPERUSER",
    "PatroniCluster",
    "PatroniMember",
    "PatroniTiming",
    "page_free_outage_s",
    "timing_for_rto",
    "timing_for_tier",
    "worst_failover_s",
]
