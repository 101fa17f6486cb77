"""What a Checkout owns: rendered children applied and compared, Secrets created once, what the
spec no longer asks for pruned, and everything removed when the Checkout goes.

Every child gets an ownerReference to the Checkout (so a cluster's garbage collector would remove
it too) and the label ``checkout.platform.io/owner=<name>`` (so the operator can find, prune and
delete its children itself, which it must: not every cluster runs a garbage collector, and volume
claims are kept or removed by the spec, not by ownership).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, cast

import kopf
import msgspec

from .generated_secrets import is_database_credential
from .kube import MANAGED_KINDS, PVC, SECRET, Kind, KubeClient, kind_of
from .values import HASH_ANNOTATION, OWNER_LABEL, services_selector

Key = tuple[str, str]  # (kind, name)

# Fields the API server manages on every object: never part of a comparison.
_SERVER_METADATA = (
    "managedFields",
    "resourceVersion",
    "generation",
    "uid",
    "creationTimestamp",
    "selfLink",
)


@dataclass(frozen=True)
class Owner:
    """The Checkout, as much of it as its children need."""

    name: str
    namespace: str
    uid: str
    body: Mapping[str, Any]

    @classmethod
    def of(cls, body: Mapping[str, Any]) -> Owner:
        meta = body["metadata"]
        return cls(name=meta["name"], namespace=meta["namespace"], uid=meta["uid"], body=body)

    @property
    def selector(self) -> str:
        return f"{OWNER_LABEL}={self.name}"


class SyncReport(msgspec.Struct):
    """What one sync of a Checkout's children did, by child (msgspec copies the empty lists)."""

    created: list[str] = []
    updated: list[str] = []
    pruned: list[str] = []
    secrets_created: list[str] = []
    adopted: list[str] = []
    unchanged: int = 0
    live: dict[Key, Mapping[str, Any]] = {}
    """The children of the kinds looked at, as they are after the sync (the applied ones as the
    API server answered the apply, the pruned ones gone)."""

    @property
    def changed(self) -> bool:
        return bool(
            self.created or self.updated or self.pruned or self.secrets_created or self.adopted
        )

    def summary(self) -> str:
        """In words, short enough for an event: names when few, else how many."""
        parts = [
            f"{label} {', '.join(items) if len(items) <= 5 else f'{len(items)} objects'}"
            for label, items in (
                ("created", self.created),
                ("updated", self.updated),
                ("pruned", self.pruned),
                ("created secrets", self.secrets_created),
                ("adopted", self.adopted),
            )
            if items
        ]
        return "; ".join(parts) or f"{self.unchanged} children unchanged"


def as_body(obj: Mapping[str, Any]) -> kopf.Body:
    """A plain object as kopf's Body, for its owner-reference and event helpers."""
    return kopf.Body(cast(kopf.RawBody, dict(obj)))


def key_of(obj: Mapping[str, Any]) -> Key:
    return (str(obj["kind"]), str(obj["metadata"]["name"]))


def label(key: Key) -> str:
    return f"{key[0]}/{key[1]}"


def owned(obj: Mapping[str, Any], owner: Owner) -> dict[str, Any]:
    """A copy of ``obj`` in the owner's namespace, labelled, owned, and stamped with its hash."""
    child = json.loads(json.dumps(obj))
    meta = child.setdefault("metadata", {})
    meta["namespace"] = owner.namespace
    meta.setdefault("labels", {})[OWNER_LABEL] = owner.name
    if child.get("kind") == "CronJob":
        # Its Jobs carry the label too: the operator watches them for the backups' outcome.
        template = child.setdefault("spec", {}).setdefault("jobTemplate", {})
        template.setdefault("metadata", {}).setdefault("labels", {})[OWNER_LABEL] = owner.name
    # Not kopf.adopt(): it would also copy the Checkout's own labels onto every child, so a label
    # added to the Checkout would rewrite all of them.
    kopf.append_owner_reference(
        child, owner=as_body(owner.body), controller=True, block_owner_deletion=True
    )
    annotations = meta.setdefault("annotations", {})
    annotations.pop(HASH_ANNOTATION, None)
    annotations[HASH_ANNOTATION] = config_hash(child)
    return dict(child)


def config_hash(obj: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:20]


