"""k8s/ingress/traefik.yaml, the kind cluster's ingress controller: valid for the pinned Kubernetes,
unprivileged, on the node and ports kind publishes, the charts' default class, the pinned image,
nothing sent off the machine, client-sent forwarded headers not trusted.

Then the manifest's own arguments, run for real: Traefik built from its Go module
(k8s/offline/go/traefik/build.sh) watches a real kube-apiserver with the manifest's RBAC and
IngressClass, as its ServiceAccount, and routes the umbrella chart's Ingress to backends on
127.0.0.1. No kubelet runs, and the API server refuses loopback addresses in EndpointSlices, so
ExternalName Services named as the chart's stand in for the service pods. Everything listens on
loopback."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import httpx
import kubernetes_validate
import pytest
import yaml

from services.local.processes import stop_process
from tests.charts.conftest import KUBERNETES_VERSION, repo_path
from tests.charts.ingress_rules import NOT_FOUND_BODY, NOT_FOUND_CONTENT_TYPE, route
from tests.charts.test_ingress import PRIVATE_REQUESTS, PUBLIC_REQUESTS, STOREFRONT_REQUESTS
from tests.infra.helm import WORKLOADS, Helm
from tests.infra.kubeapi import KubeAPIServer, kube_client

MANIFEST = repo_path("k8s", "ingress", "traefik.yaml")
BUILD_SCRIPT = repo_path("k8s", "offline", "go", "traefik", "build.sh")
OBJECTS: list[dict[str, Any]] = [o for o in yaml.safe_load_all(MANIFEST.read_text()) if o]
KIND_CONFIGS = sorted(repo_path("k8s").glob("**/kind-cluster.yaml"))
HOST = "checkout.localhost"
# Ingresses made by single tests use another host: the chart's "/" (the storefront) would
# otherwise answer their paths before they are served, or instead of a 404.
OTHER_HOST = "other.checkout.localhost"
RELEASE = "shop"

_T = TypeVar("_T")


def _one(kind: str) -> dict[str, Any]:
    (obj,) = [o for o in OBJECTS if o["kind"] == kind]
    return obj


def _container() -> dict[str, Any]:
    containers: list[dict[str, Any]] = _one("Deployment")["spec"]["template"]["spec"]["containers"]
    (container,) = containers
    return container


def _flags() -> dict[str, str]:
    """The container's args as Traefik reads them: option names are case-insensitive."""
    flags = {}
    for arg in _container()["args"]:
        assert arg.startswith("--") and "=" in arg, f"{arg!r}: write every flag as --name=value"
        name, value = arg[2:].split("=", 1)
        assert name.lower() not in flags, f"{name} given twice"
        flags[name.lower()] = value
    return flags


def _pinned(name: str) -> str:
    env = repo_path("k8s", "offline", "versions.env").read_text()
    match = re.search(rf"^{name}=(\S+)$", env, re.M)
    assert match, f"k8s/offline/versions.env pins no {name}"
    return match.group(1)


# -- the manifest ----------------------------------------------------------------------------------


def test_every_object_is_valid_for_the_pinned_kubernetes() -> None:
    assert [o["kind"] for o in OBJECTS] == [
        "Namespace",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "IngressClass",
        "Deployment",
    ]
    for obj in OBJECTS:
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']}: {exc}")


def test_the_pod_is_unprivileged_sized_and_probed() -> None:
    pod = _one("Deployment")["spec"]["template"]["spec"]
    container = _container()
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] > 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    security = container["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"] == {"drop": ["ALL"]}  # nothing added, not even NET_BIND
    assert "privileged" not in security and "hostNetwork" not in pod
    for kind in ("requests", "limits"):
        assert set(container["resources"][kind]) == {"cpu", "memory"}
    ping = _flags()
    assert ping["ping"] == "true"
    traefik_port = {p["name"]: p["containerPort"] for p in container["ports"]}["traefik"]
    assert ping["entrypoints.traefik.address"] == f":{traefik_port}/tcp"
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/ping", "port": "traefik"}
    assert pod["serviceAccountName"] == _one("ServiceAccount")["metadata"]["name"]
    assert _one("Deployment")["spec"]["replicas"] == 1


