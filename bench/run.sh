#!/usr/bin/env bash
# Measures oauth-token-pipe against what users would run instead (issues 6 and 15), on this machine.
#
#   bash bench/run.sh           # full: many runs; rewrites the results in BENCHMARKS.md and
#                               # bench/chart.png, bench/latency.png (the analysis is by hand)
#   bash bench/run.sh --short   # CI: a few runs, one RTT; proves every client still does the
#                               # job and changes no file in the work tree
#
# Every client does the same job against the project's fake Bitbucket (real HTTPS on loopback,
# examples/fake_bitbucket.rs): fetch a token with the client-credentials grant, validate it with
# GET /2.0/repositories/acme/widgets, write the dotenv file. The clients:
#   oauth-token-pipe      the static release binary (scripts/build-static.sh)
#   curl | jq recipe      bench/clients/recipe.sh: two curls, jq, printf
#   Python requests       bench/clients/requests_job.py in a venv this script creates
#   curl --next           one curl process sending both requests, answers to /dev/null
#   static no-op          bench/clients/noop.c built static with musl-gcc: the process floor
# For each it reports wall time (hyperfine: median and spread), user+sys CPU, peak RSS
# (/usr/bin/time -v) and ratios to oauth-token-pipe, plus the binary's and the image's size.
#
# Then the same clients (not the no-op) through bench/relay.py, which adds a round-trip time
# (RTT) to every connection, one listener per origin: wall time at each RTT (0, 20 and 80 ms;
# --short: 20 ms only) and the data round trips each run needed, counted by the relay.
# And, through the relay only, the OAuth 2.0 job against the fake authorization server the same
# example starts (examples/fake_oauth2.rs, one issuer host): get a token by client credentials
# and check it against the issuer's JWKS. Its clients:
#   oauth-token-pipe      PROVIDER=oauth2 ISSUER=... VALIDATE=jwks: discovery, token, JWKS
#   curl --next           one curl process, token request and JWKS fetch at URLs given to it
#   Python requests       bench/clients/oauth2_requests.py: one Session, the two requests at
#                         URLs given, the RS256 signature and claims checked, the file written
# (the two baselines are "a client that knew every URL in advance": no discovery request).
#
# On a fresh Debian or Ubuntu machine it installs what it lacks (apt: hyperfine, jq, curl, time,
# python3-venv, musl-tools; pip, into target/bench/venv: requests, matplotlib). Everything it
# makes goes under target/bench/ (or $CARGO_TARGET_DIR/bench/) and a temporary folder that it
# removes; it leaves nothing running. Knobs: BENCH_ROUNDS, BENCH_RUNS (per round), BENCH_WARMUP,
# BENCH_RSS_RUNS, BENCH_DOCKER=no (skip the image); for the relay: BENCH_RTTS (ms, space
# separated), BENCH_LATENCY_ROUNDS, BENCH_LATENCY_RUNS (per client, RTT and round),
# BENCH_LATENCY_WARMUP.
set -euo pipefail

