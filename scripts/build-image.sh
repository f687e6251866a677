#!/usr/bin/env bash
# Builds the multi-architecture image from the two static binaries, without a Docker engine,
# a registry or the network:
#
#   scripts/build-static.sh all && scripts/build-image.sh [--out DIR]
#
# DIR (default ${CARGO_TARGET_DIR:-target}/image) then holds, for the crate version V:
#   oauth-token-pipe-V.oci.tar                 an OCI image layout whose one entry is an image
#                                              index for linux/amd64 and linux/arm64, tagged V
#                                              (what scripts/push-image.sh copies to a registry)
#   oauth-token-pipe-V-linux-amd64.docker.tar  each architecture alone, for `docker load -i`:
#   oauth-token-pipe-V-linux-arm64.docker.tar  the same manifest, config and layer blobs plus
#                                              the manifest.json that every engine reads
# and it prints the index's digest (sha256:...) on standard output.
#
# Each image is what the Dockerfile makes: FROM scratch, one layer holding /oauth-token-pipe,
# the Dockerfile's ENTRYPOINT and labels (tests/cases/packaging.rs keeps the two in step).
# Docker's own multi-platform builder (buildx) is not packaged for Debian 12 and pulls a
# BuildKit image, which cannot be fetched here, so the layout is written directly: it is a few
# JSON documents and a tar file (https://github.com/opencontainers/image-spec).
#
# The output is reproducible: tar entries carry fixed owners, modes and times, gzip leaves out
# name and time, and every timestamp is SOURCE_DATE_EPOCH (default: the commit time of HEAD),
# so the same binaries and commit give the same digests on any machine.
set -euo pipefail

cd "$(dirname "$0")/.."

out="${CARGO_TARGET_DIR:-target}/image"
case "${1:-}" in
"") ;;
--out)
    out=${2:?"--out needs a folder"}
    ;;
*)
    echo "usage: $0 [--out DIR]" >&2
    exit 2
    ;;
esac
mkdir -p "$out"
out=$(cd "$out" && pwd)

# The first `key = "value"` of Cargo.toml, which is in [package].
cargo_field() {
    sed -n "s/^$1 = \"\(.*\)\"$/\1/p" Cargo.toml | head -n 1
}
name=$(cargo_field name)
version=$(cargo_field version)
description=$(cargo_field description)
repository=$(cargo_field repository)
license=$(cargo_field license)
# The image's repository as pipe.yml names it (`image: NAME:VERSION`).
image=$(sed -n 's/^image: \(.*\):[^:]*$/\1/p' pipe.yml)
[ -n "$image" ] || {
    echo "build-image: pipe.yml has no 'image: NAME:VERSION' line" >&2
    exit 1
}

epoch=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}
created=$(date -u -d "@$epoch" +%Y-%m-%dT%H:%M:%SZ)

