"""Kubernetes adapter: Deployments and their HorizontalPodAutoscalers (autoscaling/v2).

Reads through the official ``kubernetes`` client, informer-style: each kind is listed once and
then watched from the list's resourceVersion (:class:`WatchedCache`), so a capacity cycle reads
memory, not the API server, whatever the number of workloads. The tests run it against a real
API server (``tests/support/backends.py``: ``kubernetes_cluster``).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes import watch as k8s_watch
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError as Urllib3Error

from controlplane.orchestrator.base import (
    AutoscalerState,
    ContainerResources,
    OrchestratorError,
    OrchestratorInfo,
    WorkloadState,
)

logger = logging.getLogger(__name__)

#: Seconds a watch request stays open before it is renewed (the API server ends it anyway).
WATCH_TIMEOUT_S = 240
#: Client-side limits of the cache's requests: connecting, reading a list, and reading a watch
#: beyond the moment the API server should have ended it. Without them a request the server
#: (or the network) leaves hanging blocks the watch thread for good: no retry, no error, the
#: cache stale until the process restarts.
CONNECT_TIMEOUT_S, LIST_TIMEOUT_S, WATCH_GRACE_S = 10.0, 30.0, 10.0
#: Pause after a failed watch before the next try (doubling up to the maximum).
RETRY_MIN_S, RETRY_MAX_S = 0.5, 30.0
#: Seconds to wait for the API server's version, and before asking again after a failure.
VERSION_TIMEOUT_S, VERSION_RETRY_S = 5.0, 60.0


#: Seconds :meth:`WatchedCache.close` waits for its watch thread to end.
CLOSE_TIMEOUT_S = 5.0
#: Seconds a cache may go without a working watch before reads of it fail: past this the
#: memory no longer stands for the cluster, and a check must not judge from it.
STALE_AFTER_S = 60.0


def kubernetes_client(kubeconfig: Path | None = None) -> k8s.ApiClient:
    """A client of its own configuration (the library's process-wide default is left alone, so
    two clients in one process can talk to two clusters): ``kubeconfig`` when given, else
    in-cluster credentials when running in a pod, else the kubeconfig of ``KUBECONFIG`` as it is
    when called (else ``~/.kube/config``). Raises ``kubernetes.config.ConfigException`` when
    none is usable."""
    configuration = k8s.Configuration()
    if kubeconfig is not None:
        k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=str(kubeconfig), client_configuration=configuration
        )
        return k8s.ApiClient(configuration)
    try:
        k8s_config.load_incluster_config(  # type: ignore[no-untyped-call]
            client_configuration=configuration
        )
    except k8s_config.ConfigException:
        k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=os.environ.get("KUBECONFIG") or None,
            client_configuration=configuration,
        )
    return k8s.ApiClient(configuration)


def _cpu_target(hpa: Any) -> tuple[int | None, int | None]:
    """(target, current) average CPU utilisation in percent from an autoscaling/v2 HPA."""
    target = current = None
    for metric in hpa.spec.metrics or []:
        resource = metric.resource
        if (
            metric.type == "Resource"
            and resource is not None
            and resource.name == "cpu"
            and resource.target is not None
            and resource.target.type == "Utilization"
        ):
            target = resource.target.average_utilization
    status = hpa.status
    for metric in (status.current_metrics or []) if status is not None else []:
        resource = metric.resource
        if metric.type == "Resource" and resource is not None and resource.name == "cpu":
            current = resource.current.average_utilization if resource.current else None
    return target, current


def autoscaler_state(hpa: Any) -> AutoscalerState:
    target, current = _cpu_target(hpa)
    status = hpa.status
    return AutoscalerState(
        name=hpa.metadata.name,
        min_replicas=hpa.spec.min_replicas if hpa.spec.min_replicas is not None else 1,
        max_replicas=hpa.spec.max_replicas,
        target_cpu_percent=target,
        current_cpu_percent=current,
        desired_replicas=None if status is None else status.desired_replicas,
    )


def container_resources(
    deployment: Any, container_name: str | None = None
) -> ContainerResources | None:
    containers = deployment.spec.template.spec.containers or []
    chosen = (
        next((c for c in containers if c.name == container_name), None) if container_name else None
    )
    container = chosen or (containers[0] if containers else None)
    if container is None:
        return None
    resources = container.resources
    requests = (resources.requests or {}) if resources is not None else {}
    limits = (resources.limits or {}) if resources is not None else {}
    return ContainerResources(
        cpu_request=requests.get("cpu"),
        memory_request=requests.get("memory"),
        cpu_limit=limits.get("cpu"),
        memory_limit=limits.get("memory"),
    )


def workload_state(deployment: Any, hpa: Any | None) -> WorkloadState:
    status = deployment.status
    autoscaler = None if hpa is None else autoscaler_state(hpa)
    return WorkloadState(
        name=deployment.metadata.name,
        service=deployment.metadata.labels.get("app.kubernetes.io/name", deployment.metadata.name)
        if deployment.metadata.labels
        else deployment.metadata.name,
        desired_replicas=deployment.spec.replicas if deployment.spec.replicas is not None else 1,
        ready_replicas=(status.ready_replicas or 0) if status is not None else 0,
        current_replicas=(status.replicas or 0) if status is not None else 0,
        cpu_percent=None if autoscaler is None else autoscaler.current_cpu_percent,
        autoscaler=autoscaler,
        resources=container_resources(deployment),
    )


class StaleCacheError(OrchestratorError):
    """A watched cache whose watch has been broken too long to stand for the cluster."""


class WatchedCache:
    """The objects of one kind in one namespace, kept current by list + watch.

    :meth:`items` lists on first use (synchronously: an error reaches the caller), then a
    daemon thread watches from the list's resourceVersion and applies every ADDED / MODIFIED /
    DELETED event; BOOKMARK events only move the resourceVersion on. A watch that ends is
    resumed from the last resourceVersion seen; one the API server no longer serves (410 Gone),
    or one that failed in an unforeseen way, starts over with a new list. While the watch is
    broken the cache keeps the last state and :attr:`healthy` is false (true again at the first
    event of a renewed watch, or when the server ends that watch at its timeout, events or not);
    once it has been broken for ``stale_after_s`` :meth:`items` raises :class:`StaleCacheError`
    instead of answering from memory that may no longer match the cluster. Every request has a
    client-side limit (:data:`CONNECT_TIMEOUT_S`, :data:`LIST_TIMEOUT_S`, and for a watch its
    timeout plus :data:`WATCH_GRACE_S`): an API server that stops answering breaks the watch
    like any other failure, instead of leaving the thread waiting for good.
    """

    def __init__(
        self,
        *,
        kind: str,
        list_call: Callable[..., Any],
        namespace: str,
        label_selector: str = "",
        watch_timeout_s: int = WATCH_TIMEOUT_S,
        stale_after_s: float = STALE_AFTER_S,
    ) -> None:
        self.kind = kind
        self.watch_timeout_s = watch_timeout_s
        self.stale_after_s = stale_after_s
        self.namespace = namespace
        self.label_selector = label_selector
        self._list_call = list_call
        self._objects: dict[str, Any] = {}
        self._resource_version: str | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._watch: k8s_watch.Watch | None = None
        self.healthy = False
        #: When the watch last broke (monotonic seconds; None while it works) and why.
        self._broken_since: float | None = None
        self.last_error: str | None = None
        #: Lists sent (one, unless a watch expired) and watch events applied since the first
        #: list, and BOOKMARK events seen: what the cache cost the API server (for tests and
        #: diagnostics).
        self.lists = 0
        self.events = 0
        self.bookmarks = 0

    def _list(self) -> None:
        answer = self._list_call(
            self.namespace,
            label_selector=self.label_selector,
            _request_timeout=(CONNECT_TIMEOUT_S, LIST_TIMEOUT_S),
        )
        with self._lock:
            self._objects = {item.metadata.name: item for item in answer.items}
            self._resource_version = answer.metadata.resource_version
            self.lists += 1
        self._mark_healthy()

    def _mark_healthy(self) -> None:
        self.healthy = True
        self._broken_since = None

    def _mark_broken(self, error: str) -> None:
        self.healthy = False
        self.last_error = error
        if self._broken_since is None:
            self._broken_since = time.monotonic()

    def items(self) -> list[Any]:
        """Every object, from memory once synced. Raises ApiException (or a connection error)
        when the first list fails, and :class:`StaleCacheError` when the watch has been broken
        for longer than ``stale_after_s``."""
        if self._thread is None:
            self._list()
            self._thread = threading.Thread(
                target=self._run, name=f"watch-{self.kind}", daemon=True
            )
            self._thread.start()
        broken_since = self._broken_since
        if broken_since is not None:
            broken_for = time.monotonic() - broken_since
            if broken_for > self.stale_after_s:
                raise StaleCacheError(
                    f"{self.kind} watch broken for {broken_for:.0f} s "
                    f"(last error: {self.last_error}); the cached state may be out of date"
                )
        with self._lock:
            return list(self._objects.values())

    def _run(self) -> None:
        pause = RETRY_MIN_S
        relist = False
        while not self._stop.is_set():
            try:
                if relist:
                    self._list()
                    relist = False
                self._watch_once()
                if self._stop.is_set():
                    return
                # The server ended the watch at its timeout: the watch works, even when no event
                # and no bookmark came (a loaded API server skips bookmarks).
                self._mark_healthy()
                pause = RETRY_MIN_S
            except ApiException as exc:
                self._mark_broken(f"{exc.status} {exc.reason}")
                if exc.status == 410:  # resourceVersion too old: list again
                    logger.info("%s watch expired; listing again", self.kind)
                    relist = True
                    continue
                if not self._stop.is_set():
                    logger.warning("%s watch failed: %s %s", self.kind, exc.status, exc.reason)
            except (Urllib3Error, OSError) as exc:
                if self._stop.is_set():  # close() cut the open watch: not an error
                    return
                self._mark_broken(str(exc))
                logger.warning("%s watch broken: %s", self.kind, exc)
            except Exception as exc:  # the thread must outlive any answer it did not foresee
                if self._stop.is_set():
                    return
                # An answer this code did not foresee: the events since the last one applied
                # may be lost, so the state is listed afresh rather than resumed.
                self._mark_broken(f"{type(exc).__name__}: {exc}")
                logger.exception("%s watch failed unexpectedly; listing again", self.kind)
                relist = True
            if self._stop.wait(pause):
                return
            pause = min(pause * 2, RETRY_MAX_S)

    def _watch_once(self) -> None:
        self._watch = k8s_watch.Watch()  # type: ignore[no-untyped-call]
        if self._stop.is_set():  # closed while the previous watch ended
            return
        for event in self._watch.stream(  # type: ignore[no-untyped-call]
            self._list_call,
            self.namespace,
            label_selector=self.label_selector,
            resource_version=self._resource_version,
            timeout_seconds=self.watch_timeout_s,
            allow_watch_bookmarks=True,
            # Between two events a quiet watch sends nothing until the server ends it.
            _request_timeout=(CONNECT_TIMEOUT_S, self.watch_timeout_s + WATCH_GRACE_S),
        ):
            if self._stop.is_set():
                return
            kind, item = event["type"], event["object"]
            if kind == "ERROR":
                raw = event.get("raw_object") or {}
                raise ApiException(status=raw.get("code", 500), reason=raw.get("message", ""))
            if kind == "BOOKMARK":
                # The client leaves a bookmark's object a plain dict (it holds only metadata).
                version = ((event.get("raw_object") or {}).get("metadata") or {}).get(
                    "resourceVersion"
                )
                with self._lock:
                    if version:
                        self._resource_version = version
                    self.bookmarks += 1
            else:
                with self._lock:
                    self._resource_version = item.metadata.resource_version
                    if kind == "DELETED":
                        self._objects.pop(item.metadata.name, None)
                    elif kind in {"ADDED", "MODIFIED"}:
                        self._objects[item.metadata.name] = item
                    self.events += 1
            self._mark_healthy()

    def close(self) -> None:
        """Stop watching and wait (at most :data:`CLOSE_TIMEOUT_S`) for the watch thread to end.
        The open watch response is shut down, so a thread blocked reading it returns at once;
        until the thread ends this is repeated, as a request sent just before may only now
        have its response."""
        self._stop.set()
        thread = self._thread
        if thread is None or thread is threading.current_thread():
            return
        deadline = time.monotonic() + CLOSE_TIMEOUT_S
        while thread.is_alive() and time.monotonic() < deadline:
            self._shut_response()
            thread.join(timeout=0.1)

    def _shut_response(self) -> None:
        watch = self._watch
        if watch is None:
            return
        watch.stop()  # type: ignore[no-untyped-call]
        response = getattr(watch, "_resp", None)  # the library keeps no public handle
        if response is None:
            return
        try:
            response.shutdown()
        except (Urllib3Error, OSError, ValueError, RuntimeError) as exc:
            # Already closed or released: the thread is past its read.
            logger.debug("%s watch: shutting the response down failed: %s", self.kind, exc)

    @property
    def watching(self) -> bool:
        """Whether the watch thread runs."""
        return self._thread is not None and self._thread.is_alive()


class KubernetesOrchestrator:
    """Deployments of one namespace, each paired with the HPA whose scaleTargetRef names it,
    read from watched caches (one list + one watch per kind, not a request per object)."""

    has_autoscalers = True

    def __init__(
        self, *, api_client: k8s.ApiClient, namespace: str, label_selector: str = ""
    ) -> None:
        self.api_client = api_client
        self.namespace = namespace
        self.label_selector = label_selector
        self._version_lock = threading.Lock()
        self._version: str | None = None
        self._version_failed_at: float | None = None
        self.apps = k8s.AppsV1Api(api_client)
        self.autoscaling = k8s.AutoscalingV2Api(api_client)
        self.deployments = WatchedCache(
            kind="deployments",
            list_call=self.apps.list_namespaced_deployment,
            namespace=namespace,
            label_selector=label_selector,
        )
        self.autoscalers = WatchedCache(
            kind="horizontalpodautoscalers",
            list_call=self.autoscaling.list_namespaced_horizontal_pod_autoscaler,
            namespace=namespace,
        )

    def workloads(self) -> list[WorkloadState]:
        try:
            deployments = self.deployments.items()
            hpas = self.autoscalers.items()
        except ApiException as exc:
            raise OrchestratorError(
                f"Kubernetes API refused to list namespace {self.namespace}: "
                f"{exc.status} {exc.reason}"
            ) from exc
        except (Urllib3Error, OSError) as exc:
            raise OrchestratorError(f"Kubernetes API unreachable: {exc}") from exc
        by_target = {
            hpa.spec.scale_target_ref.name: hpa
            for hpa in hpas
            if hpa.spec.scale_target_ref.kind == "Deployment"
        }
        return [workload_state(d, by_target.get(d.metadata.name)) for d in deployments]

    def describe(self) -> OrchestratorInfo:
        return OrchestratorInfo(
            kind="kubernetes",
            location=str(self.api_client.configuration.host),
            namespace=self.namespace,
            version=self.version(),
        )

    def version(self) -> str | None:
        """The API server's ``gitVersion``, read once (``GET /version``, open to every
        authenticated identity); None while unreadable, asked again after
        :data:`VERSION_RETRY_S` so a down API server does not slow every read."""
        with self._version_lock:
            if self._version is not None:
                return self._version
            failed = self._version_failed_at
            if failed is not None and time.monotonic() - failed < VERSION_RETRY_S:
                return None
            try:
                info = k8s.VersionApi(self.api_client).get_code(_request_timeout=VERSION_TIMEOUT_S)
            except (ApiException, Urllib3Error, OSError) as exc:
                logger.warning("Kubernetes API server version unreadable: %s", exc)
                self._version_failed_at = time.monotonic()
                return None
            self._version = str(info.git_version)
            return self._version

    def close(self) -> None:
        """Stop both watches (the runtime calls it on shutdown)."""
        self.deployments.close()
        self.autoscalers.close()
