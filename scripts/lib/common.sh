# shellcheck shell=bash
# shellcheck disable=SC2034  # variables used by the scripts that source lib.sh
# The ground every other part of scripts/lib/ stands on: the repository's paths (.run/ and
# what lives in it), the Debian packages the workspace builds with, logging (log, warn, die),
# running as root or as postgres, installing missing apt packages, and waiting for a port, a
# command or a process (wait_until, wait_for_port, running_pid, stop_process).

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
RUN_DIR="$ROOT/.run"       # git-ignored: env file, logs, pid files, broker data
LOG_DIR="$RUN_DIR/logs"
PID_DIR="$RUN_DIR/pids"
ENV_FILE="$RUN_DIR/env"
KAFKA_RUN_DIR="$RUN_DIR/kafka"         # the jars (libs/) and each node's data
KAFKA_LIBS_DIR="$KAFKA_RUN_DIR/libs"
KAFKA_CONFIG_DIR="$ROOT/scripts/kafka" # the pinned release (pom.xml) and its logging

# Debian packages needed to build the workspace (rdkafka builds librdkafka with cmake and
# needs curl headers) and to run the local infrastructure (kcat: the Kafka console workflow of docs/operations.md).
BUILD_PACKAGES=(build-essential pkg-config cmake libcurl4-openssl-dev zlib1g-dev
    ca-certificates curl)
INFRA_PACKAGES=(postgresql postgresql-client redis-server redis-tools kcat)

CARGO_BIN_DIR="${CARGO_HOME:-$HOME/.cargo}/bin"
if [[ -d "$CARGO_BIN_DIR" && ":$PATH:" != *":$CARGO_BIN_DIR:"* ]]; then
    PATH="$CARGO_BIN_DIR:$PATH"
fi

log() { printf '==> %s\n' "$*" >&2; }
warn() { printf '==> warning: %s\n' "$*" >&2; }
die() {
    printf '==> error: %s\n' "$*" >&2
    exit 1
}

# Runs a command as root (directly, or through sudo when not root).
as_root() {
    if [[ $(id -u) -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root (or sudo) to run: $*"
    fi
}

# Runs a command as the postgres system user (peer authentication on the local socket).
as_postgres() {
    if [[ $(id -u) -eq 0 ]]; then
        runuser -u postgres -- "$@"
    else
        sudo -u postgres "$@"
    fi
}

require_cargo() {
    command -v cargo >/dev/null 2>&1 ||
        die "cargo not found: install the Rust toolchain (https://rustup.rs) and run this again"
}

# ensure_apt_packages PKG...: installs the packages that are not installed yet.
ensure_apt_packages() {
    local missing=() pkg status
    for pkg in "$@"; do
        status="$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)"
        [[ $status == "install ok installed" ]] || missing+=("$pkg")
    done
    if [[ ${#missing[@]} -eq 0 ]]; then
        return 0
    fi
    command -v apt-get >/dev/null 2>&1 ||
        die "missing packages (${missing[*]}) and no apt-get to install them; install them by hand"
    log "installing Debian packages: ${missing[*]}"
    as_root apt-get update
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
}

# port_open HOST PORT: true when something accepts TCP connections there.
port_open() {
    (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

# wait_until DESCRIPTION TIMEOUT_S PID LOGFILE COMMAND...
# Retries COMMAND (quietly) every second until it succeeds. Fails after TIMEOUT_S seconds, or
# as soon as PID (when not "-") has exited; shows the end of LOGFILE (when not "-") on failure.
wait_until() {
    local what="$1" timeout="$2" pid="$3" logfile="$4"
    shift 4
    local deadline=$((SECONDS + timeout))
    until "$@" >/dev/null 2>&1; do
        if [[ $pid != "-" ]] && ! kill -0 "$pid" 2>/dev/null; then
            show_log_tail "$logfile"
            die "$what: the process (pid $pid) exited"
        fi
        if ((SECONDS >= deadline)); then
            show_log_tail "$logfile"
            die "$what: still not ready after ${timeout}s"
        fi
        sleep 1
    done
}

# wait_until_quiet TIMEOUT_S COMMAND...: like wait_until, but returns 1 instead of failing.
wait_until_quiet() {
    local deadline=$((SECONDS + $1))
    shift
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || return 1
        sleep 1
    done
}

show_log_tail() {
    if [[ $1 != "-" && -f $1 ]]; then
        printf -- '--- last lines of %s ---\n' "$1" >&2
        tail -n 30 "$1" >&2
        printf -- '---\n' >&2
    fi
}

# wait_for_port HOST PORT [TIMEOUT_S] [PID] [LOGFILE]
wait_for_port() {
    local host="$1" port="$2" timeout="${3:-60}" pid="${4:--}" logfile="${5:--}"
    log "waiting for $host:$port to accept connections"
    wait_until "$host:$port" "$timeout" "$pid" "$logfile" port_open "$host" "$port"
}

# running_pid NAME: prints the pid recorded in .run/pids/NAME.pid when that process is alive
# and still runs NAME; otherwise removes the stale pid file and returns 1.
running_pid() {
    local name="$1" pidfile="$PID_DIR/$1.pid" pid cmdline=""
    [[ -f $pidfile ]] || return 1
    pid="$(<"$pidfile")"
    if [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then
        cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)"
    fi
    if [[ $cmdline == *"$name"* ]]; then
        printf '%s\n' "$pid"
        return 0
    fi
    rm -f "$pidfile"
    return 1
}

# stop_process NAME [TIMEOUT_S]: SIGTERM to the process recorded for NAME, SIGKILL if it is
# still there after TIMEOUT_S (it may be draining).
stop_process() {
    local name="$1" timeout="${2:-30}" pid deadline
    if ! pid="$(running_pid "$name")"; then
        log "$name is not running"
        return 0
    fi
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + timeout))
    while kill -0 "$pid" 2>/dev/null; do
        if ((SECONDS >= deadline)); then
            warn "$name (pid $pid) did not stop within ${timeout}s; killing it"
            kill -KILL "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.5
    done
    rm -f "$PID_DIR/$name.pid"
}
