#!/usr/bin/env bash
# The offline path: every image a kind cluster of this platform needs, built on this machine from
# Debian's packages and Go modules, with no container registry (machines like ours, air-gapped
# sites). docs/kubernetes.md explains it; versions are pinned in versions.env and
# kubernetes/go.mod.
#
#   build.sh [all]        everything below (the default)
#   build.sh tools        kind, crictl, CoreDNS, local-path-provisioner, FerretDB, Traefik binaries
#   build.sh images       the images; `build.sh node` only the node image and what it holds
#   build.sh names        print NAME=image lines (node, ingress, ferretdb, python, debian ...)
#   build.sh kind         print the path of the kind binary (building it when missing)
#   build.sh base         only the Debian and Python base images
#
# Needs a Docker engine (DOCKER_HOST; engine/engine.sh starts a private one), Go, debootstrap and
# the host's apt sources (the Debian mirror is read from them). Binaries are cached under
#   ${CHECKOUT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/checkout-platform}/{tools,kubernetes,rootfs}
# and images in the engine; an image is rebuilt only when its inputs change (each carries the
# sha256 of its build context, Dockerfile and binaries included, as the label checkout.offline.key).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=k8s/offline/versions.env disable=SC1091
source "$here/versions.env"
cache="${CHECKOUT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/checkout-platform}"
DOCKER="${CHECKOUT_DOCKER:-docker}"
K8S_VERSION="v$(awk '$1 == "k8s.io/kubernetes" { sub(/^v/, "", $2); print $2; exit }' "$here/kubernetes/go.mod")"
ETCD_VERSION="$(awk '$1 == "go.etcd.io/etcd/server/v3" { sub(/^v/, "", $2); print $2; exit }' "$here/kubernetes/go.mod")"

# Image names. The upstream names where the image holds exactly that upstream version (kubeadm and
# the manifests look for them by these names); our own prefix where it is an equivalent, not the
# same thing (the node, the Debian and Python bases).
DEBIAN_IMAGE="checkout-offline/debian:${DEBIAN_SUITE}"
PYTHON_IMAGE="checkout-offline/python:3.11-${DEBIAN_SUITE}"
NODE_IMAGE="checkout-offline/kind-node:${K8S_VERSION}"
PAUSE_IMAGE="registry.k8s.io/pause:${PAUSE_VERSION}"
ETCD_IMAGE="registry.k8s.io/etcd:${ETCD_VERSION}-0"
COREDNS_IMAGE="registry.k8s.io/coredns/coredns:${COREDNS_VERSION}"
LOCAL_PATH_IMAGE="docker.io/rancher/local-path-provisioner:${LOCAL_PATH_PROVISIONER_VERSION}"
FERRETDB_IMAGE="ghcr.io/ferretdb/ferretdb:${FERRETDB_VERSION#v}"
TRAEFIK_IMAGE="docker.io/library/traefik:${TRAEFIK_VERSION:-}"

say() { printf '==> offline: %s\n' "$*" >&2; }
die() {
    printf 'k8s/offline/build.sh: %s\n' "$*" >&2
    exit 1
}

# -- binaries ---------------------------------------------------------------------------------------

go_env=(env CGO_ENABLED=0 GOTOOLCHAIN=local)
go_flags=(-p 2 -trimpath "-ldflags=-s -w")

