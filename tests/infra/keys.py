"""Keyring files for tests and local mode helpers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from services.keys.files import write_atomically
from services.keys.keyring import KeyEntry, KeyRing, decode_secret, dump_keyring, generate_key
from services.kit.tokens import TokenService


def write_ring(path: Path, active: str, entries: list[KeyEntry]) -> None:
    write_atomically(path, dump_keyring(active, entries))  # atomic, like a Secret update


@dataclass
class Keyrings:
    jwt_file: Path
    internal_file: Path
    jwt_entries: list[KeyEntry]
    internal_entries: list[KeyEntry]

    @classmethod
    def create(cls, root: Path) -> Keyrings:
        jwt_key, internal_key = generate_key("jwt-1"), generate_key("api-1")
        rings = cls(
            root / "jwt" / "keyring.json",
            root / "internal" / "keyring.json",
            [jwt_key],
            [internal_key],
        )
        write_ring(rings.jwt_file, "jwt-1", rings.jwt_entries)
        write_ring(rings.internal_file, "api-1", rings.internal_entries)
        return rings

    def jwt_secret(self, kid: str) -> bytes:
        return decode_secret(next(e.secret for e in self.jwt_entries if e.kid == kid))

    def internal_key(self, kid: str = "api-1") -> str:
        return next(e.secret for e in self.internal_entries if e.kid == kid)

    def token(self, user_id: str, role: str = "customer", ttl_seconds: int = 900) -> str:
        """A token signed with the active JWT key, as auth would issue it."""
        service = TokenService(
            KeyRing(self.jwt_file), issuer="checkout-platform", audience="checkout-api"
        )
        return service.issue(user_id, role, ttl_seconds).token

    def bearer(self, user_id: str, role: str = "customer") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(user_id, role)}"}
