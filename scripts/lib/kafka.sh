# shellcheck shell=bash
# shellcheck disable=SC2034  # variables used by the scripts that source lib.sh
# Apache Kafka: the JDK and the pinned jars (scripts/kafka/pom.xml, into .run/kafka/libs), its
# console tools (kafka_tool), one node or a three-node cluster started and stopped through
# scripts/kafka-node, and the topics the services use.

KAFKA_HOST="127.0.0.1"
KAFKA_PORT="${KAFKA_PORT:-9092}" # the first node (its controller: the next port); --cluster: +100, +200

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
