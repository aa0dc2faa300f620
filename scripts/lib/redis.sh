# shellcheck shell=bash
# shellcheck disable=SC2034  # variables used by the scripts that source lib.sh
# Redis: installs and starts the local server on 127.0.0.1:6379.

REDIS_HOST="127.0.0.1"
REDIS_PORT="6379"

# redis_pong: true when Redis answers PING on 127.0.0.1:6379.
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
