"""What a service reports about the keys it has loaded (``GET /internal/v1/keys``, with the
internal API key): the contract between the services, which serve it (`services.kit.health`),
and every rotation driver, which reads it to confirm that a step has reached every service."""

from __future__ import annotations

from typing import Literal

import msgspec

KEYS_PATH = "/internal/v1/keys"
INTERNAL_KEY_HEADER = "X-Internal-Api-Key"
RingName = Literal["jwt", "internal"]


class RingSeen(msgspec.Struct, frozen=True, rename="camel"):
    """What one service has loaded of one ring: key ids, never secrets."""

    active: str | None
    kids: tuple[str, ...] = ()
    loaded_at: float | None = None  # when the service last read the ring (Unix time)


class KeyReport(msgspec.Struct, frozen=True):
    """The body of ``GET /internal/v1/keys``."""

    service: str
    jwt: RingSeen
    internal: RingSeen

    def ring(self, name: RingName) -> RingSeen:
        return self.jwt if name == "jwt" else self.internal


def decode_key_report(body: bytes) -> KeyReport:
    return msgspec.json.decode(body, type=KeyReport)