@pytest.mark.parametrize(
    "config", KIND_CONFIGS, ids=[str(c.relative_to(repo_path())) for c in KIND_CONFIGS]
)
def test_it_runs_where_kind_publishes_the_ingress_ports(config: Path) -> None:
    kind = yaml.safe_load(config.read_text())
    (node,) = [n for n in kind["nodes"] if n.get("extraPortMappings")]
    published = {m["containerPort"] for m in node["extraPortMappings"]}
    assert published == {80, 443}
    pod = _one("Deployment")["spec"]["template"]["spec"]
    # The pod lands on that node: its selector asks only for labels the node has (or that every
    # Linux node carries).
    selector = dict(pod["nodeSelector"])
    assert selector.pop("kubernetes.io/os", "linux") == "linux"
    assert selector == {"ingress-ready": "true"}
    assert node["labels"]["ingress-ready"] == "true"
    # A kind node is a control plane: its taints are tolerated.
    tolerated = {t["key"] for t in pod["tolerations"] if t["operator"] == "Exists"}
    assert "node-role.kubernetes.io/control-plane" in tolerated

    ports = {p["name"]: p for p in _container()["ports"]}
    assert {p.get("hostPort") for p in ports.values()} - {None} == published
    flags = _flags()
    for entrypoint, host_port in (("web", 80), ("websecure", 443)):
        port = ports[entrypoint]
        assert port["hostPort"] == host_port
        # Unprivileged inside the pod: no capability is needed to bind it.
        assert port["containerPort"] >= 1024
        assert flags[f"entrypoints.{entrypoint}.address"] == f":{port['containerPort']}/tcp"
    assert "hostPort" not in ports["traefik"]  # /ping stays inside the cluster


def test_its_class_is_the_charts_default_class() -> None:
    ingress_class = _one("IngressClass")
    name = ingress_class["metadata"]["name"]
    assert ingress_class["spec"]["controller"] == "traefik.io/ingress-controller"
    annotations = ingress_class["metadata"]["annotations"]
    assert annotations["ingressclass.kubernetes.io/is-default-class"] == "true"
    assert _flags()["providers.kubernetesingress.ingressclass"] == name
    for chart in ("checkout", *WORKLOADS):
        values = yaml.safe_load(repo_path("charts", chart, "values.yaml").read_text())
        assert values["ingress"]["className"] == name, f"charts/{chart}/values.yaml"
    crd = next(yaml.safe_load_all(repo_path("k8s", "crd.yaml").read_text()))
    for version in crd["spec"]["versions"]:
        spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
        assert spec["properties"]["ingress"]["properties"]["className"]["default"] == name


def test_the_image_is_the_pinned_traefik_version() -> None:
    version = _pinned("TRAEFIK_VERSION")
    assert _container()["image"] == f"docker.io/library/traefik:{version}"
    # The offline image is built from this module at this version (its build.sh checks too).
    go_mod = repo_path("k8s", "offline", "go", "traefik", "go.mod").read_text()
    required = re.findall(r"^\s*(?:require\s+)?github\.com/traefik/traefik/v3 (\S+)", go_mod, re.M)
    assert required == [version], "k8s/offline/go/traefik/go.mod requires another Traefik"


def test_nothing_is_sent_off_the_machine() -> None:
    flags = _flags()
    assert flags["global.checknewversion"] == "false"
    assert flags["global.sendanonymoususage"] == "false"
    # No plugin catalogue, hub, tracing or metrics exporter that would call out.
    for name in flags:
        assert not name.startswith(("experimental.", "hub.", "tracing", "metrics", "pilot")), name


def test_forwarded_headers_from_clients_are_not_trusted() -> None:
    """Without trustedIPs, insecure or proxyProtocol, Traefik drops a client's X-Forwarded-* and
    X-Real-Ip and sets them from the connection (the real proof is the run below)."""
    for name in _flags():
        assert ".forwardedheaders." not in name and ".proxyprotocol." not in name, name


def test_rbac_reads_only_what_the_ingress_provider_watches() -> None:
    rules = _one("ClusterRole")["rules"]
    granted = {
        (group, resource, verb)
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    watched = {
        ("", "services"),
        ("", "secrets"),
        ("", "nodes"),
        ("discovery.k8s.io", "endpointslices"),
        ("networking.k8s.io", "ingresses"),
        ("networking.k8s.io", "ingressclasses"),
    }
    expected = {(g, r, v) for g, r in watched for v in ("list", "watch")}
    expected.add(("networking.k8s.io", "ingresses/status", "update"))
    assert granted == expected
    binding = _one("ClusterRoleBinding")
    assert binding["roleRef"]["name"] == _one("ClusterRole")["metadata"]["name"]
    account = _one("ServiceAccount")["metadata"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["name"], "namespace": account["namespace"]}
    ]


