"""The services' database engine (mongodb.engine): the official MongoDB image stays the default and
renders as before; FerretDB renders a pod that needs no shell, keeps everything on its volume and
never reports telemetry; the services cannot tell the two apart. The FerretDB settings are then
run for real: the FerretDB binary started with exactly the arguments and environment the chart
renders (paths and addresses moved to a temporary directory and 127.0.0.1), probed as the kubelet
would, and reached the way a service reaches it, through the kit's client with the chart's
MONGO_URI and credentials."""

from __future__ import annotations

import base64
import contextlib
import json
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.error import HTTPError, URLError
from urllib.request import urlopen

import pytest
import yaml
from checkout_operator.spec import DATABASE_ENGINES
from pymongo.errors import OperationFailure

from services.auth.settings import AuthSettings
from services.kit.mongo import create_client
from services.kit.settings import load_settings
from services.local.mongo_server import FERRETDB_VERSION, ferretdb_binary, free_port
from services.local.processes import stop_process
from tests.charts.conftest import SERVICES, objects_of, repo_path
from tests.infra.helm import Helm

FERRETDB = {"mongodb": {"engine": "ferretdb"}}


def _one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (found,) = objects_of(objects, kind)
    return found


def _database_container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (container,) = _one(objects, "StatefulSet")["spec"]["template"]["spec"]["containers"]
    return dict(container)


def _flags(args: list[str]) -> dict[str, str]:
    """``--name=value`` arguments as a mapping; a bare ``--name`` maps to ""."""
    flags = {}
    for arg in args:
        assert arg.startswith("--"), arg
        name, _, value = arg.removeprefix("--").partition("=")
        flags[name] = value
    return flags


def _without_database(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] not in ("StatefulSet", "Secret")]


# -- rendering --


def test_mongodb_is_the_default_engine_with_the_official_image(helm: Helm) -> None:
    objects = helm.template("auth")
    container = _database_container(objects)
    assert container["name"] == "mongodb"
    assert container["image"] == "mongo:7.0.14"
    assert container["args"] == ["--wiredTigerCacheSizeGB", "0.25"]
    assert [e["name"] for e in container["env"]] == [
        "MONGO_INITDB_ROOT_USERNAME",
        "MONGO_INITDB_ROOT_PASSWORD",
        "HOME",
    ]
    assert container["readinessProbe"]["exec"]["command"][0] == "mongosh"
    explicit = helm.template("auth", {"mongodb": {"engine": "mongodb"}})
    assert [o for o in explicit if o["kind"] != "Secret"] == [
        o for o in objects if o["kind"] != "Secret"
    ]


@pytest.mark.parametrize("service", SERVICES)
def test_the_service_sees_the_same_objects_whatever_the_engine(helm: Helm, service: str) -> None:
    """Deployment, ConfigMap (MONGO_URI, MONGO_DB), Services and Secret references are the same:
    only the database's own StatefulSet differs."""
    mongodb = _without_database(helm.template(service))
    ferretdb = _without_database(helm.template(service, FERRETDB))
    assert mongodb == ferretdb
    config = _one(ferretdb, "ConfigMap")["data"]
    assert config["MONGO_URI"].endswith(":27017/?authSource=admin"), config["MONGO_URI"]


