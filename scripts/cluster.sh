#!/usr/bin/env bash
# The Checkout Platform on a local kind cluster (docs/kubernetes.md).
#
#   scripts/cluster.sh up        kind cluster + Traefik, build the images and load them into kind,
#                                install the operator chart, apply the sample Checkout, wait until
#                                it is Ready, load the sample catalogue, print the URL
#   scripts/cluster.sh cluster   only the kind cluster and Traefik (for skaffold and the tests)
#   scripts/cluster.sh operator  the cluster, the images built and loaded, and the operator
#                                installed by its chart: everything but the sample (the tests)
#   scripts/cluster.sh build     the cluster, and this tree's images built and loaded (no install)
#   scripts/cluster.sh release [VERSION]  the operator of a released version (RELEASES; the last
#                                one by default) installed from its own tree, taken from git
#                                history once into the cache, its images tagged VERSION
#   scripts/cluster.sh images    only build the images the cluster needs (offline path)
#   scripts/cluster.sh load IMAGE...   load local images into the cluster's node
#   scripts/cluster.sh url       print the platform's URL
#   scripts/cluster.sh down      delete the kind cluster
#
# Two ways to get images, one script (CHECKOUT_IMAGES):
#   upstream  the stock kind node image and upstream images, pulled from their registries;
#   offline   every image built on this machine from Debian packages and Go modules
#             (k8s/offline/build.sh), for machines without a registry and air-gapped sites;
#   auto      (default) upstream when a Docker engine answers; where none does but Debian's
#             dockerd is installed, a private engine (k8s/offline/engine/engine.sh) and offline.
#
# Needs Docker (an engine, or dockerd to start one) and kind (built from its Go module when missing
# and Go is there). helm and kubectl are taken from PATH, else the pinned binaries of
# scripts/ensure_helm.py (linux/amd64). Creating the cluster makes kind-<cluster> the current
# kube-context (as kind does, for skaffold); every command here names that context explicitly, so
# it never touches another cluster. Safe to run again: every step checks first.
#
# Settings (environment): CHECKOUT_CLUSTER (default checkout), CHECKOUT_HTTP_PORT (default 8080)
# and CHECKOUT_HTTPS_PORT (default 8443), the host ports on 127.0.0.1 kind maps to the ingress,
# CHECKOUT_IMAGES (auto), CHECKOUT_IMAGE_TAG (default: the git commit, plus a timestamp when the
# tree has changes), CHECKOUT_READY_TIMEOUT (default 900s), CHECKOUT_ADMIN_FILE (where `up` keeps
# the sample's admin credentials; default .local/kind-admin.json), CHECKOUT_RELEASES (the releases
# file `release` reads; default RELEASES), CHECKOUT_CACHE_DIR (where released trees are kept;
# default ~/.cache/checkout-platform).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CLUSTER="${CHECKOUT_CLUSTER:-checkout}"
CONTEXT="kind-${CLUSTER}"
HTTP_PORT="${CHECKOUT_HTTP_PORT:-8080}"
HTTPS_PORT="${CHECKOUT_HTTPS_PORT:-8443}"
READY_TIMEOUT="${CHECKOUT_READY_TIMEOUT:-900s}"
IMAGES="${CHECKOUT_IMAGES:-auto}"
SAMPLE="${ROOT}/k8s/checkout-sample.yaml"
CRD="${ROOT}/k8s/crd.yaml"
TRAEFIK="${ROOT}/k8s/ingress/traefik.yaml"
OFFLINE="${ROOT}/k8s/offline"
OPERATOR_RELEASE="checkout-operator"
RELEASES="${CHECKOUT_RELEASES:-${ROOT}/RELEASES}"
CACHE="${CHECKOUT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/checkout-platform}"
OPERATOR_NAMESPACE="checkout-system"
# The images built from services/Dockerfile: the four services and the storefront.
SERVICES=(auth product cart order storefront)

say() { printf '==> %s\n' "$*" >&2; }
die() {
  printf 'cluster.sh: %s\n' "$*" >&2
  exit 1
}

# -- prerequisites ----------------------------------------------------------------------------------

engine_answers() { command -v docker >/dev/null 2>&1 && timeout 20 docker info >/dev/null 2>&1; }

