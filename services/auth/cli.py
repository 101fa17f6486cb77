"""``create-admin``: make the first admin without editing the database by hand."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

import msgspec

from services.auth.repository import create_indexes
from services.auth.schemas import UserCreate
from services.auth.service import AuthService, PasswordHashing
from services.auth.settings import AuthSettings
from services.keys.keyring import KeyRing
from services.kit.mongo import create_client
from services.kit.settings import SettingsError, load_settings
from services.kit.tokens import TokenService


async def _create(settings: AuthSettings, email: str, password: str) -> str:
    client = create_client(settings)
    try:
        db = client[settings.mongo_db]
        await create_indexes(db)
        tokens = TokenService(
            KeyRing(settings.jwt_keyring_file),
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
        )
        service = AuthService(db, settings, tokens, PasswordHashing(settings))
        user = await service.ensure_admin(email, password)
        return user.id
    finally:
        await client.close()


def create_admin_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.auth create-admin")
    parser.add_argument("--email", required=True)
    parser.add_argument("--password-file", type=Path, help="file holding the password")
    args = parser.parse_args(argv)
    password = (
        args.password_file.read_text(encoding="utf-8").strip()
        if args.password_file
        else sys.stdin.readline().strip()
    )
    try:
        data = msgspec.convert({"email": args.email, "password": password}, UserCreate)
    except msgspec.ValidationError as exc:
        print(f"create-admin: {exc}", file=sys.stderr)
        return 2
    try:
        environ = {"SERVICE_NAME": "auth", "MONGO_DB": "auth", **os.environ}
        settings = load_settings(AuthSettings, environ)
    except SettingsError as exc:
        print(f"create-admin: {exc}", file=sys.stderr)
        return 2
    user_id = asyncio.run(_create(settings, data.email, data.password))
    print(f"admin {data.email.strip().lower()} ready (id {user_id})")
    return 0
