#!/usr/bin/env bash
# Builds the fully static release binary that the Docker image (FROM scratch) ships:
#   target/x86_64-unknown-linux-musl/release/oauth-token-pipe
# (or under $CARGO_TARGET_DIR when that is set, as cargo does).
#
# On a fresh Debian machine it first installs what the build lacks: the Rust standard library
# for the musl target (rustup) and Debian's musl-tools, whose x86_64-linux-musl-gcc compiles
# ring's C and assembly for that target. Both are skipped when already present.
set -euo pipefail

target=x86_64-unknown-linux-musl
cd "$(dirname "$0")/.."

if ! rustup target list --installed | grep -qx "$target"; then
    echo "build-static: adding the Rust target $target" >&2
    rustup target add "$target"
fi

if ! command -v x86_64-linux-musl-gcc >/dev/null 2>&1; then
    echo "build-static: installing musl-tools (x86_64-linux-musl-gcc)" >&2
    sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq musl-tools
fi

cargo build --release --locked --target "$target"

binary="${CARGO_TARGET_DIR:-target}/$target/release/oauth-token-pipe"
echo "build-static: built $binary ($(stat -c %s "$binary") bytes)" >&2