usage() { sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; }
mode=full
case "${1:-}" in
"") ;;
--short) mode=short ;;
-h | --help) usage && exit 0 ;;
*) usage >&2 && exit 2 ;;
esac

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
target_dir=${CARGO_TARGET_DIR:-target}
case $target_dir in /*) ;; *) target_dir=$repo/$target_dir ;; esac
out=$target_dir/bench
mkdir -p "$out"

# Timed runs are split into rounds that go through every client in turn, so that a slow spell
# of a shared or virtual machine falls on all clients rather than on one of them.
if [ "$mode" = full ]; then
    rounds=${BENCH_ROUNDS:-10} runs=${BENCH_RUNS:-30} warmup=${BENCH_WARMUP:-3}
    rss_runs=${BENCH_RSS_RUNS:-20}
    rtts=${BENCH_RTTS:-0 20 80} latency_rounds=${BENCH_LATENCY_ROUNDS:-10}
    latency_runs=${BENCH_LATENCY_RUNS:-10} latency_warmup=${BENCH_LATENCY_WARMUP:-1}
else
    rounds=${BENCH_ROUNDS:-1} runs=${BENCH_RUNS:-5} warmup=${BENCH_WARMUP:-1}
    rss_runs=${BENCH_RSS_RUNS:-2}
    rtts=${BENCH_RTTS:-20} latency_rounds=${BENCH_LATENCY_ROUNDS:-1}
    latency_runs=${BENCH_LATENCY_RUNS:-3} latency_warmup=${BENCH_LATENCY_WARMUP:-1}
fi

say() { printf 'bench: %s\n' "$*" >&2; }
die() { say "$*" && exit 1; }

sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)
apt_install() {
    say "installing $* (apt)"
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "$@" >/dev/null
}

# --- Tools ------------------------------------------------------------------------------------
# Debian's own Python when present: a pyenv or conda python3 earlier in PATH is not what a
# fresh machine (or a python:3.x-slim image) runs.
python=/usr/bin/python3
[ -x "$python" ] || python=$(command -v python3 || echo /usr/bin/python3)
missing=()
command -v hyperfine >/dev/null || missing+=(hyperfine)
command -v jq >/dev/null || missing+=(jq)
command -v curl >/dev/null || missing+=(curl)
[ -x /usr/bin/time ] || missing+=(time)
command -v musl-gcc >/dev/null || missing+=(musl-tools)
"$python" -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3 python3-venv)
[ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"
command -v hyperfine >/dev/null || die "hyperfine is missing and apt could not install it"

venv=$out/venv
if ! "$venv/bin/python" -c 'import requests, matplotlib' 2>/dev/null; then
    say "creating $venv with requests and matplotlib (pip)"
    rm -rf "$venv"
    "$python" -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r bench/requirements.txt
fi

# --- Builds -----------------------------------------------------------------------------------
if [ -f scripts/build-static.sh ]; then
    bash scripts/build-static.sh
else
    rustup target list --installed | grep -qx x86_64-unknown-linux-musl ||
        rustup target add x86_64-unknown-linux-musl
    cargo build --release --locked --target x86_64-unknown-linux-musl
fi
pipe_bin=$target_dir/x86_64-unknown-linux-musl/release/oauth-token-pipe
[ -x "$pipe_bin" ] || die "no static binary at $pipe_bin"
cargo build --release --locked --example fake_bitbucket
fake_bin=$target_dir/release/examples/fake_bitbucket
noop_bin=$out/noop
musl-gcc -static -Os -s -o "$noop_bin" bench/clients/noop.c

# --- The fake and the job's environment -------------------------------------------------------
run=$(mktemp -d "${TMPDIR:-/tmp}/oauth-token-pipe-bench.XXXXXX")
fake_pid='' relay_pid='' docker_started='' image_tags=()
cleanup() {
    set +e
    # Closing the relay's and the fake's stdin stops them; SIGTERM as well, in case they do
    # not read it.
    [ -n "${relay_fd:-}" ] && exec {relay_fd}>&-
    if [ -n "$relay_pid" ]; then
        kill -TERM "$relay_pid" 2>/dev/null
        wait "$relay_pid" 2>/dev/null
    fi
    [ -n "${fake_fd:-}" ] && exec {fake_fd}>&-
    if [ -n "$fake_pid" ]; then
        kill -TERM "$fake_pid" 2>/dev/null
        wait "$fake_pid" 2>/dev/null
    fi
    [ ${#image_tags[@]} -eq 0 ] || docker rmi -f "${image_tags[@]}" >/dev/null 2>&1
    [ -z "$docker_started" ] ||
        OAUTH_TOKEN_PIPE_DOCKERD_PID=$run/dockerd.pid bash scripts/docker-engine.sh stop
    rm -rf "$run"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A Docker engine for the image measurements, started (and stopped on exit) only when none
# answers and the project has scripts/docker-engine.sh. Started before the fake: a dockerd
# started later would inherit the fake's stdin and keep it from ever seeing end of file.
if [ "${BENCH_DOCKER:-yes}" != no ] && ! docker info >/dev/null 2>&1 &&
    [ -f scripts/docker-engine.sh ]; then
    # Our own pid file, so that `stop` can only ever stop the engine this run started.
    if OAUTH_TOKEN_PIPE_DOCKERD_PID=$run/dockerd.pid bash scripts/docker-engine.sh start; then
        docker_started=yes
    fi
fi

# The fake reads its stdin from a FIFO this script holds open: if the script dies, the fake
# sees end of file and stops by itself.
mkfifo "$run/fake.stdin"
"$fake_bin" <"$run/fake.stdin" >"$run/fake.env" 2>"$run/fake.log" &
fake_pid=$!
exec {fake_fd}>"$run/fake.stdin"
for _ in $(seq 300); do
    grep -q '^REPOSITORY=' "$run/fake.env" 2>/dev/null && break
    kill -0 "$fake_pid" 2>/dev/null || die "the fake Bitbucket exited: $(cat "$run/fake.log")"
    sleep 0.1
done
grep -q '^REPOSITORY=' "$run/fake.env" || die "the fake Bitbucket did not start within 30 s"
# shellcheck disable=SC1091
. "$run/fake.env"
say "fake Bitbucket: token endpoint $TOKEN_URL, API $API_URL"
say "fake OAuth 2.0 authorization server: $OAUTH2_URL"

# The latency relay: one listener per origin, each relaying to the fake. The token origin keeps
# the name localhost and the API 127.0.0.1 (the two names the fake's certificate covers), on two
# ports, so no client can carry both requests on one connection; a third listener is the OAuth
# 2.0 issuer, named localhost (the fake advertises its endpoints under the host and port the
# client reached, so discovery keeps the pipe on the relay). Its stdin is a FIFO like the
# fake's; it is told over a control socket which run comes next, and appends what it counted
# in each run to relay.jsonl.
fake_origin() { # URL -> 127.0.0.1:PORT (the fake listens on 127.0.0.1 under both names)
    local rest=${1#https://*:}
    printf '127.0.0.1:%s' "${rest%%/*}"
}
mkfifo "$run/relay.stdin"
"$venv/bin/python" bench/relay.py --control "$run/relay.sock" --stats "$run/relay.jsonl" \
    --origin token "$(fake_origin "$TOKEN_URL")" --origin api "$(fake_origin "$API_URL")" \
    --origin oauth2 "$(fake_origin "$OAUTH2_URL")" \
    <"$run/relay.stdin" >"$run/relay.env" 2>"$run/relay.log" &
relay_pid=$!
exec {relay_fd}>"$run/relay.stdin"
for _ in $(seq 100); do
    grep -q '^OAUTH2_PORT=' "$run/relay.env" 2>/dev/null && [ -S "$run/relay.sock" ] && break
    kill -0 "$relay_pid" 2>/dev/null || die "the relay exited: $(cat "$run/relay.log")"
    sleep 0.1
done
[ -S "$run/relay.sock" ] || die "the relay did not start within 10 s"
# shellcheck disable=SC1091
. "$run/relay.env"
RELAY_TOKEN_URL=https://localhost:$TOKEN_PORT/${TOKEN_URL#https://*/}
RELAY_API_URL=https://127.0.0.1:$API_PORT/${API_URL#https://*/}
RELAY_ISSUER=https://localhost:$OAUTH2_PORT
relay() { # PATH: one command to the relay
    curl -sSf --unix-socket "$run/relay.sock" -o /dev/null "http://relay$1"
}
say "relay: token endpoint $RELAY_TOKEN_URL, API $RELAY_API_URL, OAuth 2.0 issuer $RELAY_ISSUER"

