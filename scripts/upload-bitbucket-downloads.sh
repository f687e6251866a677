#!/usr/bin/env bash
# Attaches a release's files (scripts/release.sh's folder) to the Bitbucket repository's
# Downloads, Bitbucket's equivalent of a GitHub release's assets:
#
#   BITBUCKET_UPLOAD_TOKEN=... scripts/upload-bitbucket-downloads.sh DIR
#
# BITBUCKET_UPLOAD_TOKEN is a repository access token with the repository:write scope (a
# secured variable); BITBUCKET_REPO_FULL_NAME is set by Bitbucket Pipelines. The token reaches
# curl through its standard input (--config -), never its argv. API:
# https://developer.atlassian.com/cloud/bitbucket/rest/api-group-downloads/
set -euo pipefail

dir=${1:?"usage: $0 DIR"}
: "${BITBUCKET_UPLOAD_TOKEN:?set BITBUCKET_UPLOAD_TOKEN (a repository access token)}"
: "${BITBUCKET_REPO_FULL_NAME:?set BITBUCKET_REPO_FULL_NAME (workspace/repo-slug)}"
api=${BITBUCKET_API_URL:-https://api.bitbucket.org/2.0}

# SHA256SUMS last: whoever sees it can already fetch every file it names.
files=()
for file in "$dir"/*; do
    [ "$(basename "$file")" = SHA256SUMS ] || files+=("$file")
done
files+=("$dir/SHA256SUMS")

for file in "${files[@]}"; do
    echo "upload-bitbucket-downloads: $(basename "$file")" >&2
    printf 'header = "Authorization: Bearer %s"\n' "$BITBUCKET_UPLOAD_TOKEN" |
        curl --config - --fail-with-body --silent --show-error --retry 3 \
            --form "files=@$file" "$api/repositories/$BITBUCKET_REPO_FULL_NAME/downloads" >/dev/null
done
