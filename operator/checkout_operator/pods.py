"""The service pods a rotation asks for their key reports: every pod of a Checkout's four services
(found by the charts' labels), asked at its IP, not through its Service (which answers from one pod
at a time)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .kube import POD, KubeClient
from .values import services_selector

DEFAULT_SERVICE_PORT = 8000


def pod_url(pod: Mapping[str, Any]) -> str | None:
    """``http://<podIP>:<http port>`` of a running pod; None if it cannot be asked now."""
    status = pod.get("status") or {}
    ip = status.get("podIP")
    if status.get("phase") != "Running" or not isinstance(ip, str) or not ip:
        return None
    port = DEFAULT_SERVICE_PORT
    for container in (pod.get("spec") or {}).get("containers") or []:
        for declared in container.get("ports") or []:
            if declared.get("name") == "http" and isinstance(declared.get("containerPort"), int):
                port = declared["containerPort"]
    host = f"[{ip}]" if ":" in ip else ip
    return f"http://{host}:{port}"


async def pod_targets(kube: KubeClient, namespace: str, release: str) -> dict[str, str | None]:
    """The URL of each service pod that is not going away, by pod name (None: not running yet,
    so counted as unreachable)."""
    pods = await kube.list(POD, namespace, label_selector=services_selector(release, "api"))
    return {
        str(pod["metadata"]["name"]): pod_url(pod)
        for pod in pods
        if not (pod.get("metadata") or {}).get("deletionTimestamp")
        and (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
    }