# The output folder is outside any git work tree, so the pipe does not add the file to a
# .git/info/exclude (in a pipeline's clone directory it does; that costs two small file ops).
mkdir -p "$run/work" "$run/home"
output_file=$run/work/oauth-token.env
# Every client runs in the same clean environment: nothing from this shell or a CI runner
# (GITHUB_ACTIONS, REQUESTS_CA_BUNDLE, PYTHONDONTWRITEBYTECODE, ~/.curlrc...) leaks in.
# The relay's runs get the same environment with its two origins instead of the fake's.
env_for() { # TOKEN_URL API_URL: sets job_env
    job_env=(env -i "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        "HOME=$run/home" "LANG=C.UTF-8"
        "TOKEN_URL=$1" "API_URL=$2" "CA_BUNDLE=$CA_BUNDLE"
        "CLIENT_ID=$CLIENT_ID" "CLIENT_SECRET=$CLIENT_SECRET" "REPOSITORY=$REPOSITORY"
        "OUTPUT_FILE=$output_file")
}
env_for "$RELAY_TOKEN_URL" "$RELAY_API_URL"
relay_env=("${job_env[@]}")
env_for "$TOKEN_URL" "$API_URL"
# The OAuth 2.0 job's environment, through the relay. The pipe reads PROVIDER, ISSUER,
# VALIDATE and AUDIENCE and discovers the rest; the baselines read the two URLs it would
# discover (OAUTH2_TOKEN_URL, OAUTH2_JWKS_URL), which the pipe ignores.
oauth2_env=(env -i "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    "HOME=$run/home" "LANG=C.UTF-8"
    "PROVIDER=oauth2" "ISSUER=$RELAY_ISSUER" "VALIDATE=jwks" "AUDIENCE=$OAUTH2_AUDIENCE"
    "CA_BUNDLE=$OAUTH2_CA_BUNDLE" "CLIENT_ID=$OAUTH2_CLIENT_ID"
    "CLIENT_SECRET=$OAUTH2_CLIENT_SECRET" "OUTPUT_FILE=$output_file"
    "OAUTH2_TOKEN_URL=$RELAY_ISSUER$OAUTH2_TOKEN_PATH"
    "OAUTH2_JWKS_URL=$RELAY_ISSUER$OAUTH2_JWKS_PATH")

