# shellcheck shell=bash
# Python: .run/venv with the test tools pinned in scripts/python-tools.txt (schemathesis).

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
