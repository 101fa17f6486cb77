"""The operator's API layer: the official `kubernetes` dynamic client, off the event loop.

kopf watches and patches the ``Checkout`` itself; this layer does the rest: server-side apply of
the rendered children, lists by label, creates, deletes and status patches. The client is
synchronous, so every request runs on a small thread pool of its own. Requests that change
something are counted by verb, so a reconcile can say what it wrote.

The kinds are known in advance (the charts render these and the chart's RBAC grants exactly
these), so each request names its kind's resource and the dynamic client discovers nothing: no
discovery requests, and no discovery cache written to disk.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

import msgspec
from kubernetes.client import ApiClient, Configuration
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.discovery import Discoverer
from kubernetes.dynamic.exceptions import DynamicApiError
from kubernetes.dynamic.resource import Resource

USER_AGENT = "checkout-operator/0.1.0"
# Requests in flight at once. The apply of many Checkouts is bound by CPU (two cores shared with
# the API server in the benchmark), so more threads only add contention.
POOL_SIZE = 8

T = TypeVar("T")


@dataclass(frozen=True)
class Kind:
    api_version: str
    kind: str
    plural: str
    resource: Resource = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        group, _, version = self.api_version.rpartition("/")
        resource = Resource(
            prefix="apis" if group else "api",
            group=group,
            api_version=version,
            kind=self.kind,
            namespaced=True,
            name=self.plural,
            subresources={
                "status": {"kind": self.kind, "name": f"{self.plural}/status", "namespaced": True}
            },
        )
        object.__setattr__(self, "resource", resource)


# What the service charts render and the operator manages, in the order it applies them (the
# objects others refer to first). Its RBAC (charts/checkout-operator) grants exactly these.
MANAGED_KINDS: tuple[Kind, ...] = (
    Kind("v1", "ServiceAccount", "serviceaccounts"),
    Kind("v1", "Secret", "secrets"),
    Kind("v1", "ConfigMap", "configmaps"),
    Kind("v1", "Service", "services"),
    Kind("apps/v1", "StatefulSet", "statefulsets"),
    Kind("apps/v1", "Deployment", "deployments"),
    Kind("batch/v1", "CronJob", "cronjobs"),
    Kind("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets"),
    Kind("autoscaling/v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers"),
    Kind("networking.k8s.io/v1", "Ingress", "ingresses"),
    Kind("networking.k8s.io/v1", "NetworkPolicy", "networkpolicies"),
)
KINDS: dict[tuple[str, str], Kind] = {(k.api_version, k.kind): k for k in MANAGED_KINDS}
SECRET = KINDS[("v1", "Secret")]
DEPLOYMENT = KINDS[("apps/v1", "Deployment")]
STATEFULSET = KINDS[("apps/v1", "StatefulSet")]
PVC = Kind("v1", "PersistentVolumeClaim", "persistentvolumeclaims")
POD = Kind("v1", "Pod", "pods")
CHECKOUT = Kind("checkout.platform.io/v1alpha1", "Checkout", "checkouts")
CHECKOUT_BACKUP = Kind("checkout.platform.io/v1alpha1", "CheckoutBackup", "checkoutbackups")
CRONJOB = KINDS[("batch/v1", "CronJob")]
JOB = Kind("batch/v1", "Job", "jobs")
"""Not a managed kind: the backup Jobs are the CronJob's; the restore Job is made and deleted by
the reconcile itself (`restore`)."""


def kind_of(obj: Mapping[str, Any]) -> Kind:
    key = (str(obj.get("apiVersion")), str(obj.get("kind")))
    try:
        return KINDS[key]
    except KeyError:
        raise ApiError(
            0, "UnmanagedKind", f"the operator does not manage {key[1]} ({key[0]})"
        ) from None


class ApiError(Exception):
    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{reason} ({status}): {message}" if status else f"{reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message

    @property
    def permanent(self) -> bool:
        """The request itself is wrong (e.g. an invalid object): retrying cannot help."""
        return self.status in (400, 422) or self.status == 0

    @classmethod
    def of(cls, error: DynamicApiError) -> ApiError:
        """The API server's Status (its reason and message), not the client's rendering of it."""
        status: dict[str, Any] = {}
        if error.body:
            try:
                decoded = msgspec.json.decode(error.body)
            except msgspec.DecodeError:
                decoded = None
            if isinstance(decoded, dict):
                status = decoded
        body = error.body.decode(errors="replace") if isinstance(error.body, bytes) else error.body
        return cls(
            int(error.status or 0),
            str(status.get("reason") or error.reason or "Error"),
            str(status.get("message") or (body or "")[:500]),
        )


class NoDiscovery(Discoverer):
    """The dynamic client without discovery: every request names its `Kind.resource`, so the
    API's resource lists are never asked for (nor cached on disk)."""

    def __init__(self, client: DynamicClient, cache_file: str | None) -> None:
        self.client = client


