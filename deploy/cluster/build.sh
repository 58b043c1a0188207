#!/usr/bin/env bash
# Build the local Kubernetes control plane from Go modules, without Docker: kube-apiserver,
# kube-controller-manager, kube-scheduler and kubectl (k8s.io/kubernetes), etcd 3.6 and kwok.
# Binaries are cached outside the repository, one folder per version, so a rebuild (or a new
# checkout, or CI on the same machine) reuses them:
#   ${LINE_CLUSTER_CACHE:-~/.cache/line-inspection}/k8s-<v>/, etcd-<v>/, kwok-<v>/
# Usage: deploy/cluster/build.sh            (prints the bin folders when done)
# The build runs at the lowest CPU priority on one core (NICE, GOMAXPROCS) because the
# machine is shared; a cold build takes long at that priority, a warm one is instant.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-1.34.0}"
# Debian's etcd 3.4 lacks watch-progress requests, so kwok's node updates lag by a minute.
ETCD_VERSION="${ETCD_VERSION:-3.6.16}"
KWOK_VERSION="${KWOK_VERSION:-0.7.0}"
CACHE="${LINE_CLUSTER_CACHE:-${HOME}/.cache/line-inspection}"
export GOMAXPROCS="${GOMAXPROCS:-1}" GOFLAGS=-mod=mod CGO_ENABLED=0
NICE="${NICE:-19}"

say() { echo "cluster/build.sh: $*"; }
command -v go >/dev/null || { say "ERROR: Go is not installed; install Go >= 1.24" >&2; exit 1; }

# A throwaway main module that requires the wanted module; its replace lines are the only ones
# Go honours (a dependency's own replaces, such as Kubernetes' ./staging, are ignored).
wrapper() { # dir module version
    rm -rf "$1" && mkdir -p "$1"
    printf 'module localbuild\n\ngo 1.24.0\n\ngodebug default=go1.24\n\nrequire %s %s\n' "$2" "$3" >"$1/go.mod"
}

build_kubernetes() {
    local out="${CACHE}/k8s-${K8S_VERSION}" work="${CACHE}/work/k8s-${K8S_VERSION}"
    if [[ -x "${out}/kube-apiserver" && -x "${out}/kube-controller-manager" && -x "${out}/kube-scheduler" && -x "${out}/kubectl" ]]; then
        say "kubernetes v${K8S_VERSION}: cached in ${out}"; return
    fi
    wrapper "${work}" k8s.io/kubernetes "v${K8S_VERSION}"
    local src minor="${K8S_VERSION#*.}"; minor="${minor%%.*}"
    src="$(cd "${work}" && go mod download -json "k8s.io/kubernetes@v${K8S_VERSION}" | sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')"
    # Every ./staging module becomes its published k8s.io/<name> v0.<minor>.<patch> release.
    {
        echo "replace ("
        sed -n 's#^\s*\(k8s.io/[a-z0-9-]*\) => ./staging/src/.*#\t\1 => \1 v0.'"${K8S_VERSION#*.}"'#p' "${src}/go.mod"
        echo ")"
    } >>"${work}/go.mod"
    local ld="-s -w" pkg
    for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
        ld+=" -X ${pkg}.gitVersion=v${K8S_VERSION} -X ${pkg}.gitMajor=1 -X ${pkg}.gitMinor=${minor}"
        ld+=" -X ${pkg}.gitTreeState=clean -X ${pkg}.buildDate=1970-01-01T00:00:00Z"
    done
    say "building kubernetes v${K8S_VERSION} (GOMAXPROCS=${GOMAXPROCS}, nice ${NICE}; a cold build takes long)"
    mkdir -p "${out}.tmp"
    (cd "${work}" && nice -n "${NICE}" go build -p "${GOMAXPROCS}" -trimpath -ldflags "${ld}" -o "${out}.tmp/" \
        k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
        k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl)
    rm -rf "${out}" && mv "${out}.tmp" "${out}"
}

build_module_binary() { # name module version package
    local out="${CACHE}/$1-$3" work="${CACHE}/work/$1-$3"
    if [[ -x "${out}/$1" ]]; then say "$1 v$3: cached in ${out}"; return; fi
    wrapper "${work}" "$2" "v$3"
    say "building $1 v$3"
    mkdir -p "${out}.tmp"
    (cd "${work}" && nice -n "${NICE}" go build -p "${GOMAXPROCS}" -trimpath -ldflags "-s -w" -o "${out}.tmp/$1" "$4")
    rm -rf "${out}" && mv "${out}.tmp" "${out}"
}

build_module_binary etcd go.etcd.io/etcd/server/v3 "${ETCD_VERSION}" go.etcd.io/etcd/server/v3
build_module_binary kwok sigs.k8s.io/kwok "${KWOK_VERSION}" sigs.k8s.io/kwok/cmd/kwok
build_kubernetes
say "done: ${CACHE}/k8s-${K8S_VERSION} ${CACHE}/etcd-${ETCD_VERSION} ${CACHE}/kwok-${KWOK_VERSION}"
