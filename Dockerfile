# syntax=docker/dockerfile:1
#
# Container images for pollstream: one target per binary, all four built by one cargo run.
#
#   docker build --target voting-api       -t pollstream/voting-api:local .
#   docker build --target poll-aggregator  -t pollstream/poll-aggregator:local .
#   docker build --target realtime-service -t pollstream/realtime-service:local .
#   docker build --target admin            -t pollstream/admin:local .
#
# The voting-api image also holds the web app (web/, built by Node.js in the `web` stage), which
# it serves at `/`.
#
# `admin` is pollstream-admin (`migrate`, `create-topics`, `token`): the compose stack and the
# Kubernetes Jobs run it once before the services start. `docker compose build` builds all four.
#
# Dependency caching: cargo-chef turns the workspace manifests and Cargo.lock into a recipe, and
# the dependencies (librdkafka's C build above all, several minutes) are compiled from that
# recipe in a layer of their own. That layer is rebuilt only when a manifest or the lock file
# changes, not when the services' code does. cargo-chef is used rather than a hand-written layer
# of dummy sources because the workspace has nine members with path dependencies between them,
# which a dummy layer would have to mirror by hand and would silently get wrong.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm
ARG NODE_VERSION=22

# ---- toolchain: Rust, the C toolchain librdkafka needs, cargo-chef -----------------------------
FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS chef
# rdkafka's cmake-build feature compiles the bundled librdkafka: it needs cmake, a C/C++
# toolchain, and the curl and zlib headers. Versions come with the pinned Debian release; pinning
# each package as well would break the build at every Debian point release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        build-essential cmake pkg-config libcurl4-openssl-dev zlib1g-dev \
    && rm -rf /var/lib/apt/lists/*
ARG CARGO_CHEF_VERSION=0.1.78
RUN cargo install cargo-chef --version "${CARGO_CHEF_VERSION}" --locked \
    && rm -rf "${CARGO_HOME}/registry"
WORKDIR /src

# ---- planner: the recipe (manifests and lock file only) ----------------------------------------
FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

# ---- builder: dependencies from the recipe, then the four binaries -----------------------------
FROM chef AS builder
# The same package list for `cook` and `build`, so cargo resolves the same features and reuses
# every dependency compiled in the cached layer.
ARG PACKAGES="-p voting-api -p poll-aggregator -p realtime-service -p pollstream-admin"
COPY --from=planner /src/recipe.json recipe.json
# hadolint ignore=SC2086
RUN cargo chef cook --release --locked --recipe-path recipe.json ${PACKAGES}
COPY . .
# hadolint ignore=SC2086
RUN cargo build --release --locked ${PACKAGES} \
    && mkdir -p /out \
    && cp target/release/voting-api target/release/poll-aggregator \
        target/release/realtime-service target/release/pollstream-admin /out/

# ---- web: the web app (web/), built from the committed lockfile -------------------------------
# Its dist/ goes into the voting-api image, which serves it (WEB_DIR). The package files are
# copied first, so `npm ci` is redone only when the lockfile changes.
FROM node:${NODE_VERSION}-${DEBIAN_RELEASE}-slim AS web
WORKDIR /web
COPY web/package.json web/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY web/ ./
RUN npm run build

# ---- runtime: what every image shares ----------------------------------------------------------
FROM debian:${DEBIAN_RELEASE}-slim AS runtime
# The binaries link only glibc, libgcc and zlib (already in the base image): librdkafka is
# compiled in. curl is here for HEALTHCHECK; ca-certificates for TLS endpoints configured later.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 pollstream \
    && useradd --system --uid 10001 --gid pollstream --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin pollstream
# JSON log lines for log collectors; override with LOG_FORMAT=pretty when reading by eye.
ENV LOG_FORMAT=json \
    RUST_LOG=info,sqlx=warn,rdkafka=warn
# A numeric user, so that Kubernetes' runAsNonRoot can check it without reading /etc/passwd.
USER 10001:10001

# ---- admin: one-shot operator commands (migrate, create-topics, token) -------------------------
FROM runtime AS admin
COPY --from=builder /out/pollstream-admin /usr/local/bin/pollstream-admin
# A one-shot job has nothing to probe.
HEALTHCHECK NONE
ENTRYPOINT ["/usr/local/bin/pollstream-admin"]
CMD ["--help"]

# ---- poll-aggregator: Kafka raw-votes -> PostgreSQL -> Kafka poll-updates ----------------------
FROM runtime AS poll-aggregator
COPY --from=builder /out/poll-aggregator /usr/local/bin/poll-aggregator
ENV POLL_AGGREGATOR_PORT=3002
EXPOSE 3002
# Liveness only: /readyz also checks PostgreSQL, Redis and Kafka, which the orchestrator should
# not restart this container for. Compose and Kubernetes probe /readyz themselves where they
# need readiness.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["sh", "-c", "curl -fsS -o /dev/null http://127.0.0.1:${POLL_AGGREGATOR_PORT}/healthz || exit 1"]
ENTRYPOINT ["/usr/local/bin/poll-aggregator"]

# ---- realtime-service: Kafka poll-updates -> Socket.IO -----------------------------------------
FROM runtime AS realtime-service
COPY --from=builder /out/realtime-service /usr/local/bin/realtime-service
ENV REALTIME_SERVICE_PORT=3003
EXPOSE 3003
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["sh", "-c", "curl -fsS -o /dev/null http://127.0.0.1:${REALTIME_SERVICE_PORT}/healthz || exit 1"]
ENTRYPOINT ["/usr/local/bin/realtime-service"]

# ---- voting-api: HTTP -> Kafka raw-votes (the default target) ----------------------------------
FROM runtime AS voting-api
COPY --from=builder /out/voting-api /usr/local/bin/voting-api
# The pages and their assets; voting-api serves them (index.html for the page routes).
COPY --from=web /web/dist /usr/local/share/pollstream/web
ENV VOTING_API_PORT=3001 \
    WEB_DIR=/usr/local/share/pollstream/web
EXPOSE 3001
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["sh", "-c", "curl -fsS -o /dev/null http://127.0.0.1:${VOTING_API_PORT}/healthz || exit 1"]
ENTRYPOINT ["/usr/local/bin/voting-api"]
