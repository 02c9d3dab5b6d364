"""Kubernetes actuator: never fight the HPA.

When an autoscaling/v2 HPA targets the Deployment, scaling changes the HPA's bounds (raise
``minReplicas`` to scale out, lower it to scale in; ``maxReplicas`` never below it) and the HPA
moves the Deployment. A scale-out also brings the Deployment up to the new minimum at once
(the ``scale`` subresource): the HPA would do the same at its next sync (every 15 s by default),
and a count inside its bounds is one it keeps, so this never fights it; it only does not wait.
A scale-in leaves the count to the HPA (its downscale stabilisation decides when). Without an
HPA, the Deployment's ``scale`` subresource is patched.
The result reports what the API server holds afterwards (read back, not assumed); the ready count
is the Deployment's ``status.readyReplicas``, which the Deployment controller keeps from its pods'
Ready conditions.
"""

from __future__ import annotations

from typing import Any, cast

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from controlplane.actuators.base import ActuatorError, ActuatorFenced, Guard, ScaleResult


class KubernetesActuator:
    def __init__(self, *, api_client: k8s.ApiClient, namespace: str) -> None:
        self.namespace = namespace
        self.apps = k8s.AppsV1Api(api_client)
        self.autoscaling = k8s.AutoscalingV2Api(api_client)

    def _hpa_for(self, deployment: str) -> Any | None:
        items = cast(
            list[Any],
            self.autoscaling.list_namespaced_horizontal_pod_autoscaler(self.namespace).items,
        )
        for hpa in items:
            ref = hpa.spec.scale_target_ref
            if ref.kind == "Deployment" and ref.name == deployment:
                return hpa
        return None

    def current_replicas(self, service: str) -> int:
        try:
            scale: Any = self.apps.read_namespaced_deployment_scale(service, self.namespace)
        except ApiException as exc:
            raise ActuatorError(
                f"cannot read the scale of {service}: {exc.status} {exc.reason}"
            ) from exc
        return int(scale.status.replicas or 0)

    def ready_replicas(self, service: str) -> int:
        try:
            deployment: Any = self.apps.read_namespaced_deployment(service, self.namespace)
        except ApiException as exc:
            raise ActuatorError(
                f"cannot read the status of {service}: {exc.status} {exc.reason}"
            ) from exc
        status = deployment.status
        return int((status.ready_replicas if status is not None else None) or 0)

    def scale(self, service: str, *, replicas: int, guard: Guard | None = None) -> ScaleResult:
        if replicas < 1:
            raise ActuatorError("replicas must be at least 1")
        try:
            before = self.current_replicas(service)
            if guard is not None and not guard():
                raise ActuatorFenced(f"{service} not scaled: no longer allowed to act")
            hpa = self._hpa_for(service)
            if hpa is not None:
                maximum = max(int(hpa.spec.max_replicas), replicas)
                patched: Any = self.autoscaling.patch_namespaced_horizontal_pod_autoscaler(
                    hpa.metadata.name,
                    self.namespace,
                    {"spec": {"minReplicas": replicas, "maxReplicas": maximum}},
                )
                if before < replicas:  # up to the new minimum now, not at the HPA's next sync
                    self.apps.patch_namespaced_deployment_scale(
                        service, self.namespace, {"spec": {"replicas": replicas}}
                    )
                return ScaleResult(
                    service=service,
                    before=before,
                    requested=replicas,
                    after=int(patched.spec.min_replicas),
                    via="hpa-bounds",
                )
            scale: Any = self.apps.patch_namespaced_deployment_scale(
                service, self.namespace, {"spec": {"replicas": replicas}}
            )
        except ApiException as exc:
            raise ActuatorError(f"cannot scale {service}: {exc.status} {exc.reason}") from exc
        return ScaleResult(
            service=service,
            before=before,
            requested=replicas,
            after=int(scale.spec.replicas),
            via="deployment-scale",
        )

    def set_replica_bounds(self, service: str, *, minimum: int, maximum: int) -> tuple[int, int]:
        """Set the HPA's bounds (the policy's ``set_replica_bounds`` action); read them back."""
        if not 1 <= minimum <= maximum:
            raise ActuatorError(f"need 1 <= min <= max, got {minimum}, {maximum}")
        try:
            hpa = self._hpa_for(service)
            if hpa is None:
                raise ActuatorError(f"{service} has no HorizontalPodAutoscaler to bound")
            patched: Any = self.autoscaling.patch_namespaced_horizontal_pod_autoscaler(
                hpa.metadata.name,
                self.namespace,
                {"spec": {"minReplicas": minimum, "maxReplicas": maximum}},
            )
        except ApiException as exc:
            raise ActuatorError(f"cannot bound {service}: {exc.status} {exc.reason}") from exc
        return int(patched.spec.min_replicas), int(patched.spec.max_replicas)
