#!/usr/bin/env bash
# Measures oauth-token-pipe against what users would run instead (issue 6), on this machine.
#
#   bash bench/run.sh           # full: many runs; rewrites the results in BENCHMARKS.md and
#                               # bench/chart.png (the analysis around them is written by hand)
#   bash bench/run.sh --short   # CI: a few runs; proves every client still does the job and
#                               # changes no file in the work tree
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
# On a fresh Debian or Ubuntu machine it installs what it lacks (apt: hyperfine, jq, curl, time,
# python3-venv, musl-tools; pip, into target/bench/venv: requests, matplotlib). Everything it
# makes goes under target/bench/ (or $CARGO_TARGET_DIR/bench/) and a temporary folder that it
# removes; it leaves nothing running. Knobs: BENCH_ROUNDS, BENCH_RUNS (per round), BENCH_WARMUP,
# BENCH_RSS_RUNS, BENCH_DOCKER=no (skip the image).
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
else
    rounds=${BENCH_ROUNDS:-1} runs=${BENCH_RUNS:-5} warmup=${BENCH_WARMUP:-1}
    rss_runs=${BENCH_RSS_RUNS:-2}
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
fake_pid='' docker_started='' image_tags=()
cleanup() {
    set +e
    # Closing the fake's stdin stops it; SIGTERM as well, in case it does not read it.
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

# The output folder is outside any git work tree, so the pipe does not add the file to a
# .git/info/exclude (in a pipeline's clone directory it does; that costs two small file ops).
mkdir -p "$run/work" "$run/home"
output_file=$run/work/oauth-token.env
# Every client runs in the same clean environment: nothing from this shell or a CI runner
# (GITHUB_ACTIONS, REQUESTS_CA_BUNDLE, PYTHONDONTWRITEBYTECODE, ~/.curlrc...) leaks in.
job_env=(env -i "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    "HOME=$run/home" "LANG=C.UTF-8"
    "TOKEN_URL=$TOKEN_URL" "API_URL=$API_URL" "CA_BUNDLE=$CA_BUNDLE"
    "CLIENT_ID=$CLIENT_ID" "CLIENT_SECRET=$CLIENT_SECRET" "REPOSITORY=$REPOSITORY"
    "OUTPUT_FILE=$output_file")

# The token the fake issues: the single curl process cannot pass it from its first answer to
# its second request, so it is fetched once here and written into that curl's config.
token=$(printf 'user = "%s:%s"\n' "$CLIENT_ID" "$CLIENT_SECRET" |
    curl -sS --fail --cacert "$CA_BUNDLE" -K - -d grant_type=client_credentials "$TOKEN_URL" |
    jq -r .access_token)
[ "${#token}" -gt 100 ] || die "the fake issued no token"
# A config file (mode 0600) rather than argv, like the recipe: same secrets, same exposure.
(
    umask 077
    cat >"$run/next.curlrc" <<EOF
url = "$TOKEN_URL"
cacert = "$CA_BUNDLE"
user = "$CLIENT_ID:$CLIENT_SECRET"
data = "grant_type=client_credentials"
output = "/dev/null"
silent
show-error
fail
next
url = "$API_URL/repositories/$REPOSITORY"
cacert = "$CA_BUNDLE"
header = "Authorization: Bearer $token"
output = "/dev/null"
fail
EOF
)

# --- The clients ------------------------------------------------------------------------------
# name | expects the token in OUTPUT_FILE | argv (one word per element, run without a shell)
names=("oauth-token-pipe" "curl | jq recipe" "Python requests" "curl --next (1 process)" "static no-op (floor)")
writes_file=(yes yes yes no no)
commands=(
    "$pipe_bin"
    "/bin/sh$(printf '\t')$repo/bench/clients/recipe.sh"
    "$venv/bin/python$(printf '\t')$repo/bench/clients/requests_job.py"
    "/usr/bin/curl$(printf '\t')-q$(printf '\t')-K$(printf '\t')$run/next.curlrc"
    "$noop_bin"
)
argv_of() { IFS=$'\t' read -r -a argv <<<"${commands[$1]}"; }
# hyperfine --shell=none splits its command like a POSIX shell: quote every word.
quoted() {
    local word q=''
    argv_of "$1"
    for word in "${argv[@]}"; do q+="'${word//\'/\'\\\'\'}' "; done
    printf '%s' "${q% }"
}

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
} >"$run/machine.txt"

# Files a container of each alternative must hold at the least: measured from this machine's
# packages, as no published image can be pulled here.
"$venv/bin/python" bench/payload.py >"$run/payload.json"

report_args=(--hyperfine "${hf_files[@]}" --rss "$run/rss.json" --machine "$run/machine.txt"
    --payload "$run/payload.json" --out "$out")
[ -z "$docker_run_json" ] || report_args+=(--docker "$docker_run_json")
[ "$mode" = short ] || report_args+=(--update "$repo/BENCHMARKS.md" --chart "$repo/bench/chart.png")
"$venv/bin/python" bench/report.py "${report_args[@]}"

# The fake must have answered every run; a client that silently skipped a request would
# otherwise look fast.
exec {fake_fd}>&-
fake_fd=''
kill -TERM "$fake_pid" 2>/dev/null || true
wait "$fake_pid" || true
fake_pid=''
cat "$run/fake.log" >&2
say "results: $out/results.md, chart: $out/chart.png$([ "$mode" = full ] && echo ', BENCHMARKS.md and bench/chart.png updated')"