def dynamic_client(configuration: Configuration) -> DynamicClient:
    api = ApiClient(configuration)
    api.user_agent = USER_AGENT
    return DynamicClient(api, discoverer=NoDiscovery)


class KubeClient:
    def __init__(
        self,
        configuration: Configuration,
        *,
        field_manager: str,
        request_timeout: float,
        connect_timeout: float,
    ) -> None:
        configuration.connection_pool_maxsize = POOL_SIZE
        self._client = dynamic_client(configuration)
        self._pool = ThreadPoolExecutor(POOL_SIZE, thread_name_prefix="kube")
        self._timeout = (connect_timeout, request_timeout)
        self.field_manager = field_manager
        self.writes: Counter[str] = Counter()
        """Requests that changed (or would have changed) something, by verb; dry runs excluded."""

    async def aclose(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._client.client.close()

    async def _request(
        self, method: Callable[..., Any], *args: Any, write: str | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        """One request of the dynamic client, on the pool; its body decoded."""
        call = partial(method, *args, serialize=False, _request_timeout=self._timeout, **kwargs)
        try:
            response = await asyncio.get_running_loop().run_in_executor(self._pool, call)
        except DynamicApiError as exc:
            raise ApiError.of(exc) from None
        result: dict[str, Any] = msgspec.json.decode(response.data)
        if write:
            self.writes[write] += 1
        return result

    async def get(self, kind: Kind, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return await self._request(
                self._client.get, kind.resource, name=name, namespace=namespace
            )
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    async def list(
        self, kind: Kind, namespace: str | None, *, label_selector: str
    ) -> list[dict[str, Any]]:
        """Objects of ``kind`` matching the selector, in ``namespace`` or (None) in all."""
        listed = await self._request(
            self._client.get, kind.resource, namespace=namespace, label_selector=label_selector
        )
        items: list[dict[str, Any]] = listed.get("items") or []
        # Items of a list carry no apiVersion/kind of their own.
        for item in items:
            item.setdefault("apiVersion", kind.api_version)
            item.setdefault("kind", kind.kind)
        return items

    async def apply(self, obj: Mapping[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
        """Server-side apply, taking over fields another manager changed by hand (force)."""
        return await self._request(
            self._client.server_side_apply,
            kind_of(obj).resource,
            body=dict(obj),
            field_manager=self.field_manager,
            force_conflicts=True,
            dry_run="All" if dry_run else None,
            write=None if dry_run else "apply",
        )

    async def create(
        self, obj: Mapping[str, Any], *, kind: Kind | None = None
    ) -> dict[str, Any] | None:
        """Create ``obj`` (of ``kind``, else a managed kind); None when an object of that name
        already exists (left untouched)."""
        try:
            return await self._request(
                self._client.create,
                (kind or kind_of(obj)).resource,
                body=dict(obj),
                field_manager=self.field_manager,
                write="create",
            )
        except ApiError as exc:
            if exc.status == 409:
                return None
            raise

    async def merge_patch(
        self,
        kind: Kind,
        namespace: str,
        name: str,
        patch: Mapping[str, Any],
        *,
        subresource: str | None = None,
    ) -> dict[str, Any]:
        resource = kind.resource.subresources[subresource] if subresource else kind.resource
        return await self._request(
            self._client.patch,
            resource,
            body=dict(patch),
            name=name,
            namespace=namespace,
            content_type="application/merge-patch+json",
            field_manager=self.field_manager,
            write="patch",
        )

    async def delete(self, kind: Kind, namespace: str, name: str) -> bool:
        """Delete, letting a garbage collector remove dependents; False when already gone."""
        try:
            await self._request(
                self._client.delete,
                kind.resource,
                name=name,
                namespace=namespace,
                propagation_policy="Background",
                write="delete",
            )
        except ApiError as exc:
            if exc.status == 404:
                return False
            raise
        return True
