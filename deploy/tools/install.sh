#!/usr/bin/env bash
# Install the binaries the deploy checks need: helm (built from source with Go), promtool/prometheus
# (Debian's `prometheus` package) and a headless browser for the operator page's tests (Debian's
# `chromium` package). Idempotent: anything already present is left alone.
# Usage: deploy/tools/install.sh        (run from anywhere; installs helm into <repo>/tools/bin)
set -euo pipefail

HELM_VERSION="${HELM_VERSION:-v3.19.0}"
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
tools_bin="${repo_root}/tools/bin"

say() { echo "install.sh: $*"; }

install_helm() {
    if [[ -x "${tools_bin}/helm" ]]; then
        say "helm already at ${tools_bin}/helm ($("${tools_bin}/helm" version --short 2>/dev/null || echo unknown version))"
        return
    fi
    if ! command -v go >/dev/null 2>&1; then
        say "ERROR: helm is missing and Go is not installed; install Go >= 1.22 (or put a helm binary at ${tools_bin}/helm)" >&2
        exit 1
    fi
    mkdir -p "${tools_bin}"
    say "building helm ${HELM_VERSION} with 'go install' into ${tools_bin} (takes a few minutes the first time)"
    GOBIN="${tools_bin}" go install "helm.sh/helm/v3/cmd/helm@${HELM_VERSION}"
    say "helm installed: $("${tools_bin}/helm" version --short)"
}

install_promtool() {
    if command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1; then
        say "promtool already at $(command -v promtool)"
        return
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        say "ERROR: promtool is missing and apt-get is not available; install Prometheus 2.x so that promtool and prometheus are on PATH" >&2
        exit 1
    fi
    local sudo=""
    if [[ "$(id -u)" != "0" ]]; then sudo="sudo"; fi
    say "installing Debian package 'prometheus' (provides promtool and prometheus)"
    ${sudo} apt-get update -q
    # The package's post-install starts a system service where systemd runs; the checks only need the binaries.
    DEBIAN_FRONTEND=noninteractive ${sudo} apt-get install -y -q --no-install-recommends prometheus
    say "promtool installed: $(promtool --version 2>&1 | head -1)"
}

# The operator page is tested in a real browser (tests/integration/viewer); Debian's build, not a download.
install_chromium() {
    if command -v chromium >/dev/null 2>&1; then
        say "chromium already at $(command -v chromium)"
        return
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        say "ERROR: chromium is missing and apt-get is not available; install Chromium so that \`chromium\` is on PATH" >&2
        exit 1
    fi
    local sudo=""
    if [[ "$(id -u)" != "0" ]]; then sudo="sudo"; fi
    say "installing Debian package 'chromium' (headless browser for the operator page's tests)"
    ${sudo} apt-get update -q
    DEBIAN_FRONTEND=noninteractive ${sudo} apt-get install -y -q --no-install-recommends chromium
    say "chromium installed: $(chromium --version 2>/dev/null | head -1)"
}

install_helm
install_promtool
install_chromium
say "done"
