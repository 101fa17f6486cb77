"""The first admin, made without editing the database: at start-up or with the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import run_service, service_settings
from tests.services.auth.test_register_signin import PASSWORD, sign_in


async def test_bootstrap_admin_from_settings(mongo_server, db_prefix, keyrings) -> None:
    settings = service_settings(
        "auth",
        mongo_server,
        db_prefix,
        keyrings,
        bootstrap_admin_email="Admin@Example.com",
        bootstrap_admin_password=PASSWORD,
    )
    async with run_service(settings) as auth:
        token = await sign_in(auth, "admin@example.com")
        assert token["user"]["role"] == "admin"
    # A restart with the same settings keeps the one admin.
    async with run_service(settings) as auth:
        assert await auth.app.state.db.users.count_documents({"role": "admin"}) == 1


async def test_create_admin_command(mongo_server, db_prefix, keyrings, tmp_path: Path) -> None:
    password_file = tmp_path / "password"
    password_file.write_text(PASSWORD + "\n")
    env = {
        **os.environ,
        "MONGO_URI": mongo_server.uri,
        "MONGO_DB": f"{db_prefix}_auth",
        "JWT_KEYRING_FILE": str(keyrings.jwt_file),
        "INTERNAL_KEYRING_FILE": str(keyrings.internal_file),
    }
    cmd = [sys.executable, "-m", "services.auth", "create-admin", "--email", "ops@example.com"]
    done = subprocess.run(
        [*cmd, "--password-file", str(password_file)], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "admin ops@example.com ready" in done.stdout
    short = subprocess.run(cmd, input="short\n", env=env, capture_output=True, text=True)
    assert short.returncode == 2 and "password" in short.stderr
    settings = service_settings("auth", mongo_server, db_prefix, keyrings)
    async with run_service(settings) as auth:
        token = await sign_in(auth, "ops@example.com")
        assert token["user"]["role"] == "admin"