# A JSON string. The values come from Cargo.toml; a control character in one is refused rather
# than escaped, since none belongs there.
json() {
    local s=$1
    if [[ $s == *[[:cntrl:]]* ]]; then
        echo "build-image: refusing a control character in $s" >&2
        exit 1
    fi
    s=${s//\\/\\\\}
    s=${s//\"/\\\"}
    printf '"%s"' "$s"
}

# The deterministic tar every archive here is written with (GNU tar).
det_tar() {
    tar --format=ustar --sort=name --owner=0 --group=0 --numeric-owner \
        --mtime="@$epoch" --mode=u=rwX,go=rX "$@"
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
blobs=$work/blobs/sha256
mkdir -p "$blobs"

# Stores stdin as a blob and prints its digest.
add_blob() {
    local tmp digest
    tmp=$(mktemp "$work/blob.XXXXXX")
    cat >"$tmp"
    digest=$(sha256sum "$tmp" | cut -d' ' -f1)
    mv "$tmp" "$blobs/$digest"
    echo "$digest"
}
size_of() {
    stat -c %s "$blobs/$1"
}

labels="{$(json org.opencontainers.image.title):$(json "$name"),$(json org.opencontainers.image.description):$(json "$description"),$(json org.opencontainers.image.source):$(json "$repository"),$(json org.opencontainers.image.version):$(json "$version"),$(json org.opencontainers.image.licenses):$(json "$license")}"

# Builds one architecture's layer, config and manifest; sets manifest_digest and
# config_digest/layer_digest for the docker archive.
build_arch() {
    local arch=$1 triple=$2
    local binary="${CARGO_TARGET_DIR:-target}/$triple/release/oauth-token-pipe"
    if [ ! -f "$binary" ]; then
        echo "build-image: $binary is missing: run scripts/build-static.sh all first." >&2
        exit 1
    fi
    local stage=$work/stage-$arch
    mkdir -p "$stage"
    cp "$binary" "$stage/oauth-token-pipe"
    # The layer: the binary at /, owned by root, mode 0755 (--mode turns u=rwX into rwx for it).
    det_tar -C "$stage" -cf "$work/layer-$arch.tar" oauth-token-pipe
    local diff_id
    diff_id=$(sha256sum "$work/layer-$arch.tar" | cut -d' ' -f1)
    layer_digest=$(gzip -9 -n -c "$work/layer-$arch.tar" | add_blob)

    config_digest=$(printf '%s' "{\"architecture\":$(json "$arch"),\"os\":\"linux\",\"created\":$(json "$created"),\"config\":{\"Entrypoint\":[\"/oauth-token-pipe\"],\"Labels\":$labels},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"sha256:$diff_id\"]},\"history\":[{\"created\":$(json "$created"),\"created_by\":\"COPY oauth-token-pipe /oauth-token-pipe # scripts/build-image.sh\"}]}" | add_blob)

    manifest_digest=$(printf '%s' "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"sha256:$config_digest\",\"size\":$(size_of "$config_digest")},\"layers\":[{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"sha256:$layer_digest\",\"size\":$(size_of "$layer_digest")}]}" | add_blob)
}

# The entry of an index that points at a manifest, with its platform.
platform_entry() {
    local digest=$1 arch=$2 annotations=${3:-}
    printf '%s' "{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"sha256:$digest\",\"size\":$(size_of "$digest"),${annotations:+$annotations,}\"platform\":{\"architecture\":\"$arch\",\"os\":\"linux\"}}"
}

# What an engine or skopeo names the image it reads from a layout: containerd (and so
# Docker with the containerd image store) reads io.containerd.image.name, OCI tools the tag.
names="\"annotations\":{\"io.containerd.image.name\":$(json "docker.io/$image:$version"),\"org.opencontainers.image.ref.name\":$(json "$version")}"

entries=()
for arch in amd64 arm64; do
    case $arch in
    amd64) triple=x86_64-unknown-linux-musl ;;
    arm64) triple=aarch64-unknown-linux-musl ;;
    esac
    build_arch "$arch" "$triple"
    entries+=("$(platform_entry "$manifest_digest" "$arch")")

    # The docker-loadable archive of this architecture alone: an OCI layout naming the one
    # manifest, plus the manifest.json of `docker save`'s format, which Docker engines before
    # 25 require (Debian 12's is 20.10) and later ones still read first.
    layout=$work/layout-$arch
    mkdir -p "$layout/blobs/sha256"
    cp "$blobs/$manifest_digest" "$blobs/$config_digest" "$blobs/$layer_digest" "$layout/blobs/sha256/"
    printf '%s' '{"imageLayoutVersion":"1.0.0"}' >"$layout/oci-layout"
    printf '%s' "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\",\"manifests\":[$(platform_entry "$manifest_digest" "$arch" "$names")]}" >"$layout/index.json"
    printf '%s' "[{\"Config\":\"blobs/sha256/$config_digest\",\"RepoTags\":[$(json "$image:$version")],\"Layers\":[\"blobs/sha256/$layer_digest\"]}]" >"$layout/manifest.json"
    det_tar -C "$layout" -cf "$out/$name-$version-linux-$arch.docker.tar" oci-layout index.json manifest.json blobs
done

# The image index: one manifest per architecture; its digest is what the registry's tag names.
index_digest=$(printf '%s' "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\",\"manifests\":[${entries[0]},${entries[1]}]}" | add_blob)
layout=$work/layout
mkdir -p "$layout"
cp -r "$work/blobs" "$layout/"
printf '%s' '{"imageLayoutVersion":"1.0.0"}' >"$layout/oci-layout"
printf '%s' "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\",\"manifests\":[{\"mediaType\":\"application/vnd.oci.image.index.v1+json\",\"digest\":\"sha256:$index_digest\",\"size\":$(size_of "$index_digest"),$names}]}" >"$layout/index.json"
det_tar -C "$layout" -cf "$out/$name-$version.oci.tar" oci-layout index.json blobs

echo "build-image: $out/$name-$version.oci.tar: $image:$version, index sha256:$index_digest (linux/amd64, linux/arm64)" >&2
echo "sha256:$index_digest"
