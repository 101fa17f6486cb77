"""Keyrings read from a mounted file and re-read when it changes.

One format serves the JWT signing keys and the internal API keys::

    {"active": "k2", "keys": [{"kid": "k1", "secret": "<base64url>"}, {"kid": "k2", ...}]}

The ``active`` key signs (JWT) or is sent (API key); every key in ``keys`` verifies. Rotation adds a
key, later promotes it, and finally drops the old one, so a reader never needs a restart. Kubernetes
updates a mounted Secret by swapping a symlink, so the file is re-read when its stat changes; a read
that fails half-way through an update keeps the last good ring.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import msgspec
from msgspec import Meta

from services.keys.files import write_atomically

log = logging.getLogger(__name__)

MIN_SECRET_BYTES = 32
KeyId = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")]


class KeyEntry(msgspec.Struct, frozen=True):
    kid: KeyId
    secret: Annotated[str, Meta(min_length=1)]


class KeyringDocument(msgspec.Struct, frozen=True):
    active: KeyId
    keys: Annotated[list[KeyEntry], Meta(min_length=1)]


class KeyringError(Exception):
    """The keyring file is missing or invalid."""


@dataclass(frozen=True, slots=True)
class Key:
    kid: str
    secret: bytes


def decode_secret(secret: str) -> bytes:
    padded = secret + "=" * (-len(secret) % 4)
    try:
        return base64.urlsafe_b64decode(padded.encode("ascii"))
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise KeyringError("a key's secret is not base64url") from exc


def encode_secret(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def generate_key(kid: str) -> KeyEntry:
    return KeyEntry(kid=kid, secret=encode_secret(os.urandom(MIN_SECRET_BYTES)))


def parse_keyring(data: bytes) -> tuple[str, dict[str, Key]]:
    try:
        doc = msgspec.json.decode(data, type=KeyringDocument)
    except msgspec.DecodeError as exc:
        raise KeyringError(f"keyring is invalid: {exc}") from exc
    keys: dict[str, Key] = {}
    for entry in doc.keys:
        if entry.kid in keys:
            raise KeyringError(f"keyring lists key id {entry.kid!r} twice")
        secret = decode_secret(entry.secret)
        if len(secret) < MIN_SECRET_BYTES:
            raise KeyringError(f"key {entry.kid!r} is shorter than {MIN_SECRET_BYTES} bytes")
        keys[entry.kid] = Key(entry.kid, secret)
    if doc.active not in keys:
        raise KeyringError(f"active key id {doc.active!r} is not in the keyring")
    return doc.active, keys


def dump_keyring(active: str, entries: list[KeyEntry]) -> bytes:
    return msgspec.json.encode(KeyringDocument(active=active, keys=entries))


def decode_keyring_document(data: bytes) -> KeyringDocument:
    """A stored ring, secrets included, after the checks a service applies (`KeyringError`)."""
    parse_keyring(data)
    return msgspec.json.decode(data, type=KeyringDocument)


def encode_keyring_document(document: KeyringDocument) -> bytes:
    """A ring to store, checked first: never one a service would refuse (`KeyringError`)."""
    data = msgspec.json.encode(document)
    parse_keyring(data)
    return data


def read_keyring_document(path: str | os.PathLike[str]) -> KeyringDocument:
    """The ring file as stored, secrets included (for tools that rewrite it)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise KeyringError(f"cannot read keyring {path}: {exc.strerror}") from exc
    return decode_keyring_document(data)


def write_keyring_document(path: str | os.PathLike[str], document: KeyringDocument) -> None:
    """Replace the ring file atomically, after checking a service would accept the new ring."""
    write_atomically(path, encode_keyring_document(document))


class KeyRing:
    """A keyring file, re-read (at most every ``check_interval`` seconds) when it changes."""

    def __init__(self, path: str | os.PathLike[str], *, check_interval: float = 1.0) -> None:
        self.path = Path(path)
        self.check_interval = check_interval
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._checked_at = float("-inf")
        self._active: str | None = None
        self._keys: dict[str, Key] = {}
        self.loaded_at: float | None = None
        self.last_error: str | None = None

    @property
    def loaded(self) -> bool:
        return self._active is not None

    def refresh(self, *, force: bool = False) -> None:
        """Re-read the file if it changed; keep the last good ring if the new one is bad."""
        now = time.monotonic()
        if not force and now - self._checked_at < self.check_interval:
            return
        with self._lock:
            self._checked_at = now
            try:
                st = self.path.stat()
                stamp = (st.st_mtime_ns, st.st_ino, st.st_size)
                if stamp == self._stamp and not force:
                    return
                active, keys = parse_keyring(self.path.read_bytes())
            except (OSError, KeyringError) as exc:
                message = exc.strerror if isinstance(exc, OSError) else str(exc)
                if message != self.last_error:
                    log.warning(
                        "keyring not loaded", extra={"path": str(self.path), "error": message}
                    )
                self.last_error = message
                return
            changed = self._active != active or set(self._keys) != set(keys)
            self._stamp, self._active, self._keys = stamp, active, keys
            self.loaded_at, self.last_error = time.time(), None
            if changed:
                log.info(
                    "keyring loaded",
                    extra={"path": str(self.path), "active": active, "kids": sorted(keys)},
                )

    def _require(self) -> None:
        self.refresh()
        if self._active is None:
            raise KeyringError(f"keyring {self.path} is not loaded: {self.last_error}")

    @property
    def active(self) -> Key:
        self._require()
        assert self._active is not None
        return self._keys[self._active]

    def get(self, kid: str) -> Key | None:
        self._require()
        return self._keys.get(kid)

    def kids(self) -> list[str]:
        self.refresh()
        return sorted(self._keys)

    @property
    def active_kid(self) -> str | None:
        self.refresh()
        return self._active

    def matches_any(self, presented: str) -> bool:
        """Constant-time check of a presented API key against every key in the ring."""
        self._require()
        candidate = presented.encode("utf-8", "surrogateescape")
        found = False
        for key in self._keys.values():
            # No early exit: every key is compared so timing does not reveal which one matched.
            found |= hmac.compare_digest(candidate, encode_secret(key.secret).encode("ascii"))
        return found

    def presentable_active(self) -> str:
        """The active key in the form callers send it."""
        return encode_secret(self.active.secret)