# go_install NAME MODULE@VERSION [PACKAGE]: a Go binary into the cache, once; prints its path.
go_install() {
    local name="$1" module="$2" package="${3:-$2}"
    local version="${module##*@}"
    local dir="$cache/tools/$name-$version"
    if [[ ! -x "$dir/$name" ]]; then
        command -v go >/dev/null || die "'go' is needed to build $name; install Go"
        mkdir -p "$cache/tools"
        local tmp start
        tmp="$(mktemp -d "$cache/tools/.$name.XXXXXX")"
        say "building $name $version from its Go module"
        start=$(date +%s)
        GOBIN="$tmp" "${go_env[@]}" go install "${go_flags[@]}" "${package%@*}@$version" >&2 ||
            { rm -rf "$tmp"; die "go install ${package%@*}@$version failed"; }
        mkdir -p "$dir"
        mv "$tmp"/* "$dir/$name"
        rm -rf "$tmp"
        say "built $name in $(($(date +%s) - start))s"
    fi
    printf '%s\n' "$dir/$name"
}

# FerretDB's module zip lacks the generated version file its build insists on, so it is built
# from a copy of the module (as services/local/mongo_server.py does for the tests), statically.
ferretdb_binary() {
    local dir="$cache/tools/ferretdb-${FERRETDB_VERSION}-static"
    if [[ ! -x "$dir/ferretdb" ]]; then
        local src tmp start
        say "building FerretDB ${FERRETDB_VERSION} (static) from its Go module"
        start=$(date +%s)
        src="$(go mod download -json "github.com/FerretDB/FerretDB@${FERRETDB_VERSION}" |
            python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')"
        tmp="$(mktemp -d)"
        cp -r "$src" "$tmp/src" && chmod -R u+w "$tmp/src"
        echo "${FERRETDB_VERSION}" >"$tmp/src/build/version/version.txt"
        (cd "$tmp/src" && "${go_env[@]}" go build "${go_flags[@]}" -o "$tmp/ferretdb" ./cmd/ferretdb) >&2 ||
            { rm -rf "$tmp"; die "building FerretDB failed"; }
        mkdir -p "$dir" && mv "$tmp/ferretdb" "$dir/ferretdb" && rm -rf "$tmp"
        say "built FerretDB in $(($(date +%s) - start))s"
    fi
    printf '%s\n' "$dir/ferretdb"
}

kubernetes_dir() { bash "$here/kubernetes/build.sh" all; }
kind_binary() { go_install kind "sigs.k8s.io/kind@${KIND_VERSION}"; }
kind_module_dir() {
    go mod download -json "sigs.k8s.io/kind@${KIND_VERSION}" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])'
}
kubernetes_module_dir() {
    (cd "$here/kubernetes" && go list -m -f '{{.Dir}}' k8s.io/kubernetes)
}
traefik_binary() {
    [[ -n "${TRAEFIK_VERSION:-}" ]] || die "TRAEFIK_VERSION is not pinned in versions.env"
    local dir
    dir="$(bash "$here/go/traefik/build.sh")"
    printf '%s\n' "$dir/traefik"
}

build_tools() {
    kind_binary >/dev/null
    go_install crictl "sigs.k8s.io/cri-tools@${CRICTL_VERSION}" "sigs.k8s.io/cri-tools/cmd/crictl@${CRICTL_VERSION}" >/dev/null
    go_install coredns "github.com/coredns/coredns@${COREDNS_VERSION}" >/dev/null
    go_install local-path-provisioner "github.com/rancher/local-path-provisioner@${LOCAL_PATH_PROVISIONER_VERSION}" >/dev/null
    ferretdb_binary >/dev/null
    traefik_binary >/dev/null
    kubernetes_dir >/dev/null
}

# -- images -----------------------------------------------------------------------------------------

image_key() { "$DOCKER" image inspect -f '{{ index .Config.Labels "checkout.offline.key" }}' "$1" 2>/dev/null || true; }

# up_to_date NAME KEY: true (and says so) when the image NAME was made from inputs with this key.
up_to_date() {
    [[ "$(image_key "$1")" == "$2" ]] || return 1
    say "$1 is up to date"
}

# context_key DIR [EXTRA...]: the sha256 of every file in a staged build context plus EXTRA words
# (e.g. the base image's id), so an image is rebuilt exactly when something it is made of changed.
context_key() {
    local dir="$1"
    shift
    {
        (cd "$dir" && find . -type f -print0 | sort -z | xargs -0 sha256sum)
        printf '%s\n' "$@"
    } | sha256sum | cut -c1-64
}

# build_image NAME DIR [docker build args...]: build DIR as NAME unless an image of that name was
# built from the same inputs.
build_image() {
    local name="$1" dir="$2"
    shift 2
    local key base_id=""
    base_id="$("$DOCKER" image inspect -f '{{.Id}}' "$DEBIAN_IMAGE" 2>/dev/null || true)"
    key="$(context_key "$dir" "$base_id" "$@")"
    up_to_date "$name" "$key" && return
    say "building $name"
    local start
    start=$(date +%s)
    # --network host: the private engine has no bridge; apt reaches the mirror over the host.
    DOCKER_BUILDKIT=1 "$DOCKER" build --network host --label "checkout.offline.key=$key" \
        --build-arg "DEBIAN_IMAGE=$DEBIAN_IMAGE" "$@" --tag "$name" "$dir" >&2
    say "built $name in $(($(date +%s) - start))s"
}

stage() {
    # A fresh build context folder for one image.
    local dir="$cache/offline-contexts/$1"
    rm -rf "$dir" && mkdir -p "$dir"
    printf '%s\n' "$dir"
}

debian_mirror() {
    # The host's own Debian mirror (deb822 or one-line sources), so no host is named here.
    local mirror
    mirror="$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null |
        awk '/^URIs:/ { uri = $2 } /^Suites:/ && $0 ~ /(^| )'"$DEBIAN_SUITE"'( |$)/ && uri !~ /security/ { print uri; exit }')"
    if [[ -z "$mirror" ]]; then
        mirror="$(grep -hE "^deb [^ ]+ $DEBIAN_SUITE " /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
            awk '{ print $2; exit }')"
    fi
    [[ -n "$mirror" ]] || die "no Debian $DEBIAN_SUITE mirror in the host's apt sources; set CHECKOUT_DEBIAN_MIRROR"
    printf '%s\n' "$mirror"
}

# The Debian base: a debootstrap minbase root filesystem, imported as an image. Every other image
# that needs packages starts from it.
build_debian() {
    local rootfs_key="${DEBIAN_SUITE}-minbase-1"
    up_to_date "$DEBIAN_IMAGE" "$rootfs_key" && return
    local tarball="$cache/rootfs/debian-$rootfs_key.tar"
    if [[ ! -f "$tarball" ]]; then
        command -v debootstrap >/dev/null || die "debootstrap is needed (apt-get install debootstrap)"
        local mirror="${CHECKOUT_DEBIAN_MIRROR:-$(debian_mirror)}" tmp start
        mkdir -p "$cache/rootfs"
        tmp="$(mktemp -d "$cache/rootfs/.debian.XXXXXX")"
        say "debootstrap $DEBIAN_SUITE (minbase) from the host's mirror"
        start=$(date +%s)
        debootstrap --variant=minbase --include=ca-certificates "$DEBIAN_SUITE" "$tmp/root" "$mirror" >&2 ||
            { rm -rf "$tmp"; die "debootstrap failed"; }
        # Security updates too, from the same mirror host's security suite when the host has one.
        rm -rf "$tmp/root/var/cache/apt/archives/"*.deb "$tmp/root/var/lib/apt/lists/"*
        tar -C "$tmp/root" -cf "$tmp/rootfs.tar" .
        mv "$tmp/rootfs.tar" "$tarball"
        rm -rf "$tmp"
        say "debootstrap took $(($(date +%s) - start))s"
    fi
    "$DOCKER" import --change "LABEL checkout.offline.key=$rootfs_key" --change 'CMD ["/bin/bash"]' \
        "$tarball" "$DEBIAN_IMAGE" >/dev/null
    say "imported $DEBIAN_IMAGE"
}

# scratch_image NAME BINARY PATH_IN_IMAGE [ENTRYPOINT?]: one static binary in an empty image.
scratch_image() {
    local name="$1" binary="$2" path="$3" entrypoint="${4:-}" dir
    dir="$(stage "$(tr '/:' '__' <<<"$name")")"
    cp "$binary" "$dir/binary"
    {
        echo "FROM scratch"
        echo "COPY binary $path"
        echo "ENV PATH=/usr/local/bin:/usr/bin:/bin"
        [[ -z "$entrypoint" ]] || echo "ENTRYPOINT [\"$path\"]"
    } >"$dir/Dockerfile"
    build_image "$name" "$dir"
}

build_component_images() {
    local k8s dir
    k8s="$(kubernetes_dir)"
    for component in kube-apiserver kube-controller-manager kube-scheduler; do
        scratch_image "registry.k8s.io/$component:$K8S_VERSION" "$k8s/$component" "/usr/local/bin/$component"
    done
    scratch_image "$ETCD_IMAGE" "$k8s/etcd" /usr/local/bin/etcd
    dir="$(stage kube-proxy)"
    cp "$here/images/kube-proxy/Dockerfile" "$k8s/kube-proxy" "$dir/"
    build_image "registry.k8s.io/kube-proxy:$K8S_VERSION" "$dir"
    dir="$(stage pause)"
    cp "$here/images/pause/Dockerfile" "$(kubernetes_module_dir)/build/pause/linux/pause.c" "$dir/"
    build_image "$PAUSE_IMAGE" "$dir" --build-arg "PAUSE_VERSION=$PAUSE_VERSION"
    scratch_image "$COREDNS_IMAGE" "$(go_install coredns "github.com/coredns/coredns@${COREDNS_VERSION}")" /coredns entrypoint
    scratch_image "$LOCAL_PATH_IMAGE" \
        "$(go_install local-path-provisioner "github.com/rancher/local-path-provisioner@${LOCAL_PATH_PROVISIONER_VERSION}")" \
        /usr/local/bin/local-path-provisioner entrypoint
}

build_python() {
    local dir
    dir="$(stage python)"
    cp "$here/images/python/Dockerfile" "$dir/"
    build_image "$PYTHON_IMAGE" "$dir"
}

build_addon_images() {
    scratch_image "$FERRETDB_IMAGE" "$(ferretdb_binary)" /ferretdb entrypoint
    scratch_image "$TRAEFIK_IMAGE" "$(traefik_binary)" /usr/local/bin/traefik entrypoint
}

# The images baked into the node: what kubeadm starts, CoreDNS, storage and its helper.
node_preloaded_images() {
    printf '%s\n' "registry.k8s.io/kube-apiserver:$K8S_VERSION" "registry.k8s.io/kube-controller-manager:$K8S_VERSION" \
        "registry.k8s.io/kube-scheduler:$K8S_VERSION" "registry.k8s.io/kube-proxy:$K8S_VERSION" \
        "$ETCD_IMAGE" "$PAUSE_IMAGE" "$COREDNS_IMAGE" "$LOCAL_PATH_IMAGE" "$DEBIAN_IMAGE"
}

build_node() {
    local k8s kind_src dir
    k8s="$(kubernetes_dir)"
    kind_src="$(kind_module_dir)/images/base/files"
    dir="$(stage node)"
    cp -r "$here/images/node/." "$dir/"
    cp -r "$kind_src" "$dir/kind-base"
    chmod -R u+w "$dir/kind-base"
    mkdir -p "$dir/bin"
    cp "$k8s/kubelet" "$k8s/kubeadm" "$k8s/kubectl" "$dir/bin/"
    cp "$(go_install crictl "sigs.k8s.io/cri-tools@${CRICTL_VERSION}" "sigs.k8s.io/cri-tools/cmd/crictl@${CRICTL_VERSION}")" "$dir/bin/crictl"
    echo "$K8S_VERSION" >"$dir/version"
    sed -i "s#LOCAL_PATH_PROVISIONER_IMAGE#$LOCAL_PATH_IMAGE#; s#LOCAL_PATH_HELPER_IMAGE#$DEBIAN_IMAGE#g" \
        "$dir/files/default-storage.yaml"

    # The node image is a node base plus the preloaded images; its key covers both.
    local base="checkout-offline/kind-node-base:$K8S_VERSION" images=() ids key
    build_image "$base" "$dir" --build-arg "PAUSE_VERSION=$PAUSE_VERSION"
    mapfile -t images < <(node_preloaded_images)
    ids="$("$DOCKER" image inspect -f '{{.Id}}' "$base" "${images[@]}")" || die "an image for the node is missing"
    key="$(printf '%s\n' "$ids" "${images[@]}" | sha256sum | cut -c1-64)"
    up_to_date "$NODE_IMAGE" "$key" && return
    say "importing ${#images[@]} images into the node's containerd"
    local start
    start=$(date +%s)
    # Globals, not locals: the EXIT trap below may run after this function has returned.
    archive="$(mktemp "$cache/.node-images.XXXXXX.tar")"
    "$DOCKER" save "${images[@]}" -o "$archive"
    container="checkout-node-build-$$"
    cleanup_node_build() { "$DOCKER" rm -f "$container" >/dev/null 2>&1 || true; rm -f "$archive"; }
    trap cleanup_node_build EXIT
    # containerd runs only for the import; --no-unpack: the layers are unpacked on the node, at
    # first use, on its own /var volume (overlay on the engine's overlay root fails).
    "$DOCKER" run -d --name "$container" --privileged --entrypoint /bin/sh "$base" \
        -c 'containerd >/tmp/containerd.log 2>&1 & sleep infinity' >/dev/null
    "$DOCKER" cp "$archive" "$container:/images.tar"

    for _ in $(seq 1 60); do
        "$DOCKER" exec "$container" ctr version >/dev/null 2>&1 && break
        sleep 1
    done
    "$DOCKER" exec "$container" ctr --namespace=k8s.io images import --all-platforms --no-unpack \
        --digests /images.tar >&2
    # Pinned, as kind pins its preloaded images: the kubelet's image GC never removes them.
    local image
    for image in "${images[@]}"; do
        "$DOCKER" exec "$container" ctr --namespace=k8s.io images label "$(full_name "$image")" \
            io.cri-containerd.pinned=pinned >/dev/null
    done
    # shellcheck disable=SC2016 # expanded inside the node
    "$DOCKER" exec "$container" sh -c 'rm -f /images.tar; kill $(pidof containerd); sleep 1; rm -rf /tmp/* /run/containerd'
    "$DOCKER" commit --change 'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]' --change 'CMD []' \
        --change "LABEL checkout.offline.key=$key" "$container" "$NODE_IMAGE" >/dev/null
    cleanup_node_build
    trap - EXIT
    say "built $NODE_IMAGE in $(($(date +%s) - start))s ($("$DOCKER" image inspect -f '{{.Size}}' "$NODE_IMAGE" | awk '{ printf "%.0f MB", $1 / 1e6 }'))"
}

# How containerd names an image Docker calls NAME (docker.io/library/ for short names).
full_name() {
    local name="$1"
    case "${name%%/*}" in
        *.* | *:* | localhost) printf '%s\n' "$name" ;;
        *) if [[ "$name" == */* ]]; then printf 'docker.io/%s\n' "$name"; else printf 'docker.io/library/%s\n' "$name"; fi ;;
    esac
}

