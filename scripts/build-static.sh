#!/usr/bin/env bash
# Builds the fully static release binaries that the images (FROM scratch) ship:
#
#   scripts/build-static.sh          # or `amd64`: target/x86_64-unknown-linux-musl/release/oauth-token-pipe
#   scripts/build-static.sh arm64    # target/aarch64-unknown-linux-musl/release/oauth-token-pipe
#   scripts/build-static.sh all      # both
#
# (under $CARGO_TARGET_DIR instead of target/ when that is set, as cargo does).
#
# On a fresh Debian machine it first installs what each build lacks, and skips what is there:
#   - the Rust standard library for the musl target (rustup target add);
#   - amd64: Debian's musl-tools, whose x86_64-linux-musl-gcc compiles ring's C and assembly;
#   - arm64: Debian's clang (with llvm-ar), which compiles ring's C and assembly for aarch64
#     without any aarch64 sysroot: for non-x86-64 musl targets ring builds with -nostdlibinc
#     when the compiler is clang (ring's build.rs), so no cross libc or gcc is needed. The link
#     uses rust-lld from the Rust toolchain (.cargo/config.toml), so no cross binutils either.
set -euo pipefail

cd "$(dirname "$0")/.."

case "${1:-amd64}" in
amd64) arches=(amd64) ;;
arm64) arches=(arm64) ;;
all) arches=(amd64 arm64) ;;
*)
    echo "usage: $0 [amd64|arm64|all]   (default: amd64)" >&2
    exit 2
    ;;
esac

# Empty as root (CI containers), `sudo` otherwise.
sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)
apt_updated=no
apt_install() {
    echo "build-static: installing $* (Debian)" >&2
    if [ "$apt_updated" = no ]; then
        "${sudo[@]}" apt-get update -qq
        apt_updated=yes
    fi
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

triple_of() {
    case "$1" in
    amd64) echo x86_64-unknown-linux-musl ;;
    arm64) echo aarch64-unknown-linux-musl ;;
    esac
}

targets=()
for arch in "${arches[@]}"; do
    target=$(triple_of "$arch")
    targets+=(--target "$target")
    if ! rustup target list --installed | grep -qx "$target"; then
        echo "build-static: adding the Rust target $target" >&2
        rustup target add "$target"
    fi
    case "$arch" in
    amd64) command -v x86_64-linux-musl-gcc >/dev/null 2>&1 || apt_install musl-tools ;;
    # llvm-ar (Debian's llvm) archives ring's objects: cc's default `ar` would be the host's
    # binutils, which is not guaranteed to index aarch64 objects.
    arm64) command -v clang >/dev/null 2>&1 && command -v llvm-ar >/dev/null 2>&1 || apt_install clang llvm ;;
    esac
done

# The same binary whoever builds it: paths of the builder's machine (the crates' sources under
# CARGO_HOME, the checkout) end up in panic locations, so they are mapped to fixed ones. The
# flags are added to, not put in place of, the target's rustflags in .cargo/config.toml (cargo
# joins --config arrays with the file's), which a RUSTFLAGS variable would replace.
cargo_home=$(cd "${CARGO_HOME:-$HOME/.cargo}" && pwd)
remap="['--remap-path-prefix=$cargo_home=/cargo', '--remap-path-prefix=$PWD=/build']"
config=()
for arch in "${arches[@]}"; do
    config+=(--config "target.$(triple_of "$arch").rustflags=$remap")
done

# ring's build script compiles C for aarch64 with $CC_aarch64_unknown_linux_musl (the cc
# crate's per-target variable); a caller's own choice wins.
export CC_aarch64_unknown_linux_musl="${CC_aarch64_unknown_linux_musl:-clang}"
export AR_aarch64_unknown_linux_musl="${AR_aarch64_unknown_linux_musl:-llvm-ar}"

# One cargo run for both targets: the build scripts and proc macros are compiled once.
cargo build --release --locked "${config[@]}" "${targets[@]}"

for arch in "${arches[@]}"; do
    binary="${CARGO_TARGET_DIR:-target}/$(triple_of "$arch")/release/oauth-token-pipe"
    echo "build-static: built $binary ($(stat -c %s "$binary") bytes)" >&2
done
