"""A real Kubernetes API server for tests, started the way controller-runtime's envtest does.

`KubeAPIServer` runs an upstream ``etcd`` and an upstream ``kube-apiserver`` as child processes
on free loopback ports, with a throw-away CA, serving certificate, admin client certificate
(group ``system:masters``) and service-account signing key made with ``cryptography``. Nothing
else of a cluster runs:

- there is no kube-controller-manager, so there is no garbage collection through
  ownerReferences, no Deployment/ReplicaSet controller (a Deployment never gets Pods or a status
  unless a test patches its ``status`` subresource), no namespace controller (a deleted
  namespace stays ``Terminating``; tests use fresh random namespaces instead), and no
  service-account token controller (the ``ServiceAccount`` admission plugin is disabled);
- there is no scheduler and no kubelet, so Pods stay ``Pending``.

Binaries come from ``KUBEBUILDER_ASSETS`` when it is set (the layout setup-envtest produces: a
folder holding ``kube-apiserver`` and ``etcd``), else from ``k8s/offline/kubernetes/build.sh``,
which builds them once per machine from the Go modules pinned in its ``go.mod`` (the same module
builds the offline kind node's binaries) and caches them.

Both processes log to files in the server's temporary folder; when start-up fails, the error
message carries the last lines of both logs. The API server also writes an audit log (metadata of
every request, blocking mode) that tests read through `KubeAPIServer.audit_events` to count what a
client wrote, as the server saw it.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, TypeVar

import httpx
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from services.local.builds import BuildFailed, built_folder
from services.local.processes import stop_process

ENVTEST_DIR = Path(__file__).resolve().parents[2] / "k8s" / "offline" / "kubernetes"
BUILD_SCRIPT = ENVTEST_DIR / "build.sh"

ADMIN_USER = "checkout-envtest-admin"
ADMIN_GROUP = "system:masters"
SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/24"

_LOG_TAIL_LINES = 40

_T = TypeVar("_T")


class EnvtestError(RuntimeError):
    """The envtest binaries could not be found or built, or the control plane did not start."""


@dataclass(frozen=True)
class Binaries:
    kube_apiserver: Path
    etcd: Path


def pinned_kubernetes_version() -> str:
    """The Kubernetes version ``envtest/go.mod`` pins, without the leading ``v`` (e.g. 1.35.8)."""
    for line in (ENVTEST_DIR / "go.mod").read_text().splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "k8s.io/kubernetes" and fields[1].startswith("v"):
            return fields[1].removeprefix("v")
    raise EnvtestError(f"no k8s.io/kubernetes requirement in {ENVTEST_DIR / 'go.mod'}")


_build_lock = threading.Lock()
_built_dir: Path | None = None


def _binaries_in(folder: Path, origin: str) -> Binaries:
    found = Binaries(kube_apiserver=folder / "kube-apiserver", etcd=folder / "etcd")
    for path in (found.kube_apiserver, found.etcd):
        if not os.access(path, os.X_OK):
            raise EnvtestError(f"{origin}: {path} is missing or not executable")
    return found


def resolve_binaries() -> Binaries:
    """Find ``kube-apiserver`` and ``etcd``: ``KUBEBUILDER_ASSETS`` if set, else the build cache.

    ``build.sh`` runs at most once per process; it returns at once when the cache is warm.
    """
    global _built_dir
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if assets:
        return _binaries_in(Path(assets), "KUBEBUILDER_ASSETS")
    with _build_lock:
        if _built_dir is None:
            try:
                _built_dir = built_folder(BUILD_SCRIPT)
            except BuildFailed as exc:
                raise EnvtestError(
                    f"{exc}; its output is on stderr above. Set KUBEBUILDER_ASSETS to use "
                    "prebuilt binaries instead."
                ) from exc
        return _binaries_in(_built_dir, str(BUILD_SCRIPT))


def _free_port() -> int:
    # The port is released before the server binds it; a clash with another process in that
    # window is rare and surfaces as a start-up error naming the port.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _write_pem(path: Path, data: bytes, *, private: bool = False) -> None:
    path.write_bytes(data)
    if private:
        path.chmod(0o600)


def _key_pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@dataclass(frozen=True)
class _Pki:
    ca_cert: Path
    serving_cert: Path
    serving_key: Path
    client_cert: Path
    client_key: Path
    sa_private_key: Path
    sa_public_key: Path


def _make_pki(folder: Path) -> _Pki:
    """A CA, a serving and an admin client certificate under it, and a service-account key."""
    now = datetime.datetime.now(datetime.UTC)
    # Back-dated so small clock differences never make a fresh certificate "not yet valid".
    not_before = now - datetime.timedelta(hours=1)
    not_after = now + datetime.timedelta(days=7)

    # EC keys for TLS: generating them is near-instant, unlike RSA.
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "checkout-envtest-ca")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )

    def leaf(
        subject: x509.Name, usage: x509.ObjectIdentifier, sans: list[x509.GeneralName]
    ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
            )
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return builder.sign(ca_key, hashes.SHA256()), key

    serving_cert, serving_key = leaf(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]),
        ExtendedKeyUsageOID.SERVER_AUTH,
        [
            x509.DNSName("localhost"),
            x509.DNSName("kubernetes"),
            x509.DNSName("kubernetes.default"),
            x509.DNSName("kubernetes.default.svc"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            # The first address of the service range: the in-cluster "kubernetes" Service.
            x509.IPAddress(ipaddress.ip_address("10.0.0.1")),
        ],
    )
    # The API server takes the CN as the user name and each O as a group.
    client_cert, client_key = leaf(
        x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, ADMIN_GROUP),
                x509.NameAttribute(NameOID.COMMON_NAME, ADMIN_USER),
            ]
        ),
        ExtendedKeyUsageOID.CLIENT_AUTH,
        [],
    )
    # Service-account tokens are signed with RSA (RS256), as in a real cluster.
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    pki = _Pki(
        ca_cert=folder / "ca.crt",
        serving_cert=folder / "apiserver.crt",
        serving_key=folder / "apiserver.key",
        client_cert=folder / "admin.crt",
        client_key=folder / "admin.key",
        sa_private_key=folder / "sa.key",
        sa_public_key=folder / "sa.pub",
    )
    pem = serialization.Encoding.PEM
    _write_pem(pki.ca_cert, ca_cert.public_bytes(pem))
    _write_pem(pki.serving_cert, serving_cert.public_bytes(pem))
    _write_pem(pki.serving_key, _key_pem(serving_key), private=True)
    _write_pem(pki.client_cert, client_cert.public_bytes(pem))
    _write_pem(pki.client_key, _key_pem(client_key), private=True)
    _write_pem(pki.sa_private_key, _key_pem(sa_key), private=True)
    _write_pem(
        pki.sa_public_key,
        sa_key.public_key().public_bytes(pem, serialization.PublicFormat.SubjectPublicKeyInfo),
    )
    return pki


def _require(value: _T | None) -> _T:
    if value is None:
        raise EnvtestError("KubeAPIServer is not running; call start() first")
    return value


def _tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"<cannot read {path}: {exc}>"
    return "\n".join(text.splitlines()[-lines:])


class _Process:
    """A child process whose stdout and stderr go to one log file."""

    def __init__(self, name: str, argv: list[str], log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        self._log: IO[bytes] = log_path.open("wb")
        self.popen = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT
        )

    def exited(self) -> int | None:
        return self.popen.poll()

    def stop(self, timeout: float) -> None:
        stop_process(self.popen, timeout)
        self._log.close()


class KubeAPIServer:
    """etcd plus kube-apiserver on loopback, for the lifetime of a ``with`` block.

    After ``start()`` (or entering the block) ``url``, ``kubeconfig_path``, ``ca_cert_path``,
    ``client_cert_path`` and ``client_key_path`` are set; ``ssl_context()`` gives a context that
    trusts the CA and presents the admin client certificate.
    """

    def __init__(
        self,
        *,
        binaries: Binaries | None = None,
        start_timeout: float = 90.0,
        stop_timeout: float = 15.0,
        extra_apiserver_flags: list[str] | None = None,
        audit: bool = True,
    ) -> None:
        self._binaries = binaries
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.extra_apiserver_flags = list(extra_apiserver_flags or [])
        self.audit = audit
        self._dir: Path | None = None
        self._pki: _Pki | None = None
        self._etcd: _Process | None = None
        self._apiserver: _Process | None = None
        self._url: str | None = None
        self._etcd_url: str | None = None
        self._kubeconfig: Path | None = None
        self.startup_seconds: float | None = None

    # -- connection details -------------------------------------------------------------------

    @property
    def dir(self) -> Path:
        return _require(self._dir)

    @property
    def url(self) -> str:
        return _require(self._url)

    @property
    def etcd_url(self) -> str:
        return _require(self._etcd_url)

    @property
    def kubeconfig_path(self) -> Path:
        return _require(self._kubeconfig)

    @property
    def ca_cert_path(self) -> Path:
        return _require(self._pki).ca_cert

    @property
    def client_cert_path(self) -> Path:
        return _require(self._pki).client_cert

    @property
    def client_key_path(self) -> Path:
        return _require(self._pki).client_key

    @property
    def apiserver_log_path(self) -> Path:
        return _require(self._apiserver).log_path

    @property
    def etcd_log_path(self) -> Path:
        return _require(self._etcd).log_path

    @property
    def audit_log_path(self) -> Path:
        """JSON lines, one per request (stage ResponseComplete), when ``audit`` is on."""
        if not self.audit:
            raise EnvtestError("KubeAPIServer was started with audit=False")
        return self.dir / "audit.log"

    def audit_events(self, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
        """The audit events written after byte ``offset``, and the offset to read on from.

        The log backend runs in blocking mode: an event is in the file before its response is sent.
        """
        path = self.audit_log_path
        with path.open("rb") as log:
            log.seek(offset)
            data = log.read()
        complete = data[: data.rfind(b"\n") + 1]
        events = [json.loads(line) for line in complete.splitlines() if line.strip()]
        return events, offset + len(complete)

    def audit_offset(self) -> int:
        """Where the audit log ends now: pass it to `audit_events` to see only later requests."""
        return self.audit_events(0)[1] if self.audit_log_path.exists() else 0

    def ssl_context(self) -> ssl.SSLContext:
        """Trusts the test CA and authenticates as the admin (``system:masters``)."""
        context = ssl.create_default_context(cafile=str(self.ca_cert_path))
        context.load_cert_chain(str(self.client_cert_path), str(self.client_key_path))
        return context

    # -- lifecycle ----------------------------------------------------------------------------

    def __enter__(self) -> KubeAPIServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        if self._dir is not None:
            raise EnvtestError("KubeAPIServer is already running")
        binaries = self._binaries or resolve_binaries()
        began = time.monotonic()
        self._dir = Path(tempfile.mkdtemp(prefix="checkout-envtest-"))
        try:
            self._pki = _make_pki(self._dir)
            self._start_etcd(binaries.etcd)
            self._wait_for_etcd(began + self.start_timeout)
            self._start_apiserver(binaries.kube_apiserver)
            self._wait_for_apiserver(began + self.start_timeout)
            self._kubeconfig = self._write_kubeconfig()
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - began

    def stop(self) -> None:
        # API server first: stopping etcd under it only produces noise in its log.
        for process in (self._apiserver, self._etcd):
            if process is not None:
                process.stop(self.stop_timeout)
        self._apiserver = self._etcd = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
        self._dir = self._pki = self._url = self._etcd_url = self._kubeconfig = None

    # -- internals ----------------------------------------------------------------------------

    def _start_etcd(self, etcd: Path) -> None:
        client_url = f"http://127.0.0.1:{_free_port()}"
        peer_url = f"http://127.0.0.1:{_free_port()}"
        argv = [
            str(etcd),
            "--name=envtest",
            f"--data-dir={self.dir / 'etcd-data'}",
            f"--listen-client-urls={client_url}",
            f"--advertise-client-urls={client_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=envtest={peer_url}",
            "--initial-cluster-state=new",
            # Test data is thrown away: skipping fsync makes every write much cheaper.
            "--unsafe-no-fsync=true",
            "--log-level=warn",
        ]
        self._etcd_url = client_url
        self._etcd = _Process("etcd", argv, self.dir / "etcd.log")

    def _start_apiserver(self, apiserver: Path) -> None:
        pki = _require(self._pki)
        port = _free_port()
        self._url = f"https://127.0.0.1:{port}"
        argv = [
            str(apiserver),
            f"--etcd-servers={self.etcd_url}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={port}",
            f"--cert-dir={self.dir / 'apiserver-certs'}",
            f"--tls-cert-file={pki.serving_cert}",
            f"--tls-private-key-file={pki.serving_key}",
            f"--client-ca-file={pki.ca_cert}",
            f"--service-account-issuer={self._url}",
            f"--service-account-key-file={pki.sa_public_key}",
            f"--service-account-signing-key-file={pki.sa_private_key}",
            # The admin is in system:masters, which RBAC lets do anything.
            "--authorization-mode=RBAC",
            f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
            # No controller-manager creates service-account tokens, so this plugin would reject
            # every Pod that names a service account.
            "--disable-admission-plugins=ServiceAccount",
            "--allow-privileged=true",
            *self._audit_flags(),
            *self.extra_apiserver_flags,
        ]
        self._apiserver = _Process("kube-apiserver", argv, self.dir / "kube-apiserver.log")

    def _audit_flags(self) -> list[str]:
        if not self.audit:
            return []
        # Metadata level (who, verb, object, status; no bodies) for every request but the
        # health checks: enough for tests to count what a client wrote.
        policy = {
            "apiVersion": "audit.k8s.io/v1",
            "kind": "Policy",
            "omitStages": ["RequestReceived", "ResponseStarted"],
            "rules": [
                {"level": "None", "nonResourceURLs": ["/healthz*", "/readyz*", "/livez*"]},
                {"level": "Metadata"},
            ],
        }
        policy_path = self.dir / "audit-policy.yaml"
        policy_path.write_text(yaml.safe_dump(policy))
        return [
            f"--audit-policy-file={policy_path}",
            f"--audit-log-path={self.audit_log_path}",
            "--audit-log-format=json",
            "--audit-log-mode=blocking",
            "--audit-log-maxbackup=1",
        ]

    def _failure(self, message: str) -> EnvtestError:
        parts = [message]
        for process in (self._etcd, self._apiserver):
            if process is not None:
                code = process.exited()
                state = "running" if code is None else f"exited with code {code}"
                parts.append(
                    f"--- {process.name} ({state}), last lines of {process.log_path}:\n"
                    + _tail(process.log_path)
                )
        return EnvtestError("\n".join(parts))

    def _check_alive(self) -> None:
        for process in (self._etcd, self._apiserver):
            if process is not None and process.exited() is not None:
                raise self._failure(f"{process.name} exited during start-up")

    def _wait_for_etcd(self, deadline: float) -> None:
        url = f"{self.etcd_url}/health"
        last = "no answer yet"
        with httpx.Client(timeout=2.0) as client:
            while True:
                self._check_alive()
                try:
                    response = client.get(url)
                    if response.status_code == 200 and response.json().get("health") == "true":
                        return
                    last = f"HTTP {response.status_code}: {response.text[:200]}"
                except (httpx.HTTPError, ValueError) as exc:
                    last = repr(exc)
                if time.monotonic() > deadline:
                    raise self._failure(f"etcd at {url} not healthy in time; last: {last}")
                time.sleep(0.1)

    def _wait_for_apiserver(self, deadline: float) -> None:
        url = f"{self.url}/readyz"
        last = "no answer yet"
        with httpx.Client(verify=self.ssl_context(), timeout=5.0) as client:
            while True:
                self._check_alive()
                try:
                    response = client.get(url)
                    if response.status_code == 200 and response.text.strip() == "ok":
                        return
                    last = f"HTTP {response.status_code}: {response.text[-500:]}"
                except httpx.HTTPError as exc:
                    last = repr(exc)
                if time.monotonic() > deadline:
                    raise self._failure(
                        f"kube-apiserver at {url} not ready within {self.start_timeout:.0f}s; "
                        f"last: {last}"
                    )
                time.sleep(0.2)

    def _write_kubeconfig(self) -> Path:
        pki = _require(self._pki)
        config: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "envtest",
                    "cluster": {"server": self.url, "certificate-authority": str(pki.ca_cert)},
                }
            ],
            "users": [
                {
                    "name": ADMIN_USER,
                    "user": {
                        "client-certificate": str(pki.client_cert),
                        "client-key": str(pki.client_key),
                    },
                }
            ],
            "contexts": [
                {
                    "name": "envtest",
                    "context": {"cluster": "envtest", "user": ADMIN_USER, "namespace": "default"},
                }
            ],
            "current-context": "envtest",
            "preferences": {},
        }
        path = self.dir / "kubeconfig"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        path.chmod(0o600)
        return path


def kube_client(server: KubeAPIServer, *, timeout: float = 10.0) -> httpx.Client:
    """An ``httpx.Client`` for ``server``: base URL, CA trust and admin client certificate."""
    return httpx.Client(base_url=server.url, verify=server.ssl_context(), timeout=timeout)


def async_kube_client(server: KubeAPIServer, *, timeout: float = 10.0) -> httpx.AsyncClient:
    """Like `kube_client`, for async tests."""
    return httpx.AsyncClient(base_url=server.url, verify=server.ssl_context(), timeout=timeout)
