# shellcheck shell=bash
# shellcheck disable=SC2034  # variables used by the scripts that source lib.sh
# The three services and their settings: .run/env (ensure_env), starting a service or its
# second replica from the release build and waiting until it is healthy (scripts/up), stopping
# a service and its replica (scripts/down), and dropping what earlier test runs left behind.

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

BIN_DIR="$ROOT/target/release" # the release build scripts/up starts the services from

# start_service NAME PORT_VARIABLE [REPLICA]: starts the service NAME (its binary) on the port
# in PORT_VARIABLE; REPLICA 2 runs a second replica, named NAME-2 in its pid file, log and
# process list, on the port in PORT_VARIABLE_2, the aggregator with its own static membership id.
start_service() {
    local name="$1" port_var="$2" replica="${3:-1}"
    local bin="$BIN_DIR/$1" process="$1" overrides=() pid
    if [[ $replica != 1 ]]; then
        process="$name-$replica"
        port_var="${port_var}_$replica"
        overrides=("$2=${!port_var}" "AGGREGATOR_INSTANCE_ID=poll-aggregator-$((replica - 1))")
    fi
    local port="${!port_var}" logfile="$LOG_DIR/$process.log"
    [[ -x $bin ]] || die "$bin was not built"
    if pid="$(running_pid "$process")"; then
        if [[ "$(readlink "/proc/$pid/exe" 2>/dev/null || true)" == *" (deleted)" ]]; then
            log "$process (pid $pid) runs an older build; restarting it"
            stop_process "$process"
        else
            log "$process is already running (pid $pid)"
            return 0
        fi
    fi
    if port_open 127.0.0.1 "$port"; then
        die "port $port is taken by a process these scripts did not start; free it or set $port_var in $ENV_FILE"
    fi
    log "starting $process on port $port (log: $logfile)"
    # exec -a: the process list and running_pid tell the replicas apart by their argv[0].
    # shellcheck disable=SC2016 # $0 and $1 are bash -c's arguments
    env "${overrides[@]}" setsid bash -c 'exec -a "$0" "$1"' "$process" "$bin" >>"$logfile" 2>&1 </dev/null &
    echo $! >"$PID_DIR/$process.pid"
}

# wait_healthy NAME PORT_VARIABLE: NAME is the process name (voting-api-2 for a replica).
wait_healthy() {
    local name="$1" port="${!2}" pid
    pid="$(running_pid "$name")" || {
        show_log_tail "$LOG_DIR/$name.log"
        die "$name exited right after it started"
    }
    log "waiting for $name: http://127.0.0.1:$port/healthz"
    wait_until "$name" 90 "$pid" "$LOG_DIR/$name.log" \
        curl -fsS --max-time 2 "http://127.0.0.1:$port/healthz"
}

# stop_service NAME TIMEOUT_S: the service and its second replica, if one runs.
stop_service() {
    stop_process "$1" "$2"
    if running_pid "$1-2" >/dev/null; then stop_process "$1-2" "$2"; fi
}
