# shellcheck shell=bash
# shellcheck disable=SC2034  # variables used by the scripts that source lib.sh
# Node.js and the web: node and npm, the Node.js test client's packages (e2e/node), the web
# app's packages and its build (web/dist), and the Chromium the browser test drives.

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
        cd "$ROOT/web" || exit 1
        find package.json package-lock.json index.html tsconfig.json vite.config.ts src public \
            -type f -print0 2>/dev/null | sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1
    )
}

# ensure_web_deps: the web app's Node.js packages (web/node_modules), installed with `npm ci`
# from the committed lockfile when that lockfile changed since the last install.
ensure_web_deps() {
    local dir="$ROOT/web"
    ensure_node
    local installed="$dir/node_modules/.package-lock.json"
    if [[ -f $installed && $installed -nt $dir/package-lock.json ]]; then
        log "Node.js packages in web are up to date"
    else
        log "installing Node.js packages in web (npm ci)"
        (cd "$dir" && npm ci --no-audit --no-fund)
    fi
}

# ensure_web_build: web/dist, the built web app voting-api serves (WEB_DIR). Its packages come
# from ensure_web_deps; `npm run build` runs when any source changed since the last build (a
# hash in web/dist/.sources.sha256). Sets WEB_REBUILT=1 when it built, so a running voting-api
# (which reads index.html at start) can be restarted.
WEB_REBUILT=0
ensure_web_build() {
    local dir="$ROOT/web" want stamp="$ROOT/web/dist/.sources.sha256"
    [[ -f $dir/package.json ]] || return 0
    ensure_web_deps
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