def test_ferretdb_runs_from_a_shell_less_image_with_everything_on_its_volume(helm: Helm) -> None:
    objects = helm.template("auth", FERRETDB)
    statefulset = _one(objects, "StatefulSet")
    pod = statefulset["spec"]["template"]["spec"]
    container = _database_container(objects)
    assert container["image"] == f"ghcr.io/ferretdb/ferretdb:{FERRETDB_VERSION.lstrip('v')}"
    assert "command" not in container, "the image's entrypoint is the binary; only args are given"
    args = _flags(container["args"])
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert args["handler"] == "sqlite"
    # Both the databases and state.json on the volume claim; the root filesystem is read-only.
    assert args["sqlite-url"] == f"file:{mounts['data']}/"
    assert args["state-dir"] == mounts["data"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["securityContext"]["fsGroup"] > 0
    assert [c["metadata"]["name"] for c in statefulset["spec"]["volumeClaimTemplates"]] == ["data"]
    assert args["listen-addr"] == "0.0.0.0:27017"
    assert args["telemetry"] == "disable"
    env = {e["name"]: e for e in container["env"]}
    assert env["DO_NOT_TRACK"]["value"] == "1"
    # Authentication is on, with the root user made from the chart's Secret, never from args.
    assert args["test-enable-new-auth"] == ""
    assert args["setup-database"] == "admin"
    for name, key in (
        ("FERRETDB_SETUP_USERNAME", "mongodb-root-username"),
        ("FERRETDB_SETUP_PASSWORD", "mongodb-root-password"),
    ):
        assert env[name]["valueFrom"]["secretKeyRef"] == {"name": "shop-auth-mongodb", "key": key}
    # No shell, no mongosh: every probe is an HTTP GET on the debug listener.
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert args["debug-addr"] == f"0.0.0.0:{ports['debug']}"
    for probe, path in (
        ("startupProbe", "/debug/livez"),
        ("livenessProbe", "/debug/livez"),
        ("readinessProbe", "/debug/readyz"),
    ):
        assert container[probe]["httpGet"] == {"path": path, "port": "debug"}, probe
    annotations = statefulset["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(ports["debug"])
    assert annotations["prometheus.io/path"] == "/debug/metrics"
    assert "configdb" not in {v["name"] for v in pod["volumes"]}


def test_each_engine_takes_its_own_image_and_resources(helm: Helm) -> None:
    values = yaml.safe_load(repo_path("charts", "auth", "values.yaml").read_text())["mongodb"]
    mirrored = {
        "mongodb": {
            "engine": "ferretdb",
            "engines": {
                "ferretdb": {"image": {"repository": "mirror.example.com/ferretdb"}},
                "mongodb": {"image": {"repository": "mirror.example.com/mongo"}},
            },
        }
    }
    container = _database_container(helm.template("auth", mirrored))
    tag = values["engines"]["ferretdb"]["image"]["tag"]
    assert container["image"] == f"mirror.example.com/ferretdb:{tag}"
    assert container["resources"] == values["engines"]["ferretdb"]["resources"]
    mongodb = _database_container(helm.template("auth"))
    assert mongodb["resources"] == values["engines"]["mongodb"]["resources"]


def test_one_engine_list_everywhere() -> None:
    """The charts' schemas, the CRD's enum and the operator's list name the same engines, the
    default first."""
    sys.path.insert(0, str(repo_path("scripts")))
    import chart_schemas

    crd = next(  # the Checkout's; the file's second CRD is CheckoutBackup's
        yaml.safe_load_all(
            repo_path(
                "charts", "checkout-operator", "crds", "checkouts.checkout.platform.io.yaml"
            ).read_text()
        )
    )
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    engine = spec["properties"]["mongodb"]["properties"]["engine"]
    engines = list(chart_schemas.DATABASE_ENGINES)
    assert engine["enum"] == engines
    assert engine["default"] == engines[0] == "mongodb"
    assert list(DATABASE_ENGINES) == engines
    for service in SERVICES:
        schema = json.loads(repo_path("charts", service, "values.schema.json").read_text())
        mongodb = schema["properties"]["mongodb"]
        assert mongodb["properties"]["engine"]["enum"] == engines
        assert sorted(mongodb["properties"]["engines"]["properties"]) == sorted(engines)
        values = yaml.safe_load(repo_path("charts", service, "values.yaml").read_text())
        assert values["mongodb"]["engine"] == engines[0]


# -- FerretDB for real --


def _quantity_bytes(quantity: str) -> int:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "k": 10**3, "M": 10**6, "G": 10**9}
    number, unit = re.fullmatch(r"(\d+)([A-Za-z]*)", quantity).groups()  # type: ignore[union-attr]
    return int(number) * units.get(unit, 1)


@dataclass
class LocalPod:
    """The chart's FerretDB container, run as a local process."""

    process: subprocess.Popen[bytes]
    volumes: dict[str, Path]
    ports: dict[str, int]
    """Container port name -> the local port standing in for it."""
    workdir: Path
    log: Path

    def get(self, path: str, port: str) -> int:
        try:
            with urlopen(f"http://127.0.0.1:{self.ports[port]}{path}", timeout=5) as response:
                return int(response.status)
        except HTTPError as error:
            return error.code


def _secret_data(objects: list[dict[str, Any]], name: str) -> dict[str, str]:
    (secret,) = [s for s in objects_of(objects, "Secret") if s["metadata"]["name"] == name]
    return {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}


def _container_env(container: dict[str, Any], objects: list[dict[str, Any]]) -> dict[str, str]:
    """The container's environment as the kubelet would give it (Secrets from the rendered ones)."""
    env: dict[str, str] = {}
    for item in container["env"]:
        if "value" in item:
            env[item["name"]] = item["value"]
            continue
        source = item["valueFrom"]
        if "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            env[item["name"]] = _secret_data(objects, ref["name"])[ref["key"]]
        elif "resourceFieldRef" in source:
            resource = source["resourceFieldRef"]["resource"]
            kind, name = resource.split(".")
            env[item["name"]] = str(_quantity_bytes(container["resources"][kind][name]))
        else:
            raise AssertionError(f"unexpected env source {source}")
    return env


@contextlib.contextmanager
def run_rendered_ferretdb(
    objects: list[dict[str, Any]], root: Path, volumes: dict[str, Path] | None = None
) -> Iterator[LocalPod]:
    container = _database_container(objects)
    volumes = volumes or {}
    for mount in container["volumeMounts"]:
        volumes.setdefault(mount["name"], root / "volumes" / mount["name"])
        volumes[mount["name"]].mkdir(parents=True, exist_ok=True)
    mount_paths = {m["mountPath"]: volumes[m["name"]] for m in container["volumeMounts"]}
    ports = {p["name"]: free_port() for p in container["ports"]}
    by_number = {p["containerPort"]: ports[p["name"]] for p in container["ports"]}

    def local(arg: str) -> str:
        """A path under a mount moved to that volume's directory, 0.0.0.0:<port> to 127.0.0.1."""
        name, equals, value = arg.partition("=")
        scheme = "file:" if value.startswith("file:") else ""
        path = value.removeprefix(scheme)
        for mount in sorted(mount_paths, key=len, reverse=True):
            if path == mount or path.startswith(mount + "/"):
                value = f"{scheme}{mount_paths[mount]}{path[len(mount) :]}"
                break
        address = re.fullmatch(r"0\.0\.0\.0:(\d+)", value)
        if address:
            value = f"127.0.0.1:{by_number[int(address.group(1))]}"
        local_path = value.removeprefix(scheme)
        assert not local_path.startswith("/") or local_path.startswith(str(root)), arg
        assert "0.0.0.0" not in value, arg
        return f"{name}{equals}{value}"

    args = [local(arg) for arg in container["args"]]
    # An empty working directory that must stay empty: the root filesystem is read-only.
    workdir = root / "cwd"
    workdir.mkdir(exist_ok=True)
    log = root / f"ferretdb-{time.monotonic_ns()}.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [str(ferretdb_binary()), *args],
            env=_container_env(container, objects),  # nothing from this test's environment
            cwd=workdir,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    pod = LocalPod(process, volumes, ports, workdir, log)
    try:
        yield pod
    finally:
        stop_process(process, 15)


def _wait_for_probe(pod: LocalPod, probe: dict[str, Any]) -> None:
    deadline = time.monotonic() + probe["periodSeconds"] * probe["failureThreshold"]
    while True:
        assert pod.process.poll() is None, pod.log.read_text()[-3000:]
        with contextlib.suppress(URLError, ConnectionError, socket.timeout):
            if pod.get(probe["httpGet"]["path"], probe["httpGet"]["port"]) == 200:
                return
        assert time.monotonic() < deadline, pod.log.read_text()[-3000:]
        time.sleep(0.1)


def _service_environment(objects: list[dict[str, Any]], pod: LocalPod) -> dict[str, str]:
    """What the auth container gets: its ConfigMap, then its env, with the database's in-cluster
    address replaced by the local process's."""
    deployment = _one(objects, "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    environ = dict(_one(objects, "ConfigMap")["data"])
    environ.update(_container_env(container, objects))
    statefulset = _one(objects, "StatefulSet")
    host = f"{statefulset['metadata']['name']}-0.{statefulset['spec']['serviceName']}."
    uri = environ["MONGO_URI"]
    assert uri.startswith(f"mongodb://{host}"), uri
    environ["MONGO_URI"] = re.sub(
        r"^mongodb://[^/]+:27017/", f"mongodb://127.0.0.1:{pod.ports['mongodb']}/", uri
    )
    return environ


async def _write_and_read(environ: dict[str, str], marker: str) -> list[str]:
    settings = load_settings(AuthSettings, environ)
    client = create_client(settings)
    try:
        collection = client[settings.mongo_db]["engine_check"]
        await collection.insert_one({"marker": marker})
        return [doc["marker"] async for doc in collection.find({}, {"_id": 0}).sort("marker")]
    finally:
        await client.close()


async def test_the_rendered_ferretdb_settings_serve_a_service(helm: Helm, tmp_path: Path) -> None:
    objects = helm.template("auth", FERRETDB)
    container = _database_container(objects)
    with run_rendered_ferretdb(objects, tmp_path) as pod:
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            _wait_for_probe(pod, container[probe])
        environ = _service_environment(objects, pod)
        assert environ["MONGO_USERNAME"] and environ["MONGO_PASSWORD"]
        assert await _write_and_read(environ, "first") == ["first"]

        # The credentials are checked: none, or a wrong password, is refused.
        anonymous = {k: v for k, v in environ.items() if not k.startswith("MONGO_PASS")}
        anonymous.pop("MONGO_USERNAME")
        with pytest.raises(OperationFailure, match="requires authentication"):
            await _write_and_read(anonymous, "anonymous")
        with pytest.raises(OperationFailure, match="Authentication failed"):
            await _write_and_read(environ | {"MONGO_PASSWORD": "not-the-password"}, "wrong")

        # /debug/vars shows the command line: the password is not in it.
        with urlopen(f"http://127.0.0.1:{pod.ports['debug']}/debug/vars", timeout=5) as response:
            assert environ["MONGO_PASSWORD"] not in response.read().decode()

    data = pod.volumes["data"]
    state = json.loads((data / "state.json").read_text())
    assert state["telemetry"] is False, state
    assert {"admin.sqlite", f"{environ['MONGO_DB']}.sqlite"} <= {p.name for p in data.iterdir()}
    assert not list(pod.workdir.iterdir()), "FerretDB wrote outside its volumes"

    # A restarted pod finds the user and the data on its volume claim.
    with run_rendered_ferretdb(objects, tmp_path, volumes=pod.volumes) as again:
        _wait_for_probe(again, container["readinessProbe"])
        assert await _write_and_read(_service_environment(objects, again), "second") == [
            "first",
            "second",
        ]
