#!/usr/bin/env bash
# The Checkout Platform on a local kind cluster (docs/kubernetes.md).
#
#   scripts/cluster.sh up        kind cluster + ingress-nginx, build the images and load them into
#                                kind, install the operator chart, apply the sample Checkout, wait
#                                until it is Ready, load the sample catalogue, print the URL
#   scripts/cluster.sh cluster   only the kind cluster and ingress-nginx (for skaffold)
#   scripts/cluster.sh url       print the platform's URL
#   scripts/cluster.sh down      delete the kind cluster
#
# Needs Docker (a running engine) and kind. helm and kubectl are taken from PATH, else the pinned
# binaries of scripts/ensure_helm.py (linux/amd64). Creating the cluster makes kind-<cluster> the
# current kube-context (as kind does, for skaffold); every command here names that context
# explicitly, so it never touches another cluster. Safe to run again: every step checks first.
#
# Settings (environment): CHECKOUT_CLUSTER (default checkout, the name in k8s/kind-cluster.yaml),
# CHECKOUT_HTTP_PORT (default 8080, the host port k8s/kind-cluster.yaml maps to the ingress),
# CHECKOUT_IMAGE_TAG (default: the git commit, plus a timestamp when the tree has changes),
# CHECKOUT_READY_TIMEOUT (default 900s).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CLUSTER="${CHECKOUT_CLUSTER:-checkout}"
CONTEXT="kind-${CLUSTER}"
HTTP_PORT="${CHECKOUT_HTTP_PORT:-8080}"
READY_TIMEOUT="${CHECKOUT_READY_TIMEOUT:-900s}"
KIND_CONFIG="${ROOT}/k8s/kind-cluster.yaml"
SAMPLE="${ROOT}/k8s/checkout-sample.yaml"
CRD="${ROOT}/k8s/crd.yaml"
# ingress-nginx's manifest for kind: hostPorts 80/443 on the node labelled ingress-ready=true.
INGRESS_NGINX_VERSION="controller-v1.14.3"
INGRESS_NGINX_MANIFEST="https://raw.githubusercontent.com/kubernetes/ingress-nginx/${INGRESS_NGINX_VERSION}/deploy/static/provider/kind/deploy.yaml"
OPERATOR_RELEASE="checkout-operator"
OPERATOR_NAMESPACE="checkout-system"
SERVICES=(auth product cart order)

say() { printf '==> %s\n' "$*" >&2; }
die() {
  printf 'cluster.sh: %s\n' "$*" >&2
  exit 1
}

# -- prerequisites ----------------------------------------------------------------------------------

require_docker_and_kind() {
  local missing=()
  if ! command -v docker >/dev/null 2>&1; then
    missing+=("Docker (no docker command)")
  elif ! docker info >/dev/null 2>&1; then
    missing+=("a running Docker engine (docker info fails)")
  fi
  command -v kind >/dev/null 2>&1 || missing+=("kind (https://kind.sigs.k8s.io)")
  if ((${#missing[@]})); then
    {
      printf 'cluster.sh: a kind cluster needs Docker and kind; missing here:\n'
      printf '  - %s\n' "${missing[@]}"
      printf 'Without them, run the platform as local processes instead: make dev\n'
    } >&2
    exit 2
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

# kubectl and helm, always against the kind cluster's context.
kube() { "${KUBECTL_BIN}" --context "${CONTEXT}" "$@"; }
kube_helm() { "${HELM_BIN}" --kube-context "${CONTEXT}" "$@"; }

cluster_exists() { kind get clusters 2>/dev/null | grep -qx "${CLUSTER}"; }

# -- steps ------------------------------------------------------------------------------------------

create_cluster() {
  if cluster_exists; then
    say "kind cluster ${CLUSTER} exists"
  else
    say "creating kind cluster ${CLUSTER} from k8s/kind-cluster.yaml"
    kind create cluster --name "${CLUSTER}" --config "${KIND_CONFIG}" --wait 180s
  fi
  kind export kubeconfig --name "${CLUSTER}" >/dev/null
}

install_ingress_controller() {
  say "installing ingress-nginx ${INGRESS_NGINX_VERSION}"
  kube apply -f "${INGRESS_NGINX_MANIFEST}" >/dev/null
  kube -n ingress-nginx rollout status deployment/ingress-nginx-controller --timeout=300s
  # The admission webhook must answer before any Ingress can be created.
  kube -n ingress-nginx wait --for=condition=Complete job --all --timeout=300s >/dev/null
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

build_and_load_images() {
  local tag="$1" images=() service
  for service in "${SERVICES[@]}"; do
    say "building checkout/${service}:${tag}"
    docker build --file "${ROOT}/services/Dockerfile" --build-arg "SERVICE=${service}" \
      --tag "checkout/${service}:${tag}" "${ROOT}"
    images+=("checkout/${service}:${tag}")
  done
  say "building checkout/operator:${tag}"
  docker build --file "${ROOT}/operator/Dockerfile" --tag "checkout/operator:${tag}" "${ROOT}"
  images+=("checkout/operator:${tag}")
  say "loading the images into kind"
  kind load docker-image --name "${CLUSTER}" "${images[@]}"
}

install_operator() {
  local tag="$1" args=() service
  # Helm installs crds/ only on first install and never upgrades it: apply the one CRD directly.
  say "applying the Checkout CRD"
  kube apply --server-side --force-conflicts -f "${CRD}" >/dev/null
  kube wait --for=condition=Established crd/checkouts.checkout.platform.io --timeout=120s >/dev/null
  for service in "${SERVICES[@]}"; do
    args+=(--set "serviceImages.${service}.repository=checkout/${service}")
    args+=(--set "serviceImages.${service}.tag=${tag}")
  done
  say "installing the operator chart (release ${OPERATOR_RELEASE}, namespace ${OPERATOR_NAMESPACE})"
  kube_helm upgrade --install "${OPERATOR_RELEASE}" "${ROOT}/charts/checkout-operator" \
    --namespace "${OPERATOR_NAMESPACE}" --create-namespace \
    --set image.repository=checkout/operator --set "image.tag=${tag}" "${args[@]}" \
    --wait --timeout 5m >/dev/null
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
  if ! kube -n "${namespace}" wait "checkout/${name}" --for=condition=Ready --timeout="${READY_TIMEOUT}"; then
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
    port="${CHECKOUT_HTTPS_PORT:-8443}"
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
  create_cluster
  install_ingress_controller
  say "cluster ready: kube-context ${CONTEXT}; ingress on http://127.0.0.1:${HTTP_PORT}"
}

cmd_up() {
  cmd_cluster
  local tag url
  tag="$(image_tag)"
  build_and_load_images "${tag}"
  install_operator "${tag}"
  apply_sample_and_wait
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
    kind delete cluster --name "${CLUSTER}"
  else
    say "no kind cluster ${CLUSTER}"
  fi
}

case "${1:-}" in
  up) cmd_up ;;
  cluster) cmd_cluster ;;
  url) cmd_url ;;
  down) cmd_down ;;
  *)
    # The comment block at the top of this file is the usage.
    sed -n '2,/^set -euo pipefail/p' "${BASH_SOURCE[0]}" | grep '^#' | sed 's/^# \{0,1\}//' >&2
    exit 64
    ;;
esac
