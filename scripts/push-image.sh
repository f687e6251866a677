#!/usr/bin/env bash
# Copies the multi-architecture image that scripts/build-image.sh wrote to a registry, digests
# unchanged, and checks that the registry's tag then names exactly that image index:
#
#   scripts/push-image.sh ARCHIVE REFERENCE
#   scripts/push-image.sh target/image/oauth-token-pipe-0.1.0.oci.tar docker.io/oauthtokenpipe/oauth-token-pipe:0.1.0
#
# With REGISTRY_USERNAME and REGISTRY_PASSWORD set it logs in first (the password goes through
# stdin, never argv). PUSH_TLS_VERIFY=false allows a plain-HTTP registry (the tests' loopback
# one). A tag that already names another digest is never replaced: a published version stays
# what its users verified, and a second pipeline releasing the same tag from a different build
# fails here instead of overwriting the first.
#
# skopeo (Debian's package; installed when missing) copies from an OCI archive without a Docker
# engine and, with --preserve-digests, without recompressing, so the pushed index is byte for
# byte the one the tests checked and the README's digest names.
set -euo pipefail

if [ $# -ne 2 ]; then
    sed -n '4,5p' "$0" | sed 's/^# \{0,1\}/usage: /' >&2
    exit 2
fi
archive=$1
reference=${2#docker://}

if ! command -v skopeo >/dev/null 2>&1; then
    echo "push-image: installing skopeo (Debian)" >&2
    sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends skopeo >/dev/null
fi

# The index the archive's one entry names (build-image.sh writes index.json on one line).
want=$(tar -xOf "$archive" index.json | grep -oE '"digest":"sha256:[0-9a-f]{64}"' | head -n 1 | cut -d'"' -f4)
[ -n "$want" ] || {
    echo "push-image: $archive has no index.json entry; build it with scripts/build-image.sh" >&2
    exit 1
}

# The registry host is where the credentials go, so it must be spelt out.
registry=${reference%%/*}
case $registry in
*.* | *:* | localhost) ;;
*)
    echo "push-image: name the registry in $reference (e.g. docker.io/$reference)" >&2
    exit 2
    ;;
esac

# Credentials live in a file of our own for this run only; it and the copy of the tag's
# manifest (raw) are removed on exit.
auth=$(mktemp)
raw=$(mktemp)
trap 'rm -f "$auth" "$raw"' EXIT
echo '{}' >"$auth"
tls=(--tls-verify="${PUSH_TLS_VERIFY:-true}")
if [ -n "${REGISTRY_USERNAME:-}" ]; then
    printf '%s' "${REGISTRY_PASSWORD:?REGISTRY_PASSWORD must be set with REGISTRY_USERNAME}" |
        skopeo login --authfile "$auth" "${tls[@]}" --username "$REGISTRY_USERNAME" --password-stdin "$registry"
fi

# The digest the tag names now, or nothing when it does not exist (a manifest's digest is the
# SHA-256 of its bytes, so they go to a file: $(...) would drop a trailing newline).
published() {
    skopeo inspect --raw --authfile "$auth" "${tls[@]}" "docker://$reference" >"$raw" 2>/dev/null &&
        echo "sha256:$(sha256sum "$raw" | cut -d' ' -f1)"
}
if have=$(published); then
    if [ "$have" = "$want" ]; then
        echo "push-image: $reference already is $want; nothing to push." >&2
        echo "$want"
        exit 0
    fi
    echo "push-image: $reference already names $have, not this build's $want; refusing to replace a published version." >&2
    exit 1
fi

skopeo copy --all --preserve-digests --authfile "$auth" --dest-tls-verify="${PUSH_TLS_VERIFY:-true}" \
    "oci-archive:$archive" "docker://$reference" >&2

have=$(published || true)
if [ "$have" != "$want" ]; then
    echo "push-image: after the push $reference names $have, not $want" >&2
    exit 1
fi
echo "push-image: pushed $reference = $want (linux/amd64, linux/arm64)" >&2
echo "$want"
