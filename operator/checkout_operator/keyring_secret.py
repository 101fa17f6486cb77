"""A keyring Secret as the rotation driver's store (`services.keys.driver.RingStore`).

The ring is the Secret's ``keyring.json``, as the services mount it; its rotation state (JSON, key
ids and times, never secrets) is the Secret's annotation ``checkout.platform.io/rotation-state``.
Both are written in one merge patch guarded by the resourceVersion read, so state and ring can
never disagree; they go together when the Secret goes, and a restarted operator reads both back
and resumes.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

from services.keys.driver import StoreConflict, StoredRing
from services.keys.keyring import (
    KeyringDocument,
    KeyringError,
    decode_keyring_document,
    encode_keyring_document,
)
from services.keys.report import RingName
from services.keys.rotation import RotationError, RotationState, new_state

from .kube import SECRET, ApiError, KubeClient
from .values import GROUP, Names

STATE_ANNOTATION = f"{GROUP}/rotation-state"
KEYRING_KEY = "keyring.json"


class BadKeyring(RotationError):
    """A keyring Secret the rotation cannot work from (missing, or not a ring a service takes)."""


def secret_name(names: Names, ring: RingName) -> str:
    return names.jwt_keyring if ring == "jwt" else names.internal_keyring


def _created(meta: Mapping[str, Any]) -> float | None:
    stamp = meta.get("creationTimestamp")
    if not isinstance(stamp, str):
        return None
    parsed = datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)
    return parsed.timestamp()


def stored_ring(ring: RingName, secret: Mapping[str, Any]) -> StoredRing:
    """The ring in a keyring Secret, checked as a service checks it, and its rotation state."""
    meta = secret.get("metadata") or {}
    encoded = (secret.get("data") or {}).get(KEYRING_KEY)
    if not isinstance(encoded, str):
        raise BadKeyring(f"Secret {meta.get('name')} has no {KEYRING_KEY}")
    try:
        document = decode_keyring_document(base64.b64decode(encoded, validate=True))
    except (binascii.Error, KeyringError, msgspec.DecodeError) as exc:
        raise BadKeyring(f"Secret {meta.get('name')}: {exc}") from exc
    stored_text = (meta.get("annotations") or {}).get(STATE_ANNOTATION)
    stored = stored_text.encode() if isinstance(stored_text, str) else None
    try:
        state = RotationState.from_json(stored) if stored else new_state(ring)
    except msgspec.DecodeError as exc:
        raise BadKeyring(f"Secret {meta.get('name')}: bad {STATE_ANNOTATION}: {exc}") from exc
    if state.ring != ring:
        raise BadKeyring(f"Secret {meta.get('name')} holds the state of the {state.ring} ring")
    return StoredRing(
        ring=ring,
        document=document,
        state=state,
        stored=stored,
        version=str(meta.get("resourceVersion")),
        created=_created(meta),
    )


def secret_patch(
    current: StoredRing, state: RotationState, document: KeyringDocument | None
) -> dict[str, Any]:
    """State and (when it changes) ring in one merge patch, refused if the Secret moved on."""
    patch: dict[str, Any] = {
        "metadata": {
            "resourceVersion": current.version,
            "annotations": {STATE_ANNOTATION: state.to_json().decode()},
        }
    }
    if document is not None:
        data = encode_keyring_document(document)  # never a ring a service would refuse
        patch["data"] = {KEYRING_KEY: base64.b64encode(data).decode("ascii")}
    return patch


@dataclass(frozen=True)
class SecretRingStore:
    """One keyring Secret of a Checkout."""

    kube: KubeClient
    namespace: str
    name: str
    ring: RingName

    @classmethod
    def of(cls, kube: KubeClient, namespace: str, names: Names, ring: RingName) -> SecretRingStore:
        return cls(kube, namespace, secret_name(names, ring), ring)

    async def get(self) -> StoredRing | None:
        """The ring; None while the Secret does not exist (the reconcile creates it)."""
        secret = await self.kube.get(SECRET, self.namespace, self.name)
        return None if secret is None else stored_ring(self.ring, secret)

    async def read(self) -> StoredRing:
        found = await self.get()
        if found is None:
            raise BadKeyring(f"Secret {self.name} does not exist")
        return found

    async def write(
        self, current: StoredRing, state: RotationState, document: KeyringDocument | None
    ) -> StoredRing:
        patch = secret_patch(current, state, document)
        try:
            updated = await self.kube.merge_patch(SECRET, self.namespace, self.name, patch)
        except ApiError as exc:
            if exc.status == 409:
                raise StoreConflict(f"Secret {self.name} changed since it was read") from exc
            raise
        return dataclasses.replace(
            current,
            document=document or current.document,
            state=state,
            stored=state.to_json(),
            version=str(updated["metadata"]["resourceVersion"]),
        )
