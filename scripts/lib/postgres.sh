# shellcheck shell=bash
# shellcheck disable=SC2034  # variables used by the scripts that source lib.sh
# PostgreSQL: installs and starts the local server on 127.0.0.1:5432 (passwordless for the
# postgres superuser over loopback TCP) and creates the pollstream database.

# Local PostgreSQL, reached as its superuser over TCP (the tests create their own databases).
PG_HOST="127.0.0.1"
PG_PORT="5432"
PG_ADMIN_URL="postgres://postgres@$PG_HOST:$PG_PORT/postgres"
PG_DATABASE="pollstream"

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