# The token the fake issues: the single curl process cannot pass it from its first answer to
# its second request, so it is fetched once here and written into that curl's config.
token=$(printf 'user = "%s:%s"\n' "$CLIENT_ID" "$CLIENT_SECRET" |
    curl -sS --fail --cacert "$CA_BUNDLE" -K - -d grant_type=client_credentials "$TOKEN_URL" |
    jq -r .access_token)
[ "${#token}" -gt 100 ] || die "the fake issued no token"
# A config file (mode 0600) rather than argv, like the recipe: same secrets, same exposure.
next_config() { # FILE TOKEN_URL API_URL
    (
        umask 077
        cat >"$1" <<EOF
url = "$2"
cacert = "$CA_BUNDLE"
user = "$CLIENT_ID:$CLIENT_SECRET"
data = "grant_type=client_credentials"
output = "/dev/null"
silent
show-error
fail
next
url = "$3/repositories/$REPOSITORY"
cacert = "$CA_BUNDLE"
header = "Authorization: Bearer $token"
output = "/dev/null"
fail
EOF
    )
}
next_config "$run/next.curlrc" "$TOKEN_URL" "$API_URL"
next_config "$run/next-relay.curlrc" "$RELAY_TOKEN_URL" "$RELAY_API_URL"
# The OAuth 2.0 baseline in one curl process: the token request, then the JWKS at the URL it
# was given, on the same connection (curl keeps it for the next URL on the same host).
(
    umask 077
    cat >"$run/oauth2-next.curlrc" <<EOF
url = "$RELAY_ISSUER$OAUTH2_TOKEN_PATH"
cacert = "$OAUTH2_CA_BUNDLE"
user = "$OAUTH2_CLIENT_ID:$OAUTH2_CLIENT_SECRET"
data = "grant_type=client_credentials"
data-urlencode = "audience=$OAUTH2_AUDIENCE"
output = "/dev/null"
silent
show-error
fail
next
url = "$RELAY_ISSUER$OAUTH2_JWKS_PATH"
cacert = "$OAUTH2_CA_BUNDLE"
output = "/dev/null"
fail
EOF
)

