#!/usr/bin/env bash
# Measures what a pipeline downloads and runs, and writes it into README.md between the
# markers <!-- sizes:start --> and <!-- sizes:end --> (nothing outside them is touched):
#   - the static release binary (build it first: scripts/build-static.sh);
#   - when a Docker engine answers (scripts/docker-engine.sh start), the image built from the
#     Dockerfile around that binary: its unpacked size, and its size compressed with gzip as
#     a registry serves the layer (docker save | gzip -9).
#
#   scripts/measure-sizes.sh           # measure and rewrite the README block
#   scripts/measure-sizes.sh --print   # measure and print the block only
set -euo pipefail

cd "$(dirname "$0")/.."
target=x86_64-unknown-linux-musl
binary="${CARGO_TARGET_DIR:-target}/$target/release/oauth-token-pipe"
readme=README.md
start_marker='<!-- sizes:start -->'
end_marker='<!-- sizes:end -->'

if [ ! -f "$binary" ]; then
    echo "measure-sizes: $binary is missing: run scripts/build-static.sh first." >&2
    exit 1
fi
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)

# "2.31 MiB (2,421,512 bytes)"
size() {
    LC_ALL=C awk -v b="$1" 'BEGIN {
        s = sprintf("%d", b); out = "";
        while (length(s) > 3) { out = "," substr(s, length(s) - 2) out; s = substr(s, 1, length(s) - 3) }
        printf "%.2f MiB (%s%s bytes)", b / 1048576, s, out
    }'
}

binary_bytes=$(stat -c %s "$binary")
rows="| Static binary (\`$target\`, release profile) | $(size "$binary_bytes") |"

if docker info >/dev/null 2>&1; then
    # Build in a throwaway context laid out like the repository, so that CARGO_TARGET_DIR
    # may point anywhere.
    context=$(mktemp -d)
    tag="oauth-token-pipe-measure:$$"
    trap 'docker image rm --force "$tag" >/dev/null 2>&1 || true; rm -rf "$context"' EXIT
    cp Dockerfile .dockerignore "$context/"
    mkdir -p "$context/target/$target/release"
    cp "$binary" "$context/target/$target/release/oauth-token-pipe"
    # Quiet unless it fails (the legacy builder warns about itself on every build).
    if ! build_log=$(docker build --build-arg VERSION="$version" --tag "$tag" "$context" 2>&1); then
        printf '%s\n' "$build_log" >&2
        exit 1
    fi
    image_bytes=$(docker image inspect --format '{{.Size}}' "$tag")
    pulled_bytes=$(docker save "$tag" | gzip -9 | wc -c)
    rows="$rows
| Docker image \`oauthtokenpipe/oauth-token-pipe:$version\`, unpacked | $(size "$image_bytes") |
| Docker image, gzip-compressed, about what a pipeline pulls (\`docker save \| gzip -9\`) | $(size "$pulled_bytes") |"
else
    rows="$rows
| Docker image | not measured: no Docker engine answered (\`scripts/docker-engine.sh start\`) |"
fi

block="| Artefact | Size |
|---|---|
$rows

Measured by \`scripts/measure-sizes.sh\` for version $version on $(date -u +%Y-%m-%d) with $(rustc --version | cut -d' ' -f1-2)."

if [ "${1:-}" = --print ]; then
    printf '%s\n' "$block"
    exit 0
fi

if [ "$(grep -cxF "$start_marker" "$readme" 2>/dev/null)" != 1 ] ||
    [ "$(grep -cxF "$end_marker" "$readme" 2>/dev/null)" != 1 ]; then
    printf '%s\n' "$block"
    echo "measure-sizes: $readme needs exactly one '$start_marker' line and one '$end_marker' line; the block above was not written." >&2
    exit 1
fi

block_file=$(mktemp)
printf '%s\n' "$block" >"$block_file"
new_readme=$(mktemp)
awk -v start="$start_marker" -v end="$end_marker" -v block_file="$block_file" '
    $0 == start { print; while ((getline line < block_file) > 0) print line; skipping = 1; next }
    $0 == end { skipping = 0 }
    !skipping { print }
' "$readme" >"$new_readme"
cat "$new_readme" >"$readme"
rm -f "$block_file" "$new_readme"
printf '%s\n' "$block"
echo "measure-sizes: updated $readme." >&2
