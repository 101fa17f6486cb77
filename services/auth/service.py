"""Auth logic: registration, sign-in, token checks, lookups and deletion."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from services.auth.repository import EmailTaken, UserRepository
from services.auth.schemas import SignIn, Token, TokenCheck, User, UserCreate
from services.auth.settings import AuthSettings
from services.kit.errors import Conflict, NotFound, Unauthorized
from services.kit.mongo import Database, Document, from_document
from services.kit.ratelimit import RateLimiter
from services.kit.security import ensure_self_or_admin, subject_deleted
from services.kit.tokens import Principal, TokenService

log = logging.getLogger(__name__)


def normalise_email(email: str) -> str:
    return email.strip().lower()


def to_user(doc: Document) -> User:
    return from_document(doc, User)


class PasswordHashing:
    """argon2id hashing, run off the event loop (it is deliberately slow)."""

    def __init__(self, settings: AuthSettings) -> None:
        self.hasher = PasswordHasher(
            time_cost=settings.argon2_time_cost, memory_cost=settings.argon2_memory_kib
        )
        # Verifying against this when the email is unknown keeps both failures equally slow.
        self.dummy_hash = self.hasher.hash("not-a-real-password")
        # Each hash or check holds argon2_memory_kib (64 MiB by default) while it runs: bounding
        # how many run at once bounds the pod's memory. Unbounded, six sign-ups at once took the
        # auth pod past its 256 MiB limit on the kind cluster (502s through the ingress).
        self.slots = asyncio.Semaphore(settings.password_hash_concurrency)

    async def hash(self, password: str) -> str:
        async with self.slots:
            return await asyncio.to_thread(self.hasher.hash, password)

    async def verify(self, password_hash: str, password: str) -> bool:
        def check() -> bool:
            try:
                return self.hasher.verify(password_hash, password)
            except (VerifyMismatchError, VerificationError, InvalidHashError):
                return False

        async with self.slots:
            return await asyncio.to_thread(check)

    def needs_rehash(self, password_hash: str) -> bool:
        return self.hasher.check_needs_rehash(password_hash)


class AuthService:
    def __init__(
        self,
        db: Database,
        settings: AuthSettings,
        tokens: TokenService,
        passwords: PasswordHashing,
    ) -> None:
        self.users = UserRepository(db)
        self.settings = settings
        self.tokens = tokens
        self.passwords = passwords
        self.limiter = RateLimiter(db, window_seconds=settings.signin_window_seconds)

    async def register(self, data: UserCreate, role: str = "customer") -> User:
        email = normalise_email(data.email)
        password_hash = await self.passwords.hash(data.password)
        try:
            doc = await self.users.insert(email, password_hash, role, data.name)
        except EmailTaken as exc:
            raise Conflict("An account with this email already exists.") from exc
        log.info("user registered", extra={"userId": str(doc["_id"]), "role": role})
        return to_user(doc)

    async def sign_in(self, data: SignIn, client: str) -> Token:
        email = normalise_email(data.email)
        await self.limiter.hit("signin-client", client, self.settings.signin_limit_per_client)
        await self.limiter.hit("signin-email", email, self.settings.signin_limit_per_email)
        doc = await self.users.by_email(email)
        stored = doc["passwordHash"] if doc and doc.get("passwordHash") else None
        ok = await self.passwords.verify(stored or self.passwords.dummy_hash, data.password)
        if doc is None or stored is None or not ok:
            log.info("sign-in refused", extra={"known": doc is not None})
            raise Unauthorized("Email or password is incorrect.")
        if self.passwords.needs_rehash(stored):
            await self.users.set_password_hash(doc["_id"], await self.passwords.hash(data.password))
        issued = self.tokens.issue(
            str(doc["_id"]), doc["role"], self.settings.access_token_ttl_seconds
        )
        return Token(access_token=issued.token, expires_in=issued.expires_in, user=to_user(doc))

    async def check(self, principal: Principal) -> TokenCheck:
        doc = await self.users.by_id(principal.user_id)
        if doc is None:
            raise subject_deleted(principal.user_id)
        return TokenCheck(valid=True, user=to_user(doc), expires_at=principal.expires_at)

    async def get(self, principal: Principal, user_id: str) -> User:
        ensure_self_or_admin(principal, user_id)
        doc = await self.users.by_id(user_id)
        if doc is None:
            raise NotFound(f"No user with id {user_id!r}.")
        return to_user(doc)

    async def delete(self, principal: Principal, user_id: str, wake: Any = None) -> None:
        ensure_self_or_admin(principal, user_id)
        doc = await self.users.mark_deleted(user_id)
        if doc is None:
            raise NotFound(f"No user with id {user_id!r}.")
        log.info("user deleted", extra={"userId": user_id, "by": principal.user_id})
        if wake is not None:
            wake.set()

    async def ensure_admin(self, email: str, password: str) -> User:
        """Create (or promote) an admin account; used by bootstrap and the CLI."""
        email = normalise_email(email)
        doc = await self.users.by_email(email)
        if doc is None:
            return await self.register(UserCreate(email=email, password=password), role="admin")
        if doc["role"] != "admin":
            await self.users.set_role(doc["_id"], "admin")
            doc["role"] = "admin"
        return to_user(doc)
