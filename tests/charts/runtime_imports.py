"""Import modules the way the images will: with only the runtime dependencies importable.

Run as a script in a fresh interpreter of the project's venv:
    python tests/charts/runtime_imports.py EXTRAS MODULE...
EXTRAS is a comma-separated list of the project's extras the image installs ("" or "operator").
Every installed distribution outside the dependency closure of checkout-platform[EXTRAS] (the
dev group: pytest, ruff, PyYAML, kubernetes-validate, ...) is made unimportable first, so an
entry point that leans on a dev-only package fails here as it would in the image (whose builder
runs `uv sync --locked --no-dev`). Prints a JSON object {module: traceback} of the failures.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.metadata as metadata
import json
import sys
import traceback
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

PROJECT = "checkout-platform"


def runtime_closure(extras: set[str]) -> set[str]:
    """Canonical names of PROJECT and everything it needs at run time with `extras`."""
    done: dict[str, set[str]] = {}
    todo: list[tuple[str, set[str]]] = [(PROJECT, extras)]
    while todo:
        name, wanted = todo.pop()
        key = canonicalize_name(name)
        seen = done.get(key)
        if seen is not None and wanted <= seen:
            continue
        done[key] = (seen or set()) | wanted
        for line in metadata.requires(name) or []:
            requirement = Requirement(line)
            marker = requirement.marker
            if marker is None or any(marker.evaluate({"extra": e}) for e in {"", *wanted}):
                todo.append((requirement.name, set(requirement.extras)))
    return set(done)


class DevOnlyBlocker(importlib.abc.MetaPathFinder):
    def __init__(self, blocked: set[str]) -> None:
        self.blocked = blocked

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        top = fullname.partition(".")[0]
        if top in self.blocked:
            raise ModuleNotFoundError(
                f"No module named {fullname!r}: not a runtime dependency (the image has no "
                "dev group)",
                name=fullname,
            )
        return None


def main(argv: list[str]) -> int:
    extras = {e for e in argv[0].split(",") if e}
    allowed = runtime_closure(extras)
    blocked = {
        module
        for module, dists in metadata.packages_distributions().items()
        if not any(canonicalize_name(d) in allowed for d in dists)
    }
    # Forget what this script itself imported from blocked packages (packaging, for one).
    for name in list(sys.modules):
        if name.partition(".")[0] in blocked:
            del sys.modules[name]
    sys.meta_path.insert(0, DevOnlyBlocker(blocked))
    errors = {}
    for module in argv[1:]:
        try:
            importlib.import_module(module)
        except Exception:
            errors[module] = traceback.format_exc(limit=4)
    print(json.dumps(errors))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