def is_subset(wanted: Any, live: Any) -> bool:
    """Whether every field of ``wanted`` is in ``live`` with the same value.

    Lists are compared position by position.
    """
    if isinstance(wanted, Mapping):
        return isinstance(live, Mapping) and all(
            key in live and is_subset(value, live[key]) for key, value in wanted.items()
        )
    if isinstance(wanted, list):
        return (
            isinstance(live, list)
            and len(wanted) == len(live)
            and all(is_subset(w, v) for w, v in zip(wanted, live, strict=True))
        )
    return bool(wanted == live)


def _comparable(obj: Mapping[str, Any]) -> dict[str, Any]:
    copy = {k: v for k, v in obj.items() if k != "status"}
    copy["metadata"] = {
        k: v for k, v in (obj.get("metadata") or {}).items() if k not in _SERVER_METADATA
    }
    return copy


class Children:
    """The children of Checkouts, through one API client.

    ``in_sync`` remembers, per child uid, the resourceVersion last seen matching what the
    operator wants: an untouched child is then not compared again at all.
    """

    def __init__(self, kube: KubeClient) -> None:
        self.kube = kube
        self.in_sync: dict[str, tuple[str, str]] = {}  # uid -> (resourceVersion, config hash)

    async def live(
        self, owner: Owner, kinds: Iterable[Kind] = MANAGED_KINDS
    ) -> dict[Key, dict[str, Any]]:
        """Every child of those kinds carrying the owner label, by (kind, name)."""
        # One list per kind, all at once: a reconcile waits for the slowest, not for the sum.
        lists = await asyncio.gather(
            *(
                self.kube.list(kind, owner.namespace, label_selector=owner.selector)
                for kind in kinds
            )
        )
        return {key_of(item): item for items in lists for item in items}

    async def needs_apply(self, wanted: Mapping[str, Any], live: Mapping[str, Any]) -> bool:
        """Whether ``live`` differs from ``wanted`` in a field the operator sets."""
        meta = live.get("metadata") or {}
        want_hash = wanted["metadata"]["annotations"][HASH_ANNOTATION]
        if (meta.get("annotations") or {}).get(HASH_ANNOTATION) != want_hash:
            return True  # the spec (or the chart) changed since the last apply
        uid, version = str(meta.get("uid")), str(meta.get("resourceVersion"))
        if self.in_sync.get(uid) == (version, want_hash):
            return False
        if not is_subset(wanted, live):
            # Either changed by hand, or only written differently by the server (a quantity
            # "1" for 1, an embedded apiVersion dropped): a dry run tells which.
            would_be = await self.kube.apply(wanted, dry_run=True)
            if _comparable(would_be) != _comparable(live):
                return True
        self.in_sync[uid] = (version, want_hash)
        return False

    def wanted(
        self,
        owner: Owner,
        rendered: Iterable[Mapping[str, Any]],
        secrets: Iterable[Mapping[str, Any]],
    ) -> tuple[dict[Key, dict[str, Any]], list[dict[str, Any]]]:
        """The rendered objects owned (by key, in the order they are applied) and the Secrets."""
        order = {kind.kind: index for index, kind in enumerate(MANAGED_KINDS)}
        objects = sorted(
            (owned(obj, owner) for obj in rendered), key=lambda o: order[kind_of(o).kind]
        )
        return {key_of(obj): obj for obj in objects}, [owned(s, owner) for s in secrets]

    async def sync(
        self,
        owner: Owner,
        wanted: Mapping[Key, Mapping[str, Any]],
        wanted_secrets: Iterable[Mapping[str, Any]],
        *,
        kinds: Iterable[Kind] = MANAGED_KINDS,
        live: Mapping[Key, Mapping[str, Any]] | None = None,
    ) -> SyncReport:
        """Create what is missing, put back what drifted, prune what is no longer wanted.

        ``wanted`` and ``wanted_secrets`` as `wanted` gives them. Only ``kinds`` are looked at;
        their live children are listed once per kind (all at once) unless ``live`` has them.
        """
        report = SyncReport()
        kinds = tuple(kinds)
        names = {kind.kind for kind in kinds}
        if live is None:
            live = await self.live(owner, kinds)
        report.live = dict(live)
        secret_keys = set()
        for secret in wanted_secrets if SECRET.kind in names else ():
            secret_keys.add(key_of(secret))
            await self._ensure_secret(secret, live.get(key_of(secret)), owner, report)

        for key, obj in wanted.items():
            if key[0] not in names:
                continue
            # Not listed: absent, or it lost the owner label. Applied either way (server-side
            # apply creates it or takes it back), with no read first.
            current = live.get(key)
            if current is not None and not await self.needs_apply(obj, current):
                report.unchanged += 1
                continue
            report.live[key] = await self.put(obj)
            (report.updated if current is not None else report.created).append(label(key))

        keep = set(wanted) | secret_keys
        for key, item in live.items():
            if key in keep or (item.get("metadata") or {}).get("deletionTimestamp"):
                continue
            kind = kind_of(item)
            if await self.kube.delete(kind, owner.namespace, key[1]):
                report.pruned.append(label(key))
            report.live.pop(key, None)
            self.in_sync.pop(str(item["metadata"].get("uid")), None)
        return report

    async def put(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Apply one wanted object and remember the version written as in sync; the object as
        applied."""
        applied = await self.kube.apply(obj)
        meta = applied["metadata"]
        self.in_sync[str(meta["uid"])] = (
            str(meta["resourceVersion"]),
            obj["metadata"]["annotations"][HASH_ANNOTATION],
        )
        return applied

    async def _ensure_secret(
        self,
        secret: Mapping[str, Any],
        current: Mapping[str, Any] | None,
        owner: Owner,
        report: SyncReport,
    ) -> None:
        name = secret["metadata"]["name"]
        if current is None:  # not among the owner's: absent, or someone else's to adopt
            if await self.kube.create(secret) is not None:
                report.secrets_created.append(name)
                return
            current = await self.kube.get(SECRET, owner.namespace, name)
            if current is None:
                return  # created and deleted again meanwhile: the next reconcile sees to it
        # Never overwrite an existing Secret's data; only claim it (label and owner reference)
        # if nobody else controls it, e.g. a database credential kept from a deleted Checkout.
        meta = current.get("metadata") or {}
        refs = meta.get("ownerReferences") or []
        ours = any(ref.get("uid") == owner.uid for ref in refs)
        controlled = any(ref.get("controller") for ref in refs)
        if ours and (meta.get("labels") or {}).get(OWNER_LABEL) == owner.name:
            return
        if controlled and not ours:
            return
        patch = {
            "metadata": {
                "labels": {OWNER_LABEL: owner.name},
                "ownerReferences": [*refs, *secret["metadata"]["ownerReferences"]]
                if not ours
                else refs,
            }
        }
        await self.kube.merge_patch(SECRET, owner.namespace, name, patch)
        report.adopted.append(f"Secret/{name}")

    async def delete_all(self, owner: Owner, *, keep_data: bool) -> list[str]:
        """Delete every child; keep or delete the database volumes (and their credentials)."""
        deleted: list[str] = []
        live = await self.live(owner)
        for key, item in reversed(list(live.items())):
            kind = kind_of(item)
            if keep_data and kind is SECRET and is_database_credential(item):
                await self._release(item, owner)
                continue
            if await self.kube.delete(kind, owner.namespace, key[1]):
                deleted.append(label(key))
            self.in_sync.pop(str(item["metadata"].get("uid")), None)
        if not keep_data:
            for claim in await self.volume_claims(owner):
                if await self.kube.delete(PVC, owner.namespace, claim["metadata"]["name"]):
                    deleted.append(f"PersistentVolumeClaim/{claim['metadata']['name']}")
        return deleted

    async def create_missing(self, objects: Iterable[Mapping[str, Any]], kind: Kind) -> list[str]:
        """Create each of ``objects`` that does not exist; an existing one is left as it is (a
        claim's size and class are the user's to change). Returns the names created."""
        created = []
        for obj in objects:
            if await self.kube.create(obj, kind=kind) is not None:
                created.append(obj["metadata"]["name"])
        return created

    async def volume_claims(self, owner: Owner) -> list[dict[str, Any]]:
        """The MongoDB volume claims: made by the StatefulSet controller from its template, so
        they carry the template's labels (name, instance, component), not the owner label."""
        selector = services_selector(owner.name, "database")
        return await self.kube.list(PVC, owner.namespace, label_selector=selector)

    async def _release(self, item: Mapping[str, Any], owner: Owner) -> None:
        """Drop the owner label and reference, so the kept object outlives the Checkout."""
        meta = item.get("metadata") or {}
        refs = [r for r in meta.get("ownerReferences") or [] if r.get("uid") != owner.uid]
        await self.kube.merge_patch(
            kind_of(item),
            owner.namespace,
            meta["name"],
            {"metadata": {"labels": {OWNER_LABEL: None}, "ownerReferences": refs or None}},
        )