# -- the manifest's arguments, run against a real API server ---------------------------------------


def traefik_binary() -> Path:
    """The binary build.sh builds once per machine (minutes the first time, then cached)."""
    result = subprocess.run(
        ["bash", str(BUILD_SCRIPT)], stdout=subprocess.PIPE, text=True, check=False
    )
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        pytest.fail(f"{BUILD_SCRIPT} failed with exit code {result.returncode}; see its stderr")
    binary = Path(lines[-1]) / "traefik"
    assert os.access(binary, os.X_OK), binary
    return binary


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait(what: str, check: Callable[[], _T | None], timeout: float = 30.0) -> _T:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result is not None:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.2)


class Echo(BaseHTTPRequestHandler):
    """A stand-in for a service's pod: says who it is, and what reached it."""

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        server = self.server
        assert isinstance(server, EchoServer)
        body = json.dumps(
            {"service": server.service, "path": self.path, "headers": dict(self.headers.items())}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


class EchoServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, service: str) -> None:
        super().__init__(("127.0.0.1", 0), Echo)
        self.service = service


@dataclass
class RunningTraefik:
    http: httpx.Client
    https: httpx.Client
    api: httpx.Client
    log: Path

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.get(path, headers={"Host": HOST, **kwargs.pop("headers", {})}, **kwargs)


def _create(api: httpx.Client, obj: dict[str, Any]) -> None:
    version, kind = obj["apiVersion"], obj["kind"]
    base = "/api/v1" if version == "v1" else f"/apis/{version}"
    namespace = obj["metadata"].get("namespace")
    plural = {
        "ClusterRole": "clusterroles",
        "ClusterRoleBinding": "clusterrolebindings",
        "Deployment": "deployments",
        "EndpointSlice": "endpointslices",
        "Ingress": "ingresses",
        "IngressClass": "ingressclasses",
        "Namespace": "namespaces",
        "Service": "services",
        "ServiceAccount": "serviceaccounts",
    }[kind]
    path = f"{base}/namespaces/{namespace}/{plural}" if namespace else f"{base}/{plural}"
    response = api.post(path, json=obj)
    assert response.status_code == 201, f"{kind}/{obj['metadata']['name']}: {response.text}"


def _local_service(name: str, port: int) -> dict[str, Any]:
    """A Service of the chart's name and port name whose backend is a server on 127.0.0.1."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": RELEASE},
        "spec": {
            "type": "ExternalName",
            # A DNS name made of digits to the API server, an address to Traefik.
            "externalName": "127.0.0.1",
            "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
        },
    }


def _args_on_loopback(web: int, websecure: int, ping: int) -> list[str]:
    """The manifest's args, with its entry points moved to free ports on 127.0.0.1."""
    ports = {"web": web, "websecure": websecure, "traefik": ping}
    args = []
    for arg in _container()["args"]:
        match = re.fullmatch(r"--entryPoints\.(\w+)\.address=:(\d+)/tcp", arg, re.I)
        args.append(
            f"--entryPoints.{match[1]}.address=127.0.0.1:{ports[match[1]]}/tcp" if match else arg
        )
    return args


