"""How an Ingress picks a backend for a request, by the Kubernetes rules for pathType Prefix:
whole path elements match, the longest matching path wins, a rule with a host serves only that
host; and what the ingress controller (Traefik) answers when nothing matches. Used to check the
charts' Ingress offline, and to stand in for the ingress controller in front of local processes;
tests/charts/test_traefik_manifest.py holds both against a real Traefik."""

from __future__ import annotations

from typing import Any

# Traefik's answer to a request no router matches (Go's http.NotFound): never a service's
# problem+json, so a client can tell that no service saw the request.
NOT_FOUND_BODY = "404 page not found\n"
NOT_FOUND_CONTENT_TYPE = "text/plain; charset=utf-8"


def route(ingress: dict[str, Any], host: str | None, path: str) -> tuple[str, str] | None:
    """The (service, port name) the Ingress sends `path` to, by the rules of pathType Prefix."""
    elements = [e for e in path.split("/") if e]
    best: tuple[int, tuple[str, str]] | None = None
    for rule in ingress["spec"]["rules"]:
        if rule.get("host") not in (None, host):
            continue
        for candidate in rule["http"]["paths"]:
            assert candidate["pathType"] == "Prefix", candidate
            prefix = [e for e in candidate["path"].split("/") if e]
            if elements[: len(prefix)] == prefix and (best is None or len(prefix) > best[0]):
                backend = candidate["backend"]["service"]
                best = (len(prefix), (backend["name"], backend["port"]["name"]))
    return best[1] if best else None
