"""A PersistentVolumeClaim binds through the cluster's provisioner and its data outlives the pod."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.cluster.conftest import RESTRICTED
from tests.infra.kind import KindCluster

pytestmark = pytest.mark.cluster


def _pod(cluster: KindCluster, name: str, code: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "securityContext": {"fsGroup": 10001},
            "containers": [
                {
                    "name": "main",
                    "image": cluster.python_image,
                    "imagePullPolicy": cluster.pull_policy,
                    "command": ["python", "-c", code],
                    "securityContext": RESTRICTED,
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                }
            ],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}],
        },
    }


def _finished(cluster: KindCluster, namespace: str, name: str) -> str:
    phase: str = cluster.get("pod", name, "-n", namespace)["status"].get("phase", "")
    return phase if phase in ("Succeeded", "Failed") else ""


def test_a_claim_binds_and_keeps_its_data_across_pods(
    kind_cluster: KindCluster, namespace: str
) -> None:
    token = uuid.uuid4().hex
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "64Mi"}}},
    }
    writer = _pod(kind_cluster, "writer", f"open('/data/token', 'w').write('{token}')")
    kind_cluster.apply([claim, writer], namespace)
    phase = kind_cluster.wait_for(
        lambda: _finished(kind_cluster, namespace, "writer"), timeout=240, what="writer finished"
    )
    assert phase == "Succeeded"

    pvc = kind_cluster.get("pvc", "data", "-n", namespace)
    assert pvc["status"]["phase"] == "Bound"
    # The default StorageClass, served by a real provisioner (not a pre-made volume).
    assert pvc["spec"]["storageClassName"] == "standard"
    volume = kind_cluster.get("pv", pvc["spec"]["volumeName"])
    annotations = volume["metadata"]["annotations"]
    assert annotations["pv.kubernetes.io/provisioned-by"] == "rancher.io/local-path"

    # The writer is gone; a new pod on the same claim reads what it wrote.
    kind_cluster.kubectl("-n", namespace, "delete", "pod", "writer")
    reader = _pod(kind_cluster, "reader", "print(open('/data/token').read())")
    kind_cluster.apply([reader], namespace)
    phase = kind_cluster.wait_for(
        lambda: _finished(kind_cluster, namespace, "reader"), timeout=180, what="reader finished"
    )
    assert phase == "Succeeded"
    assert kind_cluster.kubectl("-n", namespace, "logs", "reader").stdout.strip() == token
