# layer-server container image.
#
#   docker build -t layer-server .
#   docker run -p 8080:8080 -e DATABASE_URL=postgres://... layer-server
#
# Two stages: a full Rust toolchain builds a release binary, and a slim Debian
# image (same release, so glibc matches) runs it as an unprivileged user.

# ---------------------------------------------------------------------------
# Builder
# ---------------------------------------------------------------------------
FROM rust:1-bookworm AS builder

WORKDIR /build

# sqlx's compile-time macros must never try to reach a database during an
# image build; if the crate uses query!() it has to ship a prepared .sqlx/.
ENV SQLX_OFFLINE=true \
    CARGO_TERM_COLOR=never

# 1) Dependencies only: build the lock file's crates against dummy sources so
#    this (slow) layer is reused until Cargo.toml / Cargo.lock change.
#    The workspace's load tool (bench/) stays a dummy: the image does not ship it.
COPY Cargo.toml Cargo.lock ./
COPY bench/Cargo.toml ./bench/
RUN mkdir -p src bench/src \
    && echo 'fn main() {}' > src/main.rs \
    && echo 'fn main() {}' > bench/src/main.rs \
    && : > src/lib.rs \
    && cargo build --release --locked --bin layer-server \
    && rm -rf src

# 2) The real crate. migrations/ is embedded at compile time by
#    sqlx::migrate!, and config/ may be include_str!'d, so both must be present
#    before the build.
COPY migrations ./migrations
COPY config ./config
COPY src ./src
# COPY keeps the context's mtimes, which can be older than the dummy build's
# artifacts; touch so cargo is sure to rebuild the crate itself.
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked --bin layer-server \
    && cp target/release/layer-server /usr/local/bin/layer-server

# ---------------------------------------------------------------------------
# Runtime
# ---------------------------------------------------------------------------
FROM debian:bookworm-slim AS runtime

# ca-certificates: outbound TLS (e.g. a managed Postgres with sslmode=require).
# No curl: the health check below uses bash's /dev/tcp.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*

# Fixed uid/gid so volume ownership is predictable across rebuilds and hosts.
RUN groupadd --system --gid 10001 layer \
    && useradd --system --uid 10001 --gid 10001 \
        --home-dir /var/lib/layer-server --no-create-home \
        --shell /usr/sbin/nologin layer \
    && mkdir -p /var/lib/layer-server/data /etc/layer-server \
    && chown -R layer:layer /var/lib/layer-server

COPY --from=builder /usr/local/bin/layer-server /usr/local/bin/layer-server
# Reference copy of the defaults only; configuration is normally done with
# LAYER__* environment variables (e.g. LAYER__HTTP__PUBLIC_URL) and DATABASE_URL.
COPY config/default.toml /etc/layer-server/default.toml

ENV LAYER__HTTP__BIND=0.0.0.0:8080 \
    LAYER__DATA_DIR=/var/lib/layer-server/data

USER layer:layer
WORKDIR /var/lib/layer-server
VOLUME /var/lib/layer-server/data
EXPOSE 8080

# Healthy iff GET /healthz answers 200. Plain bash (bookworm-slim has it, not
# curl): open a TCP connection with /dev/tcp, send a minimal HTTP/1.1 request,
# read the status line. The port follows LAYER__HTTP__BIND if it is overridden.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["bash", "-c", "port=${LAYER__HTTP__BIND##*:}; exec 3<>/dev/tcp/127.0.0.1/${port:-8080} || exit 1; printf 'GET /healthz HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\nConnection: close\\r\\n\\r\\n' >&3 || exit 1; read -r -t 4 status <&3 || exit 1; [[ $status == HTTP/1.?' 200'* ]]"]

ENTRYPOINT ["/usr/local/bin/layer-server"]
CMD ["serve"]