# Decide upstream or offline, and make sure an engine answers (starting the private one if that
# is how this machine works). Exits 2, naming what is missing, when there is no way.
require_docker_and_kind() {
  local missing=()
  if [[ "${IMAGES}" == "auto" ]]; then
    if engine_answers && [[ "${DOCKER_HOST:-}" != "unix:///run/checkout-docker/docker.sock" ]]; then
      IMAGES="upstream"
    elif command -v dockerd >/dev/null 2>&1; then
      IMAGES="offline"
    fi
  fi
  if [[ "${IMAGES}" == "offline" ]] && ! engine_answers && command -v dockerd >/dev/null 2>&1; then
    eval "$(bash "${OFFLINE}/engine/engine.sh" start)"
  fi
  if ! command -v docker >/dev/null 2>&1; then
    missing+=("Docker (no docker command)")
  elif ! engine_answers; then
    missing+=("a running Docker engine (docker info fails)")
  fi
  if ! command -v kind >/dev/null 2>&1 && ! command -v go >/dev/null 2>&1; then
    missing+=("kind (https://kind.sigs.k8s.io), or Go to build it")
  fi
  if ((${#missing[@]})); then
    {
      printf 'cluster.sh: a kind cluster needs Docker and kind; missing here:\n'
      printf '  - %s\n' "${missing[@]}"
      printf 'Without them, run the platform as local processes instead: make dev\n'
    } >&2
    exit 2
  fi
  [[ "${IMAGES}" == "auto" ]] && IMAGES="upstream"
  case "${IMAGES}" in
    upstream | offline) ;;
    *) die "CHECKOUT_IMAGES must be auto, upstream or offline (got '${IMAGES}')" ;;
  esac
  if command -v kind >/dev/null 2>&1; then
    KIND_BIN="$(command -v kind)"
  else
    KIND_BIN="$(bash "${OFFLINE}/build.sh" kind)"
  fi
}

tool() {
  # helm or kubectl: from PATH (type -P: a binary, never a function or alias of that name), else
  # the pinned binary (fetched once, cached).
  local name="$1" path
  if path="$(type -P "${name}")"; then
    printf '%s\n' "${path}"
  elif path="$(python3 "${ROOT}/scripts/ensure_helm.py" --tool "${name}")"; then
    printf '%s\n' "${path}"
  else
    die "${name} is not on PATH and the pinned one could not be fetched; install ${name}"
  fi
}

setup_tools() {
  KUBECTL_BIN="$(tool kubectl)"
  HELM_BIN="$(tool helm)"
}

# kind, kubectl and helm, always against the kind cluster's context.
kind_() { "${KIND_BIN}" "$@"; }
kube() { "${KUBECTL_BIN}" --context "${CONTEXT}" "$@"; }
kube_helm() { "${HELM_BIN}" --kube-context "${CONTEXT}" "$@"; }

cluster_exists() { kind_ get clusters 2>/dev/null | grep -qx "${CLUSTER}"; }

# The images of the offline path: names from k8s/offline/build.sh, one place.
offline_name() { bash "${OFFLINE}/build.sh" names | sed -n "s/^$1=//p"; }

# -- steps ------------------------------------------------------------------------------------------

build_offline_images() {
  [[ "${IMAGES}" == "offline" ]] || return 0
  say "building (or taking from the cache) every image of the offline path"
  bash "${OFFLINE}/build.sh" all
}

kind_config() {
  # The config with this run's name and host ports; the offline one names the node image built
  # here.
  local source="${ROOT}/k8s/kind-cluster.yaml"
  [[ "${IMAGES}" == "offline" ]] && source="${OFFLINE}/kind-cluster.yaml"
  sed -e "s/^name: .*/name: ${CLUSTER}/" -e "s/hostPort: 8080$/hostPort: ${HTTP_PORT}/" \
    -e "s/hostPort: 8443$/hostPort: ${HTTPS_PORT}/" "${source}"
}

create_cluster() {
  if cluster_exists; then
    say "kind cluster ${CLUSTER} exists"
  else
    say "creating kind cluster ${CLUSTER} (${IMAGES} images)"
    local config
    config="$(mktemp)"
    kind_config >"${config}"
    kind_ create cluster --name "${CLUSTER}" --config "${config}" --wait 180s || {
      rm -f "${config}"
      die "kind create cluster failed"
    }
    rm -f "${config}"
  fi
  kind_ export kubeconfig --name "${CLUSTER}" >/dev/null
}

# Cluster DNS answers for the cluster only: the forward plugin (which would send every other name
# to the node's resolver, and so off this machine) is removed from CoreDNS's Corefile.
close_cluster_dns() {
  local corefile closed
  corefile="$(kube -n kube-system get configmap coredns -o 'jsonpath={.data.Corefile}')"
  closed="$(python3 -c 'import re, sys; print(re.sub(r"\n[ \t]*forward [^\n{]*\{[^}]*\}|\n[ \t]*forward [^\n]*", "", sys.stdin.read()))' <<<"${corefile}")"
  if [[ "${closed}" != "${corefile}" ]]; then
    say "removing the forward plugin from CoreDNS (no query leaves the machine)"
    kube -n kube-system create configmap coredns --from-literal="Corefile=${closed}" \
      --dry-run=client -o yaml | kube apply -f - >/dev/null
    kube -n kube-system rollout restart deployment/coredns >/dev/null
  fi
  kube -n kube-system rollout status deployment/coredns --timeout=180s >/dev/null
}

load_images() {
  # kind load skips images the node already has with the same id.
  kind_ load docker-image --name "${CLUSTER}" "$@" >&2
}

install_ingress_controller() {
  if [[ "${IMAGES}" == "offline" ]]; then
    load_images "$(offline_name INGRESS_IMAGE)"
  fi
  say "installing Traefik (k8s/ingress/traefik.yaml)"
  kube apply -f "${TRAEFIK}" >/dev/null
  kube -n traefik rollout status deployment/traefik --timeout=300s >&2
}

image_tag() {
  if [[ -n "${CHECKOUT_IMAGE_TAG:-}" ]]; then
    printf '%s\n' "${CHECKOUT_IMAGE_TAG}"
    return
  fi
  local rev
  rev="$(git -C "${ROOT}" rev-parse --short=12 HEAD 2>/dev/null || echo local)"
  # A changed tree gets a new tag, so the pods are replaced rather than keeping an old image.
  if [[ -n "$(git -C "${ROOT}" status --porcelain -- services operator charts pyproject.toml uv.lock 2>/dev/null)" ]]; then
    rev="${rev}-dev$(date +%Y%m%d%H%M%S)"
  fi
  printf '%s\n' "${rev}"
}

docker_build() {
  # The offline path builds on the Python base made here, over the host's network (the private
  # engine has no bridge), with the host's CA bundle handed to the build steps that download
  # packages (a BuildKit secret: never stored in an image).
  local args=()
  if [[ "${IMAGES}" == "offline" ]]; then
    args+=(--network host --build-arg "PYTHON_IMAGE=$(offline_name PYTHON_IMAGE)")
  fi
  local bundle="${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}"
  [[ -f "${bundle}" ]] && args+=(--secret "id=ca-certificates,src=${bundle}")
  DOCKER_BUILDKIT=1 "${CHECKOUT_DOCKER:-docker}" build "${args[@]}" "$@" >&2
}

build_and_load_images() {
  local tag="$1" images=() service
  for service in "${SERVICES[@]}"; do
    say "building checkout/${service}:${tag}"
    docker_build --file "${ROOT}/services/Dockerfile" --build-arg "SERVICE=${service}" \
      --tag "checkout/${service}:${tag}" "${ROOT}"
    images+=("checkout/${service}:${tag}")
  done
  say "building checkout/operator:${tag}"
  docker_build --file "${ROOT}/operator/Dockerfile" --tag "checkout/operator:${tag}" "${ROOT}"
  images+=("checkout/operator:${tag}")
  [[ "${IMAGES}" == "offline" ]] && images+=("$(offline_name FERRETDB_IMAGE)")
  say "loading the images into kind"
  load_images "${images[@]}"
}

install_operator() {
  local tag="$1" args=() service
  # Helm installs crds/ only on first install and never upgrades it: apply the CRDs directly.
  say "applying the Checkout and CheckoutBackup CRDs"
  kube apply --server-side --force-conflicts -f "${CRD}" >/dev/null
  wait_for_condition crd/checkouts.checkout.platform.io Established 120
  wait_for_condition crd/checkoutbackups.checkout.platform.io Established 120
  for service in "${SERVICES[@]}"; do
    args+=(--set "serviceImages.${service}.repository=checkout/${service}")
    # --set-string: a tag of digits only (a commit id can be one) is a string, not a number.
    args+=(--set-string "serviceImages.${service}.tag=${tag}")
  done
  say "installing the operator chart (release ${OPERATOR_RELEASE}, namespace ${OPERATOR_NAMESPACE})"
  kube_helm upgrade --install "${OPERATOR_RELEASE}" "${ROOT}/charts/checkout-operator" \
    --namespace "${OPERATOR_NAMESPACE}" --create-namespace \
    --set image.repository=checkout/operator --set-string "image.tag=${tag}" "${args[@]}" \
    --wait --timeout 5m >/dev/null
}

# wait_for_condition OBJECT TYPE SECONDS [kubectl args]: until the object's condition TYPE is True.
# A loop rather than `kubectl wait`, which some kubectl versions end with an error ("status.conditions
# accessor error") when the object has no status yet, as a CRD or Checkout just applied has not.
wait_for_condition() {
  local object="$1" type="$2" seconds="$3" status=""
  shift 3
  local deadline=$((SECONDS + seconds))
  while ((SECONDS < deadline)); do
    status="$(kube "$@" get "${object}" -o "jsonpath={.status.conditions[?(@.type==\"${type}\")].status}" 2>/dev/null || true)"
    [[ "${status}" == "True" ]] && return 0
    sleep 2
  done
  say "${object}: condition ${type} is '${status:-unset}' after ${seconds}s"
  return 1
}

sample_field() {
  kube get -f "${SAMPLE}" -o "jsonpath=$1"
}

apply_sample_and_wait() {
  say "applying k8s/checkout-sample.yaml"
  kube apply -f "${SAMPLE}" >/dev/null
  local name namespace
  name="$(sample_field '{.metadata.name}')"
  namespace="$(sample_field '{.metadata.namespace}')"
  say "waiting until Checkout ${namespace}/${name} is Ready (up to ${READY_TIMEOUT})"
  if ! wait_for_condition "checkout/${name}" Ready "${READY_TIMEOUT%s}" -n "${namespace}"; then
    kube -n "${namespace}" get "checkout/${name}" -o wide >&2 || true
    kube -n "${namespace}" get pods -l "app.kubernetes.io/instance=${name}" >&2 || true
    die "Checkout ${namespace}/${name} did not become Ready; see: kubectl -n ${OPERATOR_NAMESPACE} logs deploy/${OPERATOR_RELEASE}"
  fi
  local product
  product="$(kube -n "${namespace}" get deployment -o name \
    -l "app.kubernetes.io/instance=${name},app.kubernetes.io/name=product,app.kubernetes.io/component=api")"
  [[ -n "${product}" ]] || die "no product Deployment of Checkout ${name} found"
  # Idempotent: products are matched by sku, stock is never reset.
  say "loading the sample catalogue"
  kube -n "${namespace}" exec "${product}" -- python -m services.product load-catalogue >&2
}

platform_url() {
  local host scheme="http" port="${HTTP_PORT}"
  host="$(sample_field '{.spec.ingress.host}')"
  if [[ "$(sample_field '{.spec.ingress.tls.enabled}')" == "true" ]]; then
    scheme="https"
    port="${HTTPS_PORT}"
  fi
  printf '%s://%s:%s\n' "${scheme}" "${host:-localhost}" "${port}"
}

wait_for_ingress() {
  local url="$1" host code="" attempt
  host="$(sample_field '{.spec.ingress.host}')"
  for attempt in $(seq 1 60); do
    code="$(curl -s -o /dev/null -w '%{http_code}' -H "Host: ${host}" \
      "http://127.0.0.1:${HTTP_PORT}/api/v1/products?pageSize=1" || true)"
    [[ "${code}" == "200" ]] && return 0
    sleep 2
  done
  die "${url}/api/v1/products answers ${code:-nothing} through the ingress, not 200 (tried ${attempt} times)"
}

# -- commands ---------------------------------------------------------------------------------------

cmd_cluster() {
  require_docker_and_kind
  setup_tools
  build_offline_images
  create_cluster
  close_cluster_dns
  install_ingress_controller
  say "cluster ready: kube-context ${CONTEXT}; ingress on http://127.0.0.1:${HTTP_PORT}"
}

cmd_images() {
  require_docker_and_kind
  [[ "${IMAGES}" == "offline" ]] || die "upstream images are pulled, not built: nothing to do (CHECKOUT_IMAGES=offline builds them)"
  build_offline_images
}

cmd_load() {
  (($#)) || die "load: name at least one image"
  require_docker_and_kind
  cluster_exists || die "no kind cluster ${CLUSTER}; run: scripts/cluster.sh cluster"
  load_images "$@"
}

create_admin() {
  # The first admin of the sample, made once; its credentials go to .local/kind-admin.json (like
  # make dev's .local/admin.json), never into the cluster's logs.
  local file="${CHECKOUT_ADMIN_FILE:-${ROOT}/.local/kind-admin.json}" namespace name email password
  namespace="$(sample_field '{.metadata.namespace}')"
  name="$(sample_field '{.metadata.name}')"
  email="admin@$(sample_field '{.spec.ingress.host}')"
  if [[ -f "${file}" ]] && grep -q "\"${email}\"" "${file}"; then
    say "admin credentials: ${file}"
    return
  fi
  password="$(python3 -c 'import secrets; print(secrets.token_urlsafe(18))')"
  kube -n "${namespace}" exec -i "deployment/${name}-auth" -- \
    python -m services.auth create-admin --email "${email}" <<<"${password}" >&2
  mkdir -p "$(dirname "${file}")"
  (umask 077 && printf '{"email": "%s", "password": "%s"}\n' "${email}" "${password}" >"${file}")
  say "admin credentials: ${file}"
}

cmd_operator() {
  cmd_cluster
  local tag
  tag="$(image_tag)"
  build_and_load_images "${tag}"
  install_operator "${tag}"
}

cmd_build() {
  cmd_cluster
  build_and_load_images "$(image_tag)"
}

# The commit of a released VERSION in RELEASES (the last release without one); exits naming the
# versions it knows when VERSION is not among them.
release_commit() {
  local version="$1" known
  [[ -f "${RELEASES}" ]] || die "no RELEASES file in ${ROOT}"
  known="$(awk '!/^#/ && NF >= 2 { print $1 }' "${RELEASES}" | paste -sd ' ' -)"
  [[ -n "${known}" ]] || die "RELEASES lists no release"
  [[ -n "${version}" ]] || version="${known##* }"
  awk -v v="${version}" '!/^#/ && $1 == v { print $1, $2; found = 1 } END { exit !found }' \
    "${RELEASES}" || die "release ${version} is not in RELEASES (known: ${known})"
}

cmd_release() {
  local version commit tree tmp
  read -r version commit <<<"$(release_commit "${1:-}")"
  git -C "${ROOT}" cat-file -e "${commit}^{commit}" 2>/dev/null ||
    die "release ${version}: commit ${commit} is not in this clone (a shallow clone? git fetch --unshallow)"
  tree="${CACHE}/releases/${version}-${commit:0:12}"
  if [[ ! -f "${tree}/.complete" ]]; then
    say "extracting release ${version} (${commit:0:12}) from git history into ${tree}"
    mkdir -p "${CACHE}/releases"
    tmp="$(mktemp -d "${CACHE}/releases/.${version}.XXXXXX")"
    git -C "${ROOT}" archive --format=tar "${commit}" | tar -x -C "${tmp}"
    touch "${tmp}/.complete"
    rm -rf "${tree}"
    mv -T "${tmp}" "${tree}"
  fi
  say "installing the operator of release ${version} from its own tree"
  CHECKOUT_IMAGE_TAG="${version}" bash "${tree}/scripts/cluster.sh" operator
}

cmd_up() {
  cmd_operator
  local url
  apply_sample_and_wait
  create_admin
  url="$(platform_url)"
  wait_for_ingress "${url}"
  say "the Checkout Platform is up"
  printf '%s\n' "${url}"
}

cmd_url() {
  require_docker_and_kind
  setup_tools
  cluster_exists || die "no kind cluster ${CLUSTER}; run make up"
  kube get -f "${SAMPLE}" >/dev/null 2>&1 || die "the sample Checkout is not applied; run make up"
  platform_url
}

cmd_down() {
  require_docker_and_kind
  if cluster_exists; then
    say "deleting kind cluster ${CLUSTER}"
    kind_ delete cluster --name "${CLUSTER}"
  else
    say "no kind cluster ${CLUSTER}"
  fi
}

case "${1:-}" in
  up) cmd_up ;;
  cluster) cmd_cluster ;;
  operator) cmd_operator ;;
  build) cmd_build ;;
  release) shift && cmd_release "${1:-}" ;;
  images) cmd_images ;;
  load) shift && cmd_load "$@" ;;
  url) cmd_url ;;
  down) cmd_down ;;
  *)
    # The comment block at the top of this file is the usage.
    sed -n '2,/^set -euo pipefail/p' "${BASH_SOURCE[0]}" | grep '^#' | sed 's/^# \{0,1\}//' >&2
    exit 64
    ;;
esac
