"""Password hashing holds argon2's memory while it runs, so the auth service runs only
``password_hash_concurrency`` hashes at once, however many sign-ups arrive together."""

from __future__ import annotations

import asyncio
import threading
import time

from services.auth.service import PasswordHashing
from services.auth.settings import AuthSettings


def _settings(concurrency: int) -> AuthSettings:
    return AuthSettings(
        service_name="auth",
        mongo_uri="mongodb://127.0.0.1:1",
        mongo_db="unused",
        jwt_keyring_file="/nonexistent",
        internal_keyring_file="/nonexistent",
        argon2_time_cost=1,
        argon2_memory_kib=8192,
        password_hash_concurrency=concurrency,
    )


async def test_at_most_the_configured_number_of_hashes_run_at_once() -> None:
    hashing = PasswordHashing(_settings(2))
    running, peak, lock = 0, 0, threading.Lock()
    real = hashing.hasher

    def counted(password: str) -> str:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.05)
        try:
            return real.hash(password)
        finally:
            with lock:
                running -= 1

    class Counting:
        hash = staticmethod(counted)
        verify = staticmethod(real.verify)

    hashing.hasher = Counting()  # type: ignore[assignment]
    hashes = await asyncio.gather(*(hashing.hash(f"password {i}") for i in range(8)))
    assert peak == 2
    assert len(set(hashes)) == 8
    # Checks share the same slots and still answer correctly.
    checks = await asyncio.gather(
        *(hashing.verify(h, f"password {i}") for i, h in enumerate(hashes)),
        hashing.verify(hashes[0], "wrong"),
    )
    assert checks == [True] * 8 + [False]
