"""A small async client of the Kubernetes API, on httpx, with the credentials kopf logs in with.

kopf watches and patches the ``Checkout`` itself; this client does the rest: server-side apply
of the rendered children, lists by label, creates, deletes and status patches. It counts the
requests that change something, by verb, so a reconcile can say what it wrote.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import kopf

USER_AGENT = "checkout-operator/0.1.0"


@dataclass(frozen=True)
class Kind:
    api_version: str
    kind: str
    plural: str

    def path(self, namespace: str | None, name: str | None = None) -> str:
        """The object's path; with ``namespace`` None, the kind's in every namespace."""
        prefix = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        if namespace is None:
            return f"{prefix}/{self.plural}"
        path = f"{prefix}/namespaces/{namespace}/{self.plural}"
        return f"{path}/{name}" if name else path


# What the service charts render and the operator manages, in the order it applies them (the
# objects others refer to first). Its RBAC (charts/checkout-operator) grants exactly these.
MANAGED_KINDS: tuple[Kind, ...] = (
    Kind("v1", "ServiceAccount", "serviceaccounts"),
    Kind("v1", "Secret", "secrets"),
    Kind("v1", "ConfigMap", "configmaps"),
    Kind("v1", "Service", "services"),
    Kind("apps/v1", "StatefulSet", "statefulsets"),
    Kind("apps/v1", "Deployment", "deployments"),
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
CHECKOUT = Kind("checkout.platform.io/v1alpha1", "Checkout", "checkouts")


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
    def from_response(cls, response: httpx.Response) -> ApiError:
        try:
            body = response.json()
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        return cls(
            response.status_code,
            str(body.get("reason") or response.reason_phrase),
            str(body.get("message") or response.text[:500]),
        )


class KubeClient:
    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        field_manager: str,
        relogin: Callable[[], kopf.ConnectionInfo | None] | None = None,
    ) -> None:
        self._client = client
        self._relogin = relogin
        self.field_manager = field_manager
        self.writes: Counter[str] = Counter()
        """Requests that changed (or would have changed) something, by verb; dry runs excluded."""

    @classmethod
    def from_connection(
        cls,
        info: kopf.ConnectionInfo,
        *,
        field_manager: str,
        request_timeout: float,
        connect_timeout: float,
        relogin: Callable[[], kopf.ConnectionInfo | None] | None = None,
    ) -> KubeClient:
        verify: Any = info.as_ssl_context() if info.server.startswith("https") else False
        client = httpx.AsyncClient(
            base_url=info.server,
            verify=verify,
            headers={"User-Agent": USER_AGENT, **info.as_http_headers()},
            timeout=httpx.Timeout(request_timeout, connect=connect_timeout),
            trust_env=info.trust_env,
        )
        return cls(client, field_manager=field_manager, relogin=relogin)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        write: str | None = None,
    ) -> httpx.Response:
        content = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": content_type} if content is not None else {}
        response = await self._client.request(
            method, path, params=params, content=content, headers=headers
        )
        if response.status_code == 401 and self._relogin is not None:
            # A service-account token is rotated on disk: read it again, once.
            fresh = self._relogin()
            if fresh is not None:
                self._client.headers.update(fresh.as_http_headers())
                response = await self._client.request(
                    method, path, params=params, content=content, headers=headers
                )
        if write and response.status_code < 400:
            self.writes[write] += 1
        return response

    async def get(self, kind: Kind, namespace: str, name: str) -> dict[str, Any] | None:
        response = await self._request("GET", kind.path(namespace, name))
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise ApiError.from_response(response)
        result: dict[str, Any] = response.json()
        return result

    async def list(
        self, kind: Kind, namespace: str | None, *, label_selector: str
    ) -> list[dict[str, Any]]:
        """Objects of ``kind`` matching the selector, in ``namespace`` or (None) in all."""
        response = await self._request(
            "GET", kind.path(namespace), params={"labelSelector": label_selector}
        )
        if response.status_code != 200:
            raise ApiError.from_response(response)
        items: list[dict[str, Any]] = response.json().get("items") or []
        # Items of a list carry no apiVersion/kind of their own.
        for item in items:
            item.setdefault("apiVersion", kind.api_version)
            item.setdefault("kind", kind.kind)
        return items

    async def apply(self, obj: Mapping[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
        """Server-side apply, taking over fields another manager changed by hand (force)."""
        kind = kind_of(obj)
        meta = obj["metadata"]
        params = {"fieldManager": self.field_manager, "force": "true"}
        if dry_run:
            params["dryRun"] = "All"
        response = await self._request(
            "PATCH",
            kind.path(meta["namespace"], meta["name"]),
            params=params,
            body=obj,
            content_type="application/apply-patch+yaml",
            write=None if dry_run else "apply",
        )
        if response.status_code not in (200, 201):
            raise ApiError.from_response(response)
        result: dict[str, Any] = response.json()
        return result

    async def create(self, obj: Mapping[str, Any]) -> dict[str, Any] | None:
        """Create ``obj``; None when an object of that name already exists (left untouched)."""
        kind = kind_of(obj)
        response = await self._request(
            "POST",
            kind.path(obj["metadata"]["namespace"]),
            params={"fieldManager": self.field_manager},
            body=obj,
            write="create",
        )
        if response.status_code == 409:
            return None
        if response.status_code != 201:
            raise ApiError.from_response(response)
        result: dict[str, Any] = response.json()
        return result

    async def merge_patch(
        self,
        kind: Kind,
        namespace: str,
        name: str,
        patch: Mapping[str, Any],
        *,
        subresource: str | None = None,
    ) -> dict[str, Any]:
        path = kind.path(namespace, name) + (f"/{subresource}" if subresource else "")
        response = await self._request(
            "PATCH",
            path,
            params={"fieldManager": self.field_manager},
            body=patch,
            content_type="application/merge-patch+json",
            write="patch",
        )
        if response.status_code != 200:
            raise ApiError.from_response(response)
        result: dict[str, Any] = response.json()
        return result

    async def delete(self, kind: Kind, namespace: str, name: str) -> bool:
        """Delete, letting a garbage collector remove dependents; False when already gone."""
        response = await self._request(
            "DELETE",
            kind.path(namespace, name),
            body={"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Background"},
            write="delete",
        )
        if response.status_code == 404:
            return False
        if response.status_code not in (200, 202):
            raise ApiError.from_response(response)
        return True
