"""What the operator imports of the project: its image holds ``checkout_operator``, the
``services.keys`` package and the services' settings loader (``services.kit.settings``), and
loads no web framework, database driver or password hashing (PyMongo is in the image for the
backup Jobs' ``checkout_backup``, never imported by the operator process)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.operator.cluster import REPO_ROOT

ALLOWED = ("services", "services.keys", "services.kit", "services.kit.settings")
"""Modules of ``services`` the operator may import (``services.keys.*`` included)."""
NOT_IN_THE_IMAGE = ("litestar", "pymongo", "argon2", "jinja2", "uvicorn")

LOADED = """
import json, sys
import checkout_operator
print(json.dumps(sorted(sys.modules)))
"""


def test_the_operator_imports_only_what_its_image_holds() -> None:
    found = subprocess.run(
        [sys.executable, "-c", LOADED],
        env={"PYTHONPATH": f"{REPO_ROOT / 'operator'}:{REPO_ROOT}"},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    modules = set(json.loads(found))
    ours = {m for m in modules if m == "services" or m.startswith("services.")}
    extra = {m for m in ours if m not in ALLOWED and not m.startswith("services.keys.")}
    assert not extra, f"the operator image does not hold {sorted(extra)}"
    assert "services.kit.settings" in ours
    heavy = {m for m in modules if m.split(".")[0] in NOT_IN_THE_IMAGE}
    assert not heavy, f"the operator process does not load {sorted(heavy)}"
