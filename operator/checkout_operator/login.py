"""Credentials, loaded by the official client's loaders and shared by kopf and the operator's own
client: an explicit kubeconfig when configured, else the pod's service account, else
$KUBECONFIG / ~/.kube/config."""

from __future__ import annotations

import kopf
from kubernetes.client import Configuration
from kubernetes.config import ConfigException, load_incluster_config, load_kube_config

from .config import OperatorConfig


def client_configuration(config: OperatorConfig) -> Configuration:
    """The ``kubernetes`` client's configuration. In a pod, the service-account token is read
    again from disk as it rotates (the in-cluster loader's refresh)."""
    configuration = Configuration()
    try:
        if config.kubeconfig is not None:
            load_kube_config(config_file=str(config.kubeconfig), client_configuration=configuration)
            return configuration
        try:
            load_incluster_config(client_configuration=configuration)
        except ConfigException:
            load_kube_config(client_configuration=configuration)
    except (ConfigException, OSError) as exc:
        where = config.kubeconfig or "the service account, $KUBECONFIG or ~/.kube/config"
        raise kopf.LoginError(f"no credentials from {where}: {exc}") from exc
    return configuration


def connection_info(
    configuration: Configuration, settings: kopf.OperatorSettings
) -> kopf.ConnectionInfo:
    """The same credentials in kopf's terms (files the loaders wrote stay where they are)."""
    # The in-cluster loader keeps the token under BearerToken (and refreshes it on read).
    header = configuration.get_api_key_with_prefix(
        "BearerToken"
    ) or configuration.get_api_key_with_prefix("authorization")
    scheme, _, token = (header or "").rpartition(" ")
    return kopf.ConnectionInfo(
        server=configuration.host,
        ca_path=configuration.ssl_ca_cert,
        insecure=not configuration.verify_ssl,
        username=configuration.username or None,
        password=configuration.password or None,
        scheme=scheme or None,
        token=token or None,
        certificate_path=configuration.cert_file,
        private_key_path=configuration.key_file,
        trust_env=settings.networking.trust_env,
    )