# --- The clients ------------------------------------------------------------------------------
# name | expects the token in OUTPUT_FILE | argv (one word per element, run without a shell)
names=("oauth-token-pipe" "curl | jq recipe" "Python requests" "curl --next (1 process)" "static no-op (floor)")
keys=(pipe recipe requests next noop) # how the relay's run labels (and report.py) name them
writes_file=(yes yes yes no no)
commands=(
    "$pipe_bin"
    "/bin/sh$(printf '\t')$repo/bench/clients/recipe.sh"
    "$venv/bin/python$(printf '\t')$repo/bench/clients/requests_job.py"
    "/usr/bin/curl$(printf '\t')-q$(printf '\t')-K$(printf '\t')$run/next.curlrc"
    "$noop_bin"
)
# Through the relay: every client that talks to the network (the no-op does not), curl --next
# with its config naming the relay's origins.
relay_clients=(0 1 2 3)
relay_commands=("${commands[@]}")
relay_commands[3]="/usr/bin/curl$(printf '\t')-q$(printf '\t')-K$(printf '\t')$run/next-relay.curlrc"
# The OAuth 2.0 job (through the relay only, in oauth2_env).
oauth2_names=("oauth-token-pipe, PROVIDER=oauth2" "curl --next, URLs given (1 process)"
    "Python requests Session, URLs given")
oauth2_keys=(oauth2-pipe oauth2-next oauth2-requests)
oauth2_writes_file=(yes no yes)
oauth2_commands=(
    "$pipe_bin"
    "/usr/bin/curl$(printf '\t')-q$(printf '\t')-K$(printf '\t')$run/oauth2-next.curlrc"
    "$venv/bin/python$(printf '\t')$repo/bench/clients/oauth2_requests.py"
)
argv_of() { IFS=$'\t' read -r -a argv <<<"${commands[$1]}"; }
relay_argv_of() { IFS=$'\t' read -r -a argv <<<"${relay_commands[$1]}"; }
oauth2_argv_of() { IFS=$'\t' read -r -a argv <<<"${oauth2_commands[$1]}"; }
# hyperfine --shell=none splits its command like a POSIX shell: quote every word.
quote_argv() {
    local word q=''
    for word in "${argv[@]}"; do q+="'${word//\'/\'\\\'\'}' "; done
    printf '%s' "${q% }"
}
quoted() { argv_of "$1" && quote_argv; }
relay_quoted() { relay_argv_of "$1" && quote_argv; }
oauth2_quoted() { oauth2_argv_of "$1" && quote_argv; }

# Each client must do the whole job once, untimed, before it is timed.
for i in "${!names[@]}"; do
    argv_of "$i"
    rm -f "$output_file"
    if ! "${job_env[@]}" "${argv[@]}" >"$run/check.log" 2>&1; then
        cat "$run/check.log" >&2
        die "${names[$i]} failed the job"
    fi
    if [ "${writes_file[$i]}" = yes ] &&
        ! grep -qx "BITBUCKET_ACCESS_TOKEN=$token" "$output_file" 2>/dev/null; then
        die "${names[$i]} did not write the token to OUTPUT_FILE"
    fi
done
# And once through the relay, as a run of its own: the relay must have seen it do the job.
for i in "${relay_clients[@]}"; do
    relay_argv_of "$i"
    rm -f "$output_file"
    relay "/run?label=check/${keys[$i]}&rtt=0"
    if ! "${relay_env[@]}" "${argv[@]}" >"$run/check.log" 2>&1; then
        cat "$run/check.log" "$run/relay.log" >&2
        die "${names[$i]} failed the job through the relay"
    fi
    if [ "${writes_file[$i]}" = yes ] &&
        ! grep -qx "BITBUCKET_ACCESS_TOKEN=$token" "$output_file" 2>/dev/null; then
        die "${names[$i]} did not write the token to OUTPUT_FILE through the relay"
    fi