@pytest.fixture(scope="module")
def traefik(helm: Helm, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningTraefik]:
    binary = traefik_binary()
    tmp = tmp_path_factory.mktemp("traefik")
    rendered = helm.template(
        "checkout", {"ingress": {"host": HOST}}, release=RELEASE, namespace=RELEASE
    )
    backends = {w: EchoServer(w) for w in WORKLOADS}
    for server in backends.values():
        threading.Thread(target=server.serve_forever, daemon=True).start()
    with KubeAPIServer(audit=False) as apiserver, kube_client(apiserver) as api:
        for obj in OBJECTS:
            _create(api, obj)
        _create(api, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": RELEASE}})
        (ingress,) = [o for o in rendered if o["kind"] == "Ingress"]
        _create(api, ingress)
        for service, server in backends.items():
            _create(api, _local_service(f"{RELEASE}-{service}", server.server_address[1]))

        account = _one("ServiceAccount")["metadata"]
        token = api.post(
            f"/api/v1/namespaces/{account['namespace']}/serviceaccounts/{account['name']}/token",
            json={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}},
        )
        assert token.status_code == 201, token.text
        token_file = tmp / "token"
        token_file.write_text(token.json()["status"]["token"])

        web, websecure, ping = _free_port(), _free_port(), _free_port()
        argv = [
            str(binary),
            *_args_on_loopback(web, websecure, ping),
            # Outside a pod: the API server's address, and the ServiceAccount's token.
            f"--providers.kubernetesingress.endpoint={apiserver.url}",
            f"--providers.kubernetesingress.token={token_file}",
            f"--providers.kubernetesingress.certAuthFilePath={apiserver.ca_cert_path}",
            # For the stand-in Services only.
            "--providers.kubernetesingress.allowExternalNameServices=true",
        ]
        log = tmp / "traefik.log"
        # A bare environment: no in-cluster or KUBECONFIG detection, no proxy.
        env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp)}
        with log.open("wb") as out:
            process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=tmp)
        try:
            with (
                httpx.Client(
                    base_url=f"http://127.0.0.1:{web}", trust_env=False, timeout=10
                ) as http,
                httpx.Client(
                    base_url=f"https://127.0.0.1:{websecure}",
                    trust_env=False,
                    verify=False,
                    timeout=10,
                ) as https,
            ):
                running = RunningTraefik(http=http, https=https, api=api, log=log)

                def pinged() -> bool | None:
                    assert process.poll() is None, f"traefik exited:\n{log.read_text()}"
                    try:
                        answer = httpx.get(f"http://127.0.0.1:{ping}/ping", trust_env=False)
                        return True if answer.status_code == 200 else None
                    except httpx.TransportError:
                        return None

                def routed() -> bool | None:
                    answer = running.get("/api/v1/products")
                    return True if answer.status_code == 200 else None

                _wait("traefik's /ping", pinged)
                _wait("the Ingress to be served", routed)
                yield running
        finally:
            stop_process(process, 15)
            for server in backends.values():
                server.shutdown()
                server.server_close()


def test_traefik_routes_the_charts_ingress_as_the_ingress_rules_say(
    traefik: RunningTraefik,
) -> None:
    """Each public path reaches its service, every other path the storefront (its "/"), and no
    private path of a service reaches that service: by whole path elements (strictPrefixMatching),
    the rules tests/charts/ingress_rules.py emulates."""
    expected = {path: service for service, paths in PUBLIC_REQUESTS.items() for path in paths}
    expected |= {path: "storefront" for path in STOREFRONT_REQUESTS + PRIVATE_REQUESTS}
    for path, service in expected.items():
        answer = traefik.get(path)
        assert answer.status_code == 200, f"{path}: {answer.status_code} {answer.text}"
        assert answer.json()["service"] == service, f"{path} went to {answer.json()['service']}"
        assert answer.json()["path"] == path  # passed on as it came, no rewrite
    # A rule with a host serves only that host; Traefik's own answer where nothing matches.
    answer = traefik.http.get("/api/v1/products", headers={"Host": "other.example.com"})
    assert answer.status_code == 404
    assert answer.text == NOT_FOUND_BODY
    assert answer.headers["content-type"] == NOT_FOUND_CONTENT_TYPE


@pytest.mark.parametrize(
    "raw_path",
    [
        b"/api/v1/products/..%2F..%2Finternal/v1/reservations",
        b"/api/v1/products/..%5C..%5Cinternal/v1/reservations",
        b"/api/v1/products/x%00y",
    ],
)
def test_encoded_path_tricks_reach_no_service(traefik: RunningTraefik, raw_path: bytes) -> None:
    for client in (traefik.http, traefik.https):
        url = httpx.URL(client.base_url, raw_path=raw_path)
        answer = client.get(url, headers={"Host": HOST})
        assert answer.status_code == 400, f"{raw_path!r} reached {answer.text}"


def test_the_emulated_ingress_agrees_with_traefik(traefik: RunningTraefik, helm: Helm) -> None:
    objects = helm.template(
        "checkout", {"ingress": {"host": HOST}}, release=RELEASE, namespace=RELEASE
    )
    (ingress,) = [o for o in objects if o["kind"] == "Ingress"]
    requests = [p for paths in PUBLIC_REQUESTS.values() for p in paths]
    for path in requests + STOREFRONT_REQUESTS + PRIVATE_REQUESTS:
        emulated = route(ingress, HOST, path)
        answer = traefik.get(path)
        real = f"{RELEASE}-{answer.json()['service']}" if answer.status_code == 200 else None
        assert (emulated[0] if emulated else None) == real, path


