"""Credentials for kopf and for the operator's own client: an explicit kubeconfig when configured,
else the pod's service account, else $KUBECONFIG / ~/.kube/config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kopf
import yaml

from .config import OperatorConfig


def from_kubeconfig(path: Path, settings: kopf.OperatorSettings) -> kopf.ConnectionInfo:
    """The current context of one kubeconfig file (certificates, token, or basic auth)."""
    config: dict[str, Any] = yaml.safe_load(path.read_text()) or {}

    def named(section: str, name: str) -> dict[str, Any]:
        for item in config.get(section) or []:
            if item.get("name") == name:
                found: dict[str, Any] = item.get(section[:-1]) or {}
                return found
        raise kopf.LoginError(f"{path}: no {section[:-1]} named {name!r}")

    current = config.get("current-context")
    if not current:
        raise kopf.LoginError(f"{path}: current-context is not set")
    context = named("contexts", current)
    cluster = named("clusters", context["cluster"])
    user = named("users", context["user"])
    return kopf.ConnectionInfo(
        server=cluster["server"],
        ca_path=cluster.get("certificate-authority"),
        ca_data=cluster.get("certificate-authority-data"),
        insecure=cluster.get("insecure-skip-tls-verify"),
        certificate_path=user.get("client-certificate"),
        certificate_data=user.get("client-certificate-data"),
        private_key_path=user.get("client-key"),
        private_key_data=user.get("client-key-data"),
        username=user.get("username"),
        password=user.get("password"),
        token=user.get("token"),
        default_namespace=context.get("namespace"),
        trust_env=settings.networking.trust_env,
    )


def connection_info(config: OperatorConfig, settings: kopf.OperatorSettings) -> kopf.ConnectionInfo:
    if config.kubeconfig is not None:
        return from_kubeconfig(config.kubeconfig, settings)
    info = kopf.login_with_service_account(settings=settings) or kopf.login_with_kubeconfig(
        settings=settings
    )
    if info is None:
        raise kopf.LoginError("no credentials: not in a pod, and no KUBECONFIG or ~/.kube/config")
    return info
