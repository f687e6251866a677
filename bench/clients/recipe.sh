#!/bin/sh
# The documented recipe, as a pipeline script line runs it: one curl for the token piped into jq,
# a second curl for the validation call, the file written with printf.
#
# One change from the copy-pasted form, which costs nothing: the secret and the token reach curl
# in a config on stdin (`-K -`, printf being a shell builtin) instead of argv, where any process
# on the runner could read them. Curl's config syntax would need `"` and `\` escaped in them;
# the fake's values have neither.
set -eu
umask 077
token=$(printf 'user = "%s:%s"\n' "$CLIENT_ID" "$CLIENT_SECRET" |
    curl -sS --fail --cacert "$CA_BUNDLE" -K - -d grant_type=client_credentials "$TOKEN_URL" |
    jq -r .access_token)
printf 'header = "Authorization: Bearer %s"\n' "$token" |
    curl -sS --fail --cacert "$CA_BUNDLE" -K - -o /dev/null "$API_URL/repositories/$REPOSITORY"
printf 'BITBUCKET_ACCESS_TOKEN=%s\n' "$token" >"$OUTPUT_FILE"
