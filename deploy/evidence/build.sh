#!/usr/bin/env bash
# Build the local S3-compatible object store the tests and `make demo` keep evidence in:
# SeaweedFS (Apache-2.0), its `weed` binary built from the Go module source. Cached outside the
# repository, one folder per version, so a rebuild, a new checkout or CI on the same machine reuses it:
#   ${LINE_CLUSTER_CACHE:-~/.cache/line-inspection}/seaweedfs-<release>/weed
# Usage: deploy/evidence/build.sh        (prints the binary's path on its last line)
#        LINE_EVIDENCE_CHECK_ONLY=1 deploy/evidence/build.sh   (exit 1 instead of building)
# SeaweedFS's go.mod has replace directives, so `go install module@version` refuses it: the module
# source is downloaded from the Go module proxy and built as the main module. A cold build compiles
# several hundred packages at the lowest CPU priority (NICE, GOMAXPROCS) because the machine is
# shared; it takes long once, then it is instant.
set -euo pipefail

# SeaweedFS tags are not semantic versions, so the module proxy only knows pseudo-versions;
# this one is the commit of release 4.53 (weed/util/version/constants.go says 4.53).
SEAWEEDFS_RELEASE="${SEAWEEDFS_RELEASE:-4.53}"
SEAWEEDFS_MODULE_VERSION="${SEAWEEDFS_MODULE_VERSION:-v0.0.0-20261109003541-7506e5f91cd6}"
CACHE="${LINE_CLUSTER_CACHE:-${HOME}/.cache/line-inspection}"
NICE="${NICE:-19}"
export GOMAXPROCS="${GOMAXPROCS:-1}"

out="${CACHE}/seaweedfs-${SEAWEEDFS_RELEASE}"
say() { echo "evidence/build.sh: $*" >&2; }

if [[ -x "${out}/weed" ]]; then
    say "seaweedfs ${SEAWEEDFS_RELEASE}: cached in ${out}"
    echo "${out}/weed"
    exit 0
fi
if [[ -n "${LINE_EVIDENCE_CHECK_ONLY:-}" ]]; then say "seaweedfs ${SEAWEEDFS_RELEASE}: not built (run make evidence-server)"; exit 1; fi
command -v go >/dev/null || { say "ERROR: Go is not installed; install Go >= 1.24 (or put a weed binary at ${out}/weed)"; exit 1; }

work="${CACHE}/work/seaweedfs-${SEAWEEDFS_RELEASE}"
rm -rf "${work}" && mkdir -p "${work}"
say "downloading github.com/seaweedfs/seaweedfs@${SEAWEEDFS_MODULE_VERSION} (release ${SEAWEEDFS_RELEASE})"
src="$(cd "${work}" && go mod download -json "github.com/seaweedfs/seaweedfs@${SEAWEEDFS_MODULE_VERSION}" \
       | sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')"
[[ -n "${src}" && -f "${src}/go.mod" ]] || { say "ERROR: module download failed (is the Go module proxy reachable?)"; exit 1; }
# The module cache is read-only; the build needs a writable copy of the main module.
cp -r "${src}" "${work}/src" && chmod -R u+w "${work}/src"
say "building weed (GOMAXPROCS=${GOMAXPROCS}, nice ${NICE}; a cold build takes long)"
mkdir -p "${out}.tmp"
(cd "${work}/src" && nice -n "${NICE}" go build -p "${GOMAXPROCS}" -ldflags "-s -w" -o "${out}.tmp/weed" ./weed)
rm -rf "${out}" && mv "${out}.tmp" "${out}"
rm -rf "${work}"
say "built ${out}/weed"
echo "${out}/weed"
