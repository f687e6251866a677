#!/usr/bin/env bash
# Makes a Docker engine available for the packaging tests, and takes it away again.
#
#   scripts/docker-engine.sh start   # when `docker info` fails: install Debian's docker.io if
#                                    # dockerd is missing, start dockerd in the background and
#                                    # wait until `docker info` answers
#   scripts/docker-engine.sh stop    # stop the dockerd that `start` started, and only that one
#
# `start` does nothing when an engine already answers, and `stop` never touches an engine this
# script did not start: the pid of the dockerd it starts is recorded in $PID_FILE.
set -euo pipefail

PID_FILE="${OAUTH_TOKEN_PIPE_DOCKERD_PID:-${TMPDIR:-/tmp}/oauth-token-pipe-dockerd.pid}"
WAIT_SECONDS=60

engine_answers() {
    docker info >/dev/null 2>&1
}

# Empty as root, `sudo` otherwise; an array so that it can be put in front of a command that
# runs in the background and keep that command's pid in $! (a function would not).
sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)

# The pid in $PID_FILE, when that process is still a running dockerd.
recorded_pid() {
    [ -f "$PID_FILE" ] || return 1
    local pid
    pid=$(cat "$PID_FILE")
    # dockerd itself as root; sudo (which forwards signals to it) when started through sudo.
    case "$(cat "/proc/$pid/comm" 2>/dev/null)" in
    dockerd | sudo) ;;
    *) return 1 ;;
    esac
    echo "$pid"
}

start() {
    if engine_answers; then
        echo "docker-engine: an engine already answers; nothing to start." >&2
        return 0
    fi
    if ! command -v dockerd >/dev/null 2>&1; then
        echo "docker-engine: installing docker.io (provides dockerd)" >&2
        "${sudo[@]}" apt-get update -qq
        DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq docker.io >/dev/null
    fi
    local log
    log=$(mktemp "${TMPDIR:-/tmp}/dockerd.XXXXXX.log")
    # setsid: dockerd must outlive this script (and the shell that ran it) until `stop`. In a
    # shell without job control the background child is no process-group leader, so setsid
    # does not fork again and $! is dockerd's own pid.
    "${sudo[@]}" setsid dockerd >"$log" 2>&1 </dev/null &
    echo $! >"$PID_FILE"
    echo "docker-engine: started dockerd (pid $(cat "$PID_FILE"), log $log)" >&2
    local waited=0
    until engine_answers; do
        if ! recorded_pid >/dev/null; then
            echo "docker-engine: dockerd exited before it answered; the end of its log:" >&2
            tail -n 20 "$log" >&2
            rm -f "$PID_FILE"
            return 1
        fi
        if [ "$waited" -ge "$WAIT_SECONDS" ]; then
            echo "docker-engine: dockerd did not answer within ${WAIT_SECONDS}s; see $log" >&2
            return 1
        fi
        sleep 1
        waited=$((waited + 1))
    done
    echo "docker-engine: the engine answers (after ${waited}s)." >&2
}

stop() {
    local pid
    if ! pid=$(recorded_pid); then
        echo "docker-engine: no dockerd started by this script is running; nothing to stop." >&2
        rm -f "$PID_FILE"
        return 0
    fi
    "${sudo[@]}" kill -TERM "$pid"
    # dockerd stops the containerd it started itself before it exits.
    local waited=0
    while [ -e "/proc/$pid" ] && [ "$waited" -lt 30 ]; do
        sleep 1
        waited=$((waited + 1))
    done
    if [ -e "/proc/$pid" ]; then
        echo "docker-engine: dockerd (pid $pid) is still running after 30s." >&2
        return 1
    fi
    rm -f "$PID_FILE"
    echo "docker-engine: stopped dockerd (pid $pid)." >&2
}

case "${1:-}" in
start) start ;;
stop) stop ;;
*)
    echo "usage: $0 start|stop" >&2
    exit 2
    ;;
esac
