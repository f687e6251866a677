#!/usr/bin/env bash
# Makes everything a release publishes, into one folder, for the tag being released:
#
#   scripts/release.sh v0.1.0 [--out DIR]      # DIR: default ${CARGO_TARGET_DIR:-target}/dist
#
# DIR then holds, for version V:
#   oauth-token-pipe-V-x86_64-unknown-linux-musl    the static binaries (linux/amd64, linux/arm64)
#   oauth-token-pipe-V-aarch64-unknown-linux-musl
#   oauth-token-pipe-V.oci.tar                      the multi-architecture image (OCI layout)
#   oauth-token-pipe-V-linux-amd64.docker.tar       each architecture's image for `docker load`
#   oauth-token-pipe-V-linux-arm64.docker.tar
#   SHA256SUMS                                      `sha256sum -c SHA256SUMS` checks them all
#   image-digest                                    the index digest the registry tag must name
#
# Both release pipelines run it after `bash .ci/run` passed on the same commit, then push the
# image with scripts/push-image.sh and attach DIR's files to the release. It first fails if
# the tag and the versions in the repository disagree (scripts/check-version.sh).
set -euo pipefail

cd "$(dirname "$0")/.."

tag=${1:-}
out="${CARGO_TARGET_DIR:-target}/dist"
if [ -z "$tag" ] || { [ $# -gt 1 ] && [ "${2:-}" != --out ]; }; then
    echo "usage: $0 TAG [--out DIR]" >&2
    exit 2
fi
[ $# -gt 1 ] && out=${3:?"--out needs a folder"}

bash scripts/check-version.sh "$tag"
version=${tag#v}

bash scripts/build-static.sh all

# A fresh folder: nothing from an earlier release can be attached by mistake.
rm -rf "$out"
mkdir -p "$out"
out=$(cd "$out" && pwd)
bash scripts/build-image.sh --out "$out" >"$out/image-digest"

for triple in x86_64-unknown-linux-musl aarch64-unknown-linux-musl; do
    cp "${CARGO_TARGET_DIR:-target}/$triple/release/oauth-token-pipe" "$out/oauth-token-pipe-$version-$triple"
done

# Names without folders, so that the file checks wherever the downloads are saved.
(cd "$out" && sha256sum -- oauth-token-pipe-* >SHA256SUMS && sha256sum --quiet -c SHA256SUMS)

echo "release: $out holds release $tag:" >&2
(cd "$out" && ls -l) >&2