done
# The OAuth 2.0 job once through the relay, each client as a run of its own.
for i in "${!oauth2_names[@]}"; do
    oauth2_argv_of "$i"
    rm -f "$output_file"
    relay "/run?label=check/${oauth2_keys[$i]}&rtt=0"
    if ! "${oauth2_env[@]}" "${argv[@]}" >"$run/check.log" 2>&1; then
        cat "$run/check.log" "$run/relay.log" "$run/fake.log" >&2
        die "${oauth2_names[$i]} failed the OAuth 2.0 job through the relay"
    fi
    if [ "${oauth2_writes_file[$i]}" = yes ] &&
        ! grep -Eqx 'OAUTH_ACCESS_TOKEN=eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+' \
            "$output_file" 2>/dev/null; then
        die "${oauth2_names[$i]} did not write the JWT access token to OUTPUT_FILE"
    fi
done
relay /end
for i in "${!oauth2_names[@]}"; do
    # Only the issuer's origin, each connection with at least one round trip.
    jq -e -s --arg want "check/${oauth2_keys[$i]}" 'map(select(.label == $want)) | length == 1 and
        (.[0] | (.connections | length) >= 1 and all(.connections[]; .origin == "oauth2"
            and .round_trips >= 1))' "$run/relay.jsonl" >/dev/null ||
        die "the relay did not see ${oauth2_names[$i]} use the issuer: $(grep -F "\"check/${oauth2_keys[$i]}\"" "$run/relay.jsonl")"
done
for i in "${relay_clients[@]}"; do
    # Two connections (one per origin), each with at least one round trip.
    jq -e -s --arg want "check/${keys[$i]}" 'map(select(.label == $want)) | length == 1 and
        (.[0] | ([.connections[].origin] | sort) == ["api", "token"]
            and all(.connections[]; .round_trips >= 1))' "$run/relay.jsonl" >/dev/null ||
        die "the relay did not see ${names[$i]} use both origins: $(grep -F "\"check/${keys[$i]}\"" "$run/relay.jsonl")"
done
say "every client did the job; timing $rounds round(s) of $runs runs each"

# --- Wall time and CPU: hyperfine -------------------------------------------------------------
# Every run starts with no OUTPUT_FILE, as a fresh pipeline step does: oauth-token-pipe would
# otherwise reuse the token it stored there (REUSE) and skip the token request.
hf_args=(--shell=none --warmup "$warmup" --runs "$runs" --style basic
    --prepare "/bin/rm -f '$output_file'")
for i in "${!names[@]}"; do hf_args+=(--command-name "${names[$i]}" "$(quoted "$i")"); done
hf_files=()
for round in $(seq "$rounds"); do
    say "round $round of $rounds"
    "${job_env[@]}" hyperfine "${hf_args[@]}" --export-json "$run/hyperfine.$round.json"
    hf_files+=("$run/hyperfine.$round.json")
done

# --- Peak RSS: /usr/bin/time -v ---------------------------------------------------------------
# For the recipe this is its largest single process (wait4 reports the maximum over the
# process tree, not the sum).
{
    printf '{'
    for i in "${!names[@]}"; do
        argv_of "$i"
        printf '%s"%s": [' "$([ "$i" -gt 0 ] && echo ,)" "${names[$i]}"
        for r in $(seq "$rss_runs"); do
            rm -f "$output_file"
            "${job_env[@]}" /usr/bin/time -v -o "$run/time.txt" "${argv[@]}" >/dev/null 2>&1 ||
                die "${names[$i]} failed under /usr/bin/time"
            kib=$(sed -n 's/^[[:space:]]*Maximum resident set size (kbytes): //p' "$run/time.txt")
            printf '%s%s' "$([ "$r" -gt 1 ] && echo ,)" "$kib"
        done
        printf ']'
    done
    printf '}\n'
} >"$run/rss.json"

# --- Wall time and round trips through the relay ---------------------------------------------
# Each round goes through every RTT and, in one hyperfine call per RTT, every client. hyperfine's
# --prepare (one per command) removes OUTPUT_FILE and tells the relay which run comes, so that
# the relay files what it counts under round/client/RTT (warm-ups too: report.py drops a label's
# first $latency_warmup records, hyperfine running a command's warm-ups before its timed runs).
cat >"$run/next-run" <<EOF
#!/bin/sh
# hyperfine --prepare of a run through the relay: LABEL RTT_MS
rm -f '$output_file' &&
    exec /usr/bin/curl -sSf --unix-socket '$run/relay.sock' -o /dev/null "http://relay/run?label=\$1&rtt=\$2"
