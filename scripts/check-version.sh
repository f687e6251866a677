#!/usr/bin/env bash
# Fails unless every place that names the release version names the same one:
#
#   scripts/check-version.sh           # Cargo.toml, Cargo.lock, Dockerfile, pipe.yml, action.yml,
#                                      # README.md and examples/ agree
#   scripts/check-version.sh v0.1.0    # ... and so does this git tag
#
# Both release pipelines (bitbucket-pipelines.yml, .github/workflows/release.yml) run it with
# the tag first: a release whose tag, crate, pipe.yml image, action.yml image and README
# disagree would publish an image that the README's snippets do not pull.
set -euo pipefail

cd "$(dirname "$0")/.."

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
image='oauthtokenpipe/oauth-token-pipe'
action='oauth-token-pipe/oauth-token-pipe'
problems=0

fail() {
    echo "check-version: $*" >&2
    problems=$((problems + 1))
}

if ! [[ $version =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]]; then
    fail "Cargo.toml's version '$version' is not MAJOR.MINOR.PATCH"
fi

if [ $# -gt 0 ]; then
    [ "$1" = "v$version" ] || fail "the tag '$1' is not v$version (Cargo.toml's version)"
fi

# The lock file's entry for the crate itself, which `cargo build --locked` refuses if stale.
locked=$(sed -n '/^name = "oauth-token-pipe"$/{n;s/^version = "\(.*\)"$/\1/p;}' Cargo.lock)
[ "$locked" = "$version" ] || fail "Cargo.lock says oauth-token-pipe $locked, Cargo.toml $version"

grep -qx "ARG VERSION=$version" Dockerfile || fail "Dockerfile lacks 'ARG VERSION=$version'"
grep -qx "image: $image:$version" pipe.yml || fail "pipe.yml's image is not $image:$version"
grep -qx "  image: docker://$image:$version" action.yml ||
    fail "action.yml's runs.image is not docker://$image:$version"

# Every image tag and every action ref in the README and the examples, wherever they are.
files=(README.md)
while IFS= read -r -d '' file; do files+=("$file"); done < <(find examples -type f -print0 | sort -z)
found=0
# grep -o prints "FILE:LINE:MATCH"; read splits off FILE and LINE and leaves the match whole.
while IFS=: read -r file line named; do
    found=$((found + 1))
    named=${named##*:}  # oauthtokenpipe/oauth-token-pipe:0.1.0 -> 0.1.0
    named=${named##*@v} # oauth-token-pipe/oauth-token-pipe@v0.1.0 -> 0.1.0
    [ "$named" = "$version" ] || fail "$file:$line names version $named, not $version"
done < <(grep -noE "($image:|$action@v)[0-9][0-9A-Za-z.+-]*" "${files[@]}")
[ "$found" -gt 0 ] || fail "README.md names no image tag (expected $image:$version)"

if [ "$problems" -gt 0 ]; then
    echo "check-version: $problems mismatch(es); fix them before releasing $version." >&2
    exit 1
fi
echo "check-version: $version everywhere${1:+ (tag $1)}: Cargo.toml, Cargo.lock, Dockerfile, pipe.yml, action.yml, README.md, examples/ ($found references)." >&2