names() {
    cat <<EOF
NODE_IMAGE=$NODE_IMAGE
INGRESS_IMAGE=$TRAEFIK_IMAGE
FERRETDB_IMAGE=$FERRETDB_IMAGE
PYTHON_IMAGE=$PYTHON_IMAGE
DEBIAN_IMAGE=$DEBIAN_IMAGE
KUBERNETES_VERSION=$K8S_VERSION
ETCD_VERSION=$ETCD_VERSION
COREDNS_VERSION=$COREDNS_VERSION
PAUSE_VERSION=$PAUSE_VERSION
EOF
}

require_engine() {
    "$DOCKER" info >/dev/null 2>&1 || die "no Docker engine answers (DOCKER_HOST=${DOCKER_HOST:-unset}); start one with: eval \"\$(k8s/offline/engine/engine.sh start)\""
}

all() {
    require_engine
    local start
    start=$(date +%s)
    build_tools
    build_debian
    build_component_images
    build_python
    build_addon_images
    build_node
    say "all offline images ready in $(($(date +%s) - start))s"
}

# One build at a time per machine (pytest-xdist workers, make jobs); the others wait, then find
# everything built.
mkdir -p "$cache"
exec 8>"$cache/.offline-build.lock"
case "${1:-all}" in
    all) flock 8 && all ;;
    tools) flock 8 && build_tools ;;
    images) flock 8 && require_engine && build_debian && build_component_images && build_python && build_addon_images && build_node ;;
    node) flock 8 && require_engine && build_debian && build_component_images && build_node ;;
    names) names ;;
    kind) flock 8 && kind_binary ;;
    base) flock 8 && require_engine && build_debian && build_python ;;
    *)
        sed -n '2,/^set -euo pipefail/p' "${BASH_SOURCE[0]}" | grep '^#' | sed 's/^# \{0,1\}//' >&2
        exit 64
        ;;
esac