EOF
latency_args=()
for round in $(seq "$latency_rounds"); do
    for rtt in $rtts; do
        say "through the relay: round $round of $latency_rounds, RTT $rtt ms"
        hf_args=(--shell=none --warmup "$latency_warmup" --runs "$latency_runs" --style basic)
        for i in "${relay_clients[@]}"; do
            hf_args+=(--prepare "/bin/sh '$run/next-run' $round/${keys[$i]}/$rtt $rtt"
                --command-name "${names[$i]}" "$(relay_quoted "$i")")
        done
        "${relay_env[@]}" hyperfine "${hf_args[@]}" --export-json "$run/latency.$round.$rtt.json"
        latency_args+=("$rtt:$run/latency.$round.$rtt.json")
        # The OAuth 2.0 job right after, at the same RTT, in its own environment.
        hf_args=(--shell=none --warmup "$latency_warmup" --runs "$latency_runs" --style basic)
        for i in "${!oauth2_names[@]}"; do
            hf_args+=(--prepare "/bin/sh '$run/next-run' $round/${oauth2_keys[$i]}/$rtt $rtt"
                --command-name "${oauth2_names[$i]}" "$(oauth2_quoted "$i")")
        done
        "${oauth2_env[@]}" hyperfine "${hf_args[@]}" --export-json "$run/latency-oauth2.$round.$rtt.json"
        latency_args+=("$rtt:$run/latency-oauth2.$round.$rtt.json")
    done
done
relay /end
# Kept for a closer look: every run's round trips, per connection, with their times.
cp "$run/relay.jsonl" "$out/relay.jsonl"

# --- Sizes, and the image when a Docker engine is at hand -------------------------------------
binary_bytes=$(stat -c %s "$pipe_bin")
image_bytes='' image_gzip_bytes='' image_note=''
docker_run_json=''
if [ "${BENCH_DOCKER:-yes}" = no ]; then
    image_note="BENCH_DOCKER=no"
elif ! docker info >/dev/null 2>&1; then
    image_note="no Docker engine answered"
elif [ ! -f Dockerfile ]; then
    image_note="no Dockerfile"
else
    # The image exactly as the Dockerfile makes it, from a context holding only the binary at
    # the path it copies from (the binary may live under $CARGO_TARGET_DIR).
    ctx=$run/image
    mkdir -p "$ctx/target/x86_64-unknown-linux-musl/release" "$ctx/noop"
    cp "$pipe_bin" "$ctx/target/x86_64-unknown-linux-musl/release/oauth-token-pipe"
    cp Dockerfile "$ctx/Dockerfile"
    tag=oauth-token-pipe-bench:$$
    floor_tag=oauth-token-pipe-bench-noop:$$
    image_tags=("$tag" "$floor_tag")
    # The image is the other measurements' extra: an engine that cannot build or run it is
    # reported in the results, not a failed benchmark.
    if ! docker build -q -t "$tag" "$ctx" >/dev/null 2>"$run/docker.log"; then
        image_note="docker build failed: $(tail -n 1 "$run/docker.log")"
    else
        image_bytes=$(docker image inspect -f '{{.Size}}' "$tag")
        # What a runner pulls: the layers gzip-compressed, as a registry stores them.
        image_gzip_bytes=$(docker save "$tag" | gzip -6 | wc -c)
        # Starting the container is what a pipeline step waits for after the pull; an image
        # of the no-op binary is its floor. Host network for both: the fake listens on this
        # host's loopback, and a bridge network would add its own set-up to one side only.
        cp "$noop_bin" "$ctx/noop/noop"
        printf 'FROM scratch\nCOPY noop /noop\nENTRYPOINT ["/noop"]\n' >"$ctx/noop/Dockerfile"
        docker_runs=$([ "$mode" = full ] && echo 20 || echo 2)
        docker_env=(-e TOKEN_URL -e API_URL -e CLIENT_ID -e CLIENT_SECRET -e REPOSITORY
            -e CA_BUNDLE=/ca.pem -e OUTPUT_FILE=/out/oauth-token.env)
        mkdir -p "$run/docker-out"
        if docker build -q -t "$floor_tag" "$ctx/noop" >/dev/null 2>>"$run/docker.log" &&
            "${job_env[@]}" hyperfine --warmup 1 --runs "$docker_runs" --style basic \
                --export-json "$run/docker.json" \
                --prepare "rm -f '$run/docker-out/oauth-token.env'" \
                -n "docker run oauth-token-pipe image" \
                "docker run --rm --network host -v '$CA_BUNDLE:/ca.pem:ro' -v '$run/docker-out:/out' ${docker_env[*]} $tag" \
                -n "docker run no-op image (floor)" \
                "docker run --rm --network host $floor_tag" >&2; then
            docker_run_json=$run/docker.json
        else
            say "timing docker run failed; the report leaves it out"
        fi
    fi
