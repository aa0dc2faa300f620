# shellcheck shell=bash
# shellcheck disable=SC2034  # variables used by the scripts that source this file
# Helpers shared by scripts/up, scripts/down, scripts/token and scripts/test.
# Source this file; do not run it. Every ensure_* / start_* function is idempotent:
# it checks first, says what it finds, and only acts when something is missing.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUN_DIR="$ROOT/.run"       # git-ignored: env file, logs, pid files, broker data
LOG_DIR="$RUN_DIR/logs"
PID_DIR="$RUN_DIR/pids"
ENV_FILE="$RUN_DIR/env"
KAFKA_RUN_DIR="$RUN_DIR/kafka"         # the jars (libs/) and each node's data
KAFKA_LIBS_DIR="$KAFKA_RUN_DIR/libs"
KAFKA_CONFIG_DIR="$ROOT/scripts/kafka" # the pinned release (pom.xml) and its logging

# Local PostgreSQL, reached as its superuser over TCP (the tests create their own databases).
PG_HOST="127.0.0.1"
PG_PORT="5432"
PG_ADMIN_URL="postgres://postgres@$PG_HOST:$PG_PORT/postgres"
PG_DATABASE="pollstream"
REDIS_HOST="127.0.0.1"
REDIS_PORT="6379"
KAFKA_HOST="127.0.0.1"
KAFKA_PORT="${KAFKA_PORT:-9092}" # the first node (its controller: the next port); --cluster: +100, +200

# Debian packages needed to build the workspace (rdkafka builds librdkafka with cmake and
# needs curl headers) and to run the local infrastructure (kcat: the README's Kafka console).
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

# ensure_postgres: PostgreSQL installed, running on 127.0.0.1:5432, and reachable over TCP
# as the postgres superuser without a password.
ensure_postgres() {
    ensure_apt_packages postgresql postgresql-client
    if pg_isready -q -h "$PG_HOST" -p "$PG_PORT"; then
        log "PostgreSQL is running on $PG_HOST:$PG_PORT"
    else
        local version cluster
        if [[ -z "$(pg_lsclusters --no-header 2>/dev/null)" ]]; then
            version="$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -V | tail -n 1)"
            [[ -n $version ]] || die "PostgreSQL server binaries not found under /usr/lib/postgresql"
            log "creating PostgreSQL cluster $version/main"
            as_root pg_createcluster --port "$PG_PORT" "$version" main
        fi
        # Start every cluster that is down (normally just one: <version>/main on 5432).
        while read -r version cluster _port status _rest; do
            if [[ $status != online* ]]; then
                log "starting PostgreSQL cluster $version/$cluster"
                as_root pg_ctlcluster --skip-systemctl-redirect "$version" "$cluster" start
            fi
        done < <(pg_lsclusters --no-header)
        wait_until "PostgreSQL on $PG_HOST:$PG_PORT" 60 - - pg_isready -q -h "$PG_HOST" -p "$PG_PORT"
        log "PostgreSQL is running on $PG_HOST:$PG_PORT"
    fi

    if psql "$PG_ADMIN_URL" -w -X -q -tA -c 'select 1' >/dev/null 2>&1; then
        return 0
    fi
    # A fresh Debian install asks for a password on TCP connections. This is a local
    # development database: let loopback connections in without one, as on the project's
    # machines.
    local hba
    hba="$(as_postgres psql -p "$PG_PORT" -X -tA -c 'show hba_file')"
    [[ -f $hba ]] || die "cannot find pg_hba.conf (got '$hba')"
    if ! grep -q '^# pollstream: local development' "$hba"; then
        log "allowing passwordless loopback connections to PostgreSQL in $hba"
        local tmp
        tmp="$(mktemp)"
        {
            echo '# pollstream: local development (scripts/lib.sh): trust loopback TCP connections'
            echo 'host    all    all    127.0.0.1/32    trust'
            echo 'host    all    all    ::1/128         trust'
            cat "$hba"
        } >"$tmp"
        as_root cp "$tmp" "$hba"
        rm -f "$tmp"
    fi
    as_postgres psql -p "$PG_PORT" -X -q -tA -c 'select pg_reload_conf()' >/dev/null
    wait_until "PostgreSQL login as postgres over TCP" 10 - - \
        psql "$PG_ADMIN_URL" -w -X -q -tA -c 'select 1'
}

