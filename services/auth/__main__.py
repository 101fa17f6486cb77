"""``python -m services.auth`` runs the service; ``python -m services.auth create-admin`` makes an
admin account (password from ``--password-file`` or standard input)."""

from __future__ import annotations

import sys

from services.auth.app import create_app
from services.auth.settings import AuthSettings
from services.kit.serve import run

if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "create-admin":
        from services.auth.cli import create_admin_main

        raise SystemExit(create_admin_main(sys.argv[2:]))
    run(AuthSettings, create_app, "auth")