fi

# --- Report -----------------------------------------------------------------------------------
requests_version=$("$venv/bin/python" -c 'import requests; print(requests.__version__)')
{
    printf 'nproc=%s\n' "$(nproc)"
    printf 'cpu=%s\n' "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)"
    printf 'kernel=%s\n' "$(uname -r)"
    # shellcheck disable=SC1091
    printf 'os=%s\n' "$(. /etc/os-release && echo "$PRETTY_NAME")"
    printf 'date=%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    printf 'loadavg=%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
    printf 'memory=%s\n' "$(free -h | awk '/^Mem:/ {print $2}')"
    printf 'hyperfine=%s\n' "$(hyperfine --version)"
    printf 'curl=%s\n' "$(curl --version | head -n1 | cut -d' ' -f1-2,5)"
    printf 'jq=%s\n' "$(jq --version)"
    printf 'python=%s, requests %s\n' "$("$venv/bin/python" -V)" "$requests_version"
    printf 'rustc=%s\n' "$(rustc -V)"
    printf 'binary_bytes=%s\n' "$binary_bytes"
    printf 'image_bytes=%s\n' "$image_bytes"
    printf 'image_gzip_bytes=%s\n' "$image_gzip_bytes"
    printf 'image_note=%s\n' "$image_note"
    printf 'runs=%s\n' "$((rounds * runs))"
    printf 'rounds=%s\n' "$rounds"
    printf 'warmup=%s\n' "$warmup"
    printf 'rss_runs=%s\n' "$rss_runs"
    printf 'latency_rounds=%s\n' "$latency_rounds"
    printf 'latency_warmup=%s\n' "$latency_warmup"
} >"$run/machine.txt"

# Files a container of each alternative must hold at the least: measured from this machine's
# packages, as no published image can be pulled here.
"$venv/bin/python" bench/payload.py >"$run/payload.json"

report_args=(--hyperfine "${hf_files[@]}" --rss "$run/rss.json" --machine "$run/machine.txt"
    --payload "$run/payload.json" --out "$out"
    --latency "${latency_args[@]}" --relay-stats "$run/relay.jsonl"
    --latency-warmup "$latency_warmup")
[ -z "$docker_run_json" ] || report_args+=(--docker "$docker_run_json")
[ "$mode" = short ] || report_args+=(--update "$repo/BENCHMARKS.md" --chart "$repo/bench/chart.png"
    --latency-chart "$repo/bench/latency.png")
"$venv/bin/python" bench/report.py "${report_args[@]}"

# The fake must have answered every run; a client that silently skipped a request would
# otherwise look fast.
exec {relay_fd}>&-
relay_fd=''
kill -TERM "$relay_pid" 2>/dev/null || true
wait "$relay_pid" || true
relay_pid=''
cat "$run/relay.log" >&2
exec {fake_fd}>&-
fake_fd=''
kill -TERM "$fake_pid" 2>/dev/null || true
wait "$fake_pid" || true
fake_pid=''
cat "$run/fake.log" >&2
say "results: $out/results.md, charts: $out/chart.png, $out/latency.png$([ "$mode" = full ] && echo ', BENCHMARKS.md and bench/*.png updated')"
