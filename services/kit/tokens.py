"""JWT access tokens signed with the keyring's active key and verified with any key in it."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt

from services.keys.keyring import KeyRing, KeyringError

ALGORITHM = "HS256"
ROLES = frozenset({"customer", "admin"})
REQUIRED_CLAIMS = ["sub", "role", "iat", "exp", "iss", "aud", "jti"]
# How much of a value from a refused token goes into its reason (a header can be kilobytes).
SHOWN_CHARS = 64


class InvalidToken(Exception):
    """The token is not acceptable; the message says why (for logs, not for clients)."""


def shown(value: object) -> str:
    """``value`` as it goes into a reason: its repr, cut short."""
    text = repr(value)
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + f"... ({len(text)} chars)"


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: str
    role: str
    token_id: str
    expires_at: int
    kid: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    expires_in: int
    kid: str


class TokenService:
    def __init__(self, keyring: KeyRing, *, issuer: str, audience: str, leeway: int = 5) -> None:
        self.keyring = keyring
        self.issuer = issuer
        self.audience = audience
        self.leeway = leeway

    def issue(self, user_id: str, role: str, ttl_seconds: int) -> IssuedToken:
        key = self.keyring.active
        now = int(time.time())
        claims = {
            "sub": user_id,
            "role": role,
            "iat": now,
            "exp": now + ttl_seconds,
            "iss": self.issuer,
            "aud": self.audience,
            "jti": uuid.uuid4().hex,
        }
        token = jwt.encode(claims, key.secret, algorithm=ALGORITHM, headers={"kid": key.kid})
        return IssuedToken(token=token, expires_in=ttl_seconds, kid=key.kid)

    def verify(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"malformed token: {exc}") from exc
        if header.get("alg") != ALGORITHM:
            raise InvalidToken(f"algorithm {shown(header.get('alg'))} is not accepted")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise InvalidToken("token has no key id")
        try:
            key = self.keyring.get(kid)
        except KeyringError as exc:
            raise InvalidToken(str(exc)) from exc
        if key is None:
            raise InvalidToken(f"unknown key id {shown(kid)}")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.secret,
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": REQUIRED_CLAIMS},
            )
        except jwt.PyJWTError as exc:
            raise InvalidToken(str(exc)) from exc
        role, sub, jti = claims.get("role"), claims.get("sub"), claims.get("jti")
        if role not in ROLES or not isinstance(sub, str) or not isinstance(jti, str):
            raise InvalidToken("token claims are malformed")
        return Principal(
            user_id=sub, role=role, token_id=jti, expires_at=int(claims["exp"]), kid=kid
        )