redis_pong() {
    [[ "$(redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" ping 2>/dev/null)" == PONG ]]
}

# ensure_redis: Redis installed and answering on 127.0.0.1:6379.
ensure_redis() {
    ensure_apt_packages redis-server redis-tools
    if redis_pong; then
        log "Redis is running on $REDIS_HOST:$REDIS_PORT"
        return 0
    fi
    log "starting Redis on $REDIS_HOST:$REDIS_PORT"
    as_root mkdir -p /var/lib/redis /var/log/redis
    as_root redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$REDIS_PORT" \
        --save "" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
    wait_until "Redis on $REDIS_HOST:$REDIS_PORT" 30 - /var/log/redis/ci.log redis_pong
    log "Redis is running on $REDIS_HOST:$REDIS_PORT"
}

# ensure_java: a JDK (17 or newer) and Maven, from Debian's packages where missing.
ensure_java() {
    local missing=()
    command -v java >/dev/null 2>&1 || missing+=(default-jdk-headless)
    command -v mvn >/dev/null 2>&1 || missing+=(maven)
    [[ ${#missing[@]} -eq 0 ]] || ensure_apt_packages "${missing[@]}"
    local version
    version="$(java -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')"
    [[ ${version%%.*} -ge 17 ]] 2>/dev/null || die "Apache Kafka 4 needs Java 17 or newer; java is $version"
}

# ensure_kafka: Apache Kafka's jars (the broker and its console tools, pinned in
# scripts/kafka/pom.xml) in .run/kafka/libs, resolved from Maven Central once and again only
# when the pom changes. A lock keeps parallel first runs from resolving into the same folder.
ensure_kafka() {
    local pom="$KAFKA_CONFIG_DIR/pom.xml" want stamp="$KAFKA_LIBS_DIR/.complete"
    want="$(cat "$pom" "$KAFKA_CONFIG_DIR/log4j2.properties" | sha256sum | cut -d' ' -f1)"
    if [[ "$(cat "$stamp" 2>/dev/null)" == "$want" ]]; then
        log "Apache Kafka $(kafka_version) is installed ($KAFKA_LIBS_DIR)"
        return 0
    fi
    ensure_java
    mkdir -p "$KAFKA_RUN_DIR"
    exec 7>"$KAFKA_RUN_DIR/install.lock"
    flock 7
    if [[ "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
        log "installing Apache Kafka $(kafka_version) from Maven Central into $KAFKA_LIBS_DIR"
        rm -rf "$KAFKA_LIBS_DIR.new"
        mvn -B -q -Dstyle.color=never -f "$pom" dependency:copy-dependencies -DincludeScope=runtime \
            -DoutputDirectory="$KAFKA_LIBS_DIR.new" ||
            die "could not resolve Apache Kafka from Maven Central (mvn, see above)"
        rm -rf "$KAFKA_LIBS_DIR"
        mv "$KAFKA_LIBS_DIR.new" "$KAFKA_LIBS_DIR"
        printf '%s\n' "$want" >"$stamp"
    fi
    exec 7>&-
    log "Apache Kafka $(kafka_version) is installed ($KAFKA_LIBS_DIR)"
}

# kafka_version: the Kafka release pinned in scripts/kafka/pom.xml.
kafka_version() {
    sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$KAFKA_CONFIG_DIR/pom.xml"
}

# kafka_tool CLASS ARGS...: runs one of Kafka's command-line tools from the installed jars, as
# the distribution's bin/*.sh scripts do (quiet logging, small heap).
kafka_tool() {
    local class="$1"
    shift
    [[ -f $KAFKA_LIBS_DIR/.complete ]] || ensure_kafka >/dev/null
    exec java -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true \
        -Dlog4j2.configurationFile="$KAFKA_CONFIG_DIR/log4j2.properties" -Dkafka.root.log.level=WARN \
        -cp "$KAFKA_LIBS_DIR/*" "$class" "$@"
}

# kafka_answers BROKERS: true when the brokers answer a metadata request (an open port is not
# enough: a node opens its port before it has joined the quorum).
kafka_answers() {
    (kafka_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$1" --list) >/dev/null 2>&1
}

# start_kafka_node NAME DIR NODE_ID PORT CONTROLLER_PORT [kafka-node options...]: runs one node
# in the background (pid in .run/pids/NAME.pid, log in .run/logs/NAME.log) unless it already
# runs; does not wait for it.
start_kafka_node() {
    local name="$1" dir="$2" node_id="$3" port="$4" controller_port="$5" pid
    shift 5
    mkdir -p "$LOG_DIR" "$PID_DIR"
    if pid="$(running_pid "$name")"; then
        log "$name is already running (pid $pid)"
        return 0
    fi
    port_open "$KAFKA_HOST" "$port" &&
        die "$KAFKA_HOST:$port is taken by a process these scripts did not start; stop it first"
    log "starting $name on $KAFKA_HOST:$port (data in $dir, log in $LOG_DIR/$name.log)"
    setsid "$ROOT/scripts/kafka-node" --dir "$dir" --node-id "$node_id" --port "$port" \
        --controller-port "$controller_port" "$@" >>"$LOG_DIR/$name.log" 2>&1 </dev/null &
    echo $! >"$PID_DIR/$name.pid"
}

# kafka_pid NAME: the pid recorded for a node just started, or "-". Not running_pid: until the
# background child has exec'd kafka-node, its command line is its parent's, and running_pid
# would take the fresh pid file for a stale one and delete it.
kafka_pid() {
    cat "$PID_DIR/$1.pid" 2>/dev/null || echo -
}

# start_kafka: one Apache Kafka node on 127.0.0.1:9092 (data in .run/kafka/single), or with
# KAFKA_CLUSTER=1 three nodes on 127.0.0.1:9092, :9192 and :9292 (data in .run/kafka/cluster,
# topics replicated three times, min.insync.replicas=2). Without KAFKA_CLUSTER, whichever layout
# already runs is kept. Waits until the brokers answer; exports KAFKA_BROKERS for what runs.
# Stops the other layout first.
start_kafka() {
    local node pid
    if [[ -z ${KAFKA_CLUSTER:-} ]]; then
        KAFKA_CLUSTER=0
        if running_pid kafka-node-1 >/dev/null; then KAFKA_CLUSTER=1; fi
    fi
    if [[ $KAFKA_CLUSTER == 1 ]]; then
        stop_process kafka 30 >/dev/null 2>&1
        # Node N: client port KAFKA_PORT + 100 (N - 1), its controller the port after it.
        local voters="1@$KAFKA_HOST:$((KAFKA_PORT + 1)),2@$KAFKA_HOST:$((KAFKA_PORT + 101)),3@$KAFKA_HOST:$((KAFKA_PORT + 201))"
        for node in 1 2 3; do
            start_kafka_node "kafka-node-$node" "$KAFKA_RUN_DIR/cluster/kafka-node-$node" "$node" \
                "$((KAFKA_PORT + (node - 1) * 100))" "$((KAFKA_PORT + 1 + (node - 1) * 100))" \
                --voters "$voters" --cluster-id pollstream-kafka-3node --replication 3
        done
        KAFKA_BROKERS="$KAFKA_HOST:$KAFKA_PORT,$KAFKA_HOST:$((KAFKA_PORT + 100)),$KAFKA_HOST:$((KAFKA_PORT + 200))"
        for node in 1 2 3; do
            pid="$(kafka_pid "kafka-node-$node")"
            wait_for_port "$KAFKA_HOST" "$((KAFKA_PORT + (node - 1) * 100))" 90 "${pid:--}" "$LOG_DIR/kafka-node-$node.log"
        done
    else
        for node in 1 2 3; do stop_process "kafka-node-$node" 30 >/dev/null 2>&1; done
        start_kafka_node kafka "$KAFKA_RUN_DIR/single" 1 "$KAFKA_PORT" "$((KAFKA_PORT + 1))"
        KAFKA_BROKERS="$KAFKA_HOST:$KAFKA_PORT"
        pid="$(kafka_pid kafka)"
        wait_for_port "$KAFKA_HOST" "$KAFKA_PORT" 90 "${pid:--}" "$LOG_DIR/kafka.log"
    fi
    export KAFKA_BROKERS
    wait_until "Apache Kafka on $KAFKA_BROKERS" 90 - - kafka_answers "$KAFKA_BROKERS"
    log "Apache Kafka is answering on $KAFKA_BROKERS"
}

# stop_kafka: stops every Kafka node these scripts started (a clean shutdown: each node
# flushes its logs and hands its partitions over first). A cluster's nodes get SIGTERM together:
# one by one, the last ones would wait for a controller quorum that is already gone.
stop_kafka() {
    local node pid
    for node in 1 2 3; do
        if pid="$(running_pid "kafka-node-$node")"; then kill -TERM "$pid" 2>/dev/null || true; fi
    done
    for node in 3 2 1; do stop_process "kafka-node-$node" 60; done
    stop_process kafka 60
}

# ensure_topics ADMIN_BIN: creates raw-votes, raw-votes.dlq and poll-updates. Retries, since a
# broker that just opened its port may not answer admin requests yet.
ensure_topics() {
    local admin="$1"
    log "creating Kafka topics on $KAFKA_BROKERS"
    local deadline=$((SECONDS + 90)) out
    until out="$("$admin" create-topics 2>&1)"; do
        if ((SECONDS >= deadline)); then
            printf '%s\n' "$out" >&2
            die "could not create the Kafka topics on $KAFKA_BROKERS"
        fi
        sleep 2
    done
    printf '%s\n' "$out" | sed 's/^/    /' >&2
}

# clean_test_leftovers: drops the databases (pollstream_test_*) and deletes the Kafka topics
# (test-*) that earlier test runs created; each test makes its own and leaves them behind.
clean_test_leftovers() {
    local databases db count
    databases="$(psql "$PG_ADMIN_URL" -w -X -tA -c \
        "select datname from pg_database where datname like 'pollstream\_test\_%'")"
    count="$(printf '%s' "$databases" | grep -c . || true)"
    if [[ $count -gt 0 ]]; then
        log "dropping $count test databases left by earlier runs"
        while read -r db; do
            psql "$PG_ADMIN_URL" -w -X -q -c "drop database if exists \"$db\" with (force)"
        done <<<"$databases"
    fi
    count="$( (kafka_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$KAFKA_BROKERS" \
        --list --topic 'test-.*') 2>/dev/null | grep -c . || true)"
    if [[ $count -gt 0 ]]; then
        log "deleting $count test topics left by earlier runs"
        (kafka_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$KAFKA_BROKERS" \
            --delete --if-exists --topic 'test-.*') >/dev/null
    fi
}

# ensure_database: the pollstream database exists on the local PostgreSQL.
ensure_database() {
    local exists
    exists="$(psql "$PG_ADMIN_URL" -w -X -tA -c "select 1 from pg_database where datname = '$PG_DATABASE'")"
    if [[ $exists == 1 ]]; then
        log "database $PG_DATABASE exists"
    else
        log "creating database $PG_DATABASE"
        psql "$PG_ADMIN_URL" -w -X -q -c "create database $PG_DATABASE"
    fi
}

# ensure_env: creates .run/env once (with a random JWT_SECRET) and exports its variables.
# Edit .run/env to change the local settings; delete it to start over (this also changes the
# JWT secret, so tokens minted before stop working). Variables already set in the calling
# environment win over the file.
ensure_env() {
    mkdir -p "$RUN_DIR"
    if [[ ! -f $ENV_FILE ]]; then
        local secret
        secret="$(head -c 36 /dev/urandom | base64 | tr '+/' '-_')" # 48 characters
        [[ ${#secret} -eq 48 ]] || die "could not generate a JWT secret"
        log "writing $ENV_FILE (with a new random JWT_SECRET)"
        (
            umask 077
            cat >"$ENV_FILE" <<EOF
# Local settings for scripts/up, scripts/token and the services they start.
# Created by scripts/lib.sh; edit freely. Values set in the environment take precedence.
JWT_SECRET="\${JWT_SECRET:-$secret}"
DATABASE_URL="\${DATABASE_URL:-postgres://postgres@$PG_HOST:$PG_PORT/$PG_DATABASE}"
REDIS_URL="\${REDIS_URL:-redis://$REDIS_HOST:$REDIS_PORT}"
KAFKA_BROKERS="\${KAFKA_BROKERS:-$KAFKA_HOST:$KAFKA_PORT}"
VOTING_API_PORT="\${VOTING_API_PORT:-3001}"
POLL_AGGREGATOR_PORT="\${POLL_AGGREGATOR_PORT:-3002}"
REALTIME_SERVICE_PORT="\${REALTIME_SERVICE_PORT:-3003}"
FLUSH_INTERVAL_MS="\${FLUSH_INTERVAL_MS:-2000}"
# The aggregator's static group membership id: a restart after a crash resumes at once.
AGGREGATOR_INSTANCE_ID="\${AGGREGATOR_INSTANCE_ID:-poll-aggregator-0}"
VOTE_LOCK_TTL_SECS="\${VOTE_LOCK_TTL_SECS:-86400}"
RUST_LOG="\${RUST_LOG:-info,sqlx=warn,rdkafka=warn}"
EOF
        )
    fi
    set -a
    # shellcheck source=/dev/null
    . "$ENV_FILE"
    set +a
}

# ensure_node_deps: installs the Node.js test client's packages (e2e/node), if that folder
# exists. Skipped when node_modules is newer than package.json and package-lock.json.
ensure_node_deps() {
    local dir="$ROOT/e2e/node"
    [[ -f $dir/package.json ]] || return 0
    ensure_node
    local stamp="$dir/node_modules/.package-lock.json"
    if [[ -f $stamp && $stamp -nt $dir/package.json &&
        (! -f $dir/package-lock.json || $stamp -nt $dir/package-lock.json) ]]; then
        log "Node.js packages in e2e/node are up to date"
        return 0
    fi
    if [[ -f $dir/package-lock.json ]]; then
        log "installing Node.js packages in e2e/node (npm ci)"
        (cd "$dir" && npm ci --no-audit --no-fund)
    else
        log "installing Node.js packages in e2e/node (npm install)"
        (cd "$dir" && npm install --no-audit --no-fund)
    fi
}

# ensure_node: node and npm, from Debian when missing.
ensure_node() {
    if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
        ensure_apt_packages nodejs npm
    fi
}

# web_sources_hash: one hash of everything the web build reads (lockfile, sources, config).
web_sources_hash() {
    (
        cd "$ROOT/web"
        find package.json package-lock.json index.html tsconfig.json vite.config.ts src public \
            -type f -print0 2>/dev/null | sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1
    )
}

# ensure_web_build: web/dist, the built web app voting-api serves (WEB_DIR). `npm ci` (from the
# committed lockfile) runs when the lockfile changed since the last install, `npm run build`
# when any source changed since the last build (a hash in web/dist/.sources.sha256). Sets
# WEB_REBUILT=1 when it built, so a running voting-api (which reads index.html at start) can
# be restarted.
WEB_REBUILT=0
ensure_web_build() {
    local dir="$ROOT/web" want stamp="$ROOT/web/dist/.sources.sha256"
    [[ -f $dir/package.json ]] || return 0
    ensure_node
    local installed="$dir/node_modules/.package-lock.json"
    if [[ -f $installed && $installed -nt $dir/package-lock.json ]]; then
        log "Node.js packages in web are up to date"
    else
        log "installing Node.js packages in web (npm ci)"
        (cd "$dir" && npm ci --no-audit --no-fund)
    fi
    want="$(web_sources_hash)"
    if [[ -f $dir/dist/index.html && "$(cat "$stamp" 2>/dev/null)" == "$want" ]]; then
        log "web app build is up to date (web/dist)"
        return 0
    fi
    log "building the web app (npm run build -> web/dist)"
    (cd "$dir" && npm run build)
    printf '%s\n' "$want" >"$stamp"
    WEB_REBUILT=1
}

# ensure_browser: Debian's Chromium, which the browser test drives (no browser download).
ensure_browser() {
    ensure_apt_packages chromium
}

# ensure_python_tools: .run/venv with the Python tools the tests run (schemathesis's `st`, the
# OpenAPI fuzzer of voting-api's tests), pinned in scripts/python-tools.txt and installed from
# PyPI once, and again only when that file changes. A lock keeps parallel first runs apart.
ensure_python_tools() {
    local venv="$RUN_DIR/venv" requirements="$ROOT/scripts/python-tools.txt" want
    local stamp="$RUN_DIR/venv/.requirements.sha256"
    want="$(sha256sum <"$requirements" | cut -d' ' -f1)"
    if [[ -x $venv/bin/st && "$(cat "$stamp" 2>/dev/null)" == "$want" ]]; then
        log "Python test tools are installed ($venv)"
        return 0
    fi
    mkdir -p "$RUN_DIR"
    exec 9>"$RUN_DIR/venv.lock"
    flock 9
    if [[ ! -x $venv/bin/st || "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
        command -v python3 >/dev/null 2>&1 || ensure_apt_packages python3
        log "installing the Python test tools pinned in scripts/python-tools.txt into $venv (PyPI)"
        if ! python3 -m venv --clear "$venv" >&2; then
            ensure_apt_packages python3-venv
            python3 -m venv --clear "$venv" >&2
        fi
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements" >&2 ||
            die "could not install the Python test tools from PyPI (pip, see above)"
        printf '%s\n' "$want" >"$stamp"
    fi
    exec 9>&-
    log "Python test tools are installed ($venv)"
}