def test_https_serves_the_same_routes(traefik: RunningTraefik) -> None:
    answer = traefik.https.get("/api/v1/cart", headers={"Host": HOST})
    assert answer.status_code == 200 and answer.json()["service"] == "cart"


def test_a_clients_forwarded_headers_are_replaced(traefik: RunningTraefik) -> None:
    answer = traefik.get(
        "/api/v1/orders",
        headers={
            "X-Forwarded-For": "203.0.113.7",
            "X-Real-Ip": "203.0.113.7",
            "X-Forwarded-Host": "evil.example.com",
            "X-Forwarded-Proto": "https",
        },
    )
    seen = {k.lower(): v for k, v in answer.json()["headers"].items()}
    assert seen["x-forwarded-for"] == "127.0.0.1"
    assert seen["x-real-ip"] == "127.0.0.1"
    assert seen["x-forwarded-host"] == HOST
    assert seen["x-forwarded-proto"] == "http"


def test_the_ingress_status_gets_the_published_address(traefik: RunningTraefik) -> None:
    """ingresses/status is the one write the ClusterRole allows, and it works."""

    def status() -> list[dict[str, Any]] | None:
        ingress = traefik.api.get(
            f"/apis/networking.k8s.io/v1/namespaces/{RELEASE}/ingresses/{RELEASE}"
        )
        found: list[dict[str, Any]] = (
            ingress.json()["status"].get("loadBalancer", {}).get("ingress", [])
        )
        return found or None

    assert _wait("the Ingress status", status) == [{"hostname": "localhost"}]


def test_classes_decide_what_traefik_serves(traefik: RunningTraefik) -> None:
    """An Ingress without a class gets the default one (the API server's DefaultIngressClass
    admission) and is served; one of another class is left alone."""
    for name, spec_class in (("unclassed", None), ("other-class", "public")):
        path = f"/{name}"
        spec: dict[str, Any] = {
            "rules": [
                {
                    "host": OTHER_HOST,
                    "http": {
                        "paths": [
                            {
                                "path": path,
                                "pathType": "Prefix",
                                "backend": {
                                    "service": {"name": f"{RELEASE}-auth", "port": {"name": "http"}}
                                },
                            }
                        ]
                    },
                }
            ]
        }
        if spec_class:
            spec["ingressClassName"] = spec_class
        _create(
            traefik.api,
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "Ingress",
                "metadata": {"name": name, "namespace": RELEASE},
                "spec": spec,
            },
        )
    stored = traefik.api.get(f"/apis/networking.k8s.io/v1/namespaces/{RELEASE}/ingresses/unclassed")
    assert stored.json()["spec"]["ingressClassName"] == _one("IngressClass")["metadata"]["name"]
    other = {"Host": OTHER_HOST}
    _wait(
        "the unclassed Ingress to be served",
        lambda: True if traefik.get("/unclassed", headers=other).status_code == 200 else None,
    )
    assert traefik.get("/other-class", headers=other).status_code == 404


def test_a_service_without_ready_pods_answers_503(traefik: RunningTraefik) -> None:
    """allowEmptyServices: the route stays and says the service is unavailable, rather than
    vanishing into the not-found answer."""
    _create(
        traefik.api,
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "idle", "namespace": RELEASE},
            "spec": {"selector": {"app": "idle"}, "ports": [{"name": "http", "port": 80}]},
        },
    )
    _create(
        traefik.api,
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {"name": "idle", "namespace": RELEASE},
            "spec": {
                "rules": [
                    {
                        "host": OTHER_HOST,
                        "http": {
                            "paths": [
                                {
                                    "path": "/idle",
                                    "pathType": "Prefix",
                                    "backend": {
                                        "service": {"name": "idle", "port": {"name": "http"}}
                                    },
                                }
                            ]
                        },
                    }
                ]
            },
        },
    )
    other = {"Host": OTHER_HOST}
    _wait(
        "the idle route",
        lambda: True if traefik.get("/idle", headers=other).status_code == 503 else None,
    )


def test_its_service_account_is_never_refused(traefik: RunningTraefik) -> None:
    """The ClusterRole covers everything the provider asks for: no request of its was forbidden."""
    lines = [
        json.loads(line) for line in traefik.log.read_text().splitlines() if line.startswith("{")
    ]
    assert lines, "traefik logged nothing as JSON"
    problems = [line for line in lines if "forbidden" in json.dumps(line).lower()]
    assert not problems, problems
