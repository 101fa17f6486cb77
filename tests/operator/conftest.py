"""Fixtures for operator tests: one real kube-apiserver (with etcd) per test session, a fresh
namespace per test.

Nothing global is set (no KUBECONFIG in the environment): a test hands ``kube_api.kubeconfig_path``
or ``kube_api.ssl_context()`` to whatever client it runs. See `tests.infra.kubeapi` for what
this control plane does not run (no controller-manager, scheduler or kubelet).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.infra.kubeapi import KubeAPIServer, async_kube_client, kube_client

__all__ = ["async_kube_client", "kube_client"]


@pytest.fixture(scope="session")
def kube_api() -> Iterator[KubeAPIServer]:
    with KubeAPIServer() as server:
        yield server


@pytest.fixture
def kube(kube_api: KubeAPIServer) -> Iterator[httpx.Client]:
    """A sync client authenticated as the cluster admin."""
    with kube_client(kube_api) as client:
        yield client


@pytest.fixture
def namespace(kube_api: KubeAPIServer) -> Iterator[str]:
    """A new namespace with a random name, deleted after the test.

    With no namespace controller running, a deleted namespace stays ``Terminating`` and its
    objects stay in etcd; the random name keeps tests apart all the same.
    """
    name = f"t-{uuid.uuid4().hex[:12]}"
    with kube_client(kube_api) as client:
        created = client.post(
            "/api/v1/namespaces",
            json={
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": name, "labels": {"checkout.platform.io/test": "true"}},
            },
        )
        created.raise_for_status()
        try:
            yield name
        finally:
            deleted = client.delete(f"/api/v1/namespaces/{name}")
            if deleted.status_code not in (200, 202, 404):
                deleted.raise_for_status()
