#!/usr/bin/env bash
# Benchmarks a release build of layer-server on SQLite and on Postgres, each on a fresh database
# and data directory, and writes one JSON report per backend.
#
#   bash bench/run.sh [BACKENDS] [-- layer-bench options]
#   bash bench/run.sh                       # sqlite and postgres, default scenarios (30 s each)
#   bash bench/run.sh postgres -- --duration 60 --scenarios baseline,rest-max
#
# Environment:
#   BENCH_OUT       directory of the reports (default: bench/results)
#   BENCH_PG_ADMIN  Postgres server the fresh database is created on
#                   (default postgres://postgres@127.0.0.1:5432/postgres)
#   BENCH_PORT      port of the server under test (default 18080)
#   BENCH_SERVER    server binary (default target/release/layer-server)
#   BENCH_TOOL      load tool binary (default target/release/layer-bench); with BENCH_SERVER, an
#                   older build's pair, for a before/after in the same run
#   BENCH_NO_BUILD  set: use the binaries as they are
#   BENCH_PG_PARAMS query string added to the fresh database's URL (server and baseline alike),
#                   e.g. 'sslmode=disable' (sqlx prefers TLS when the server offers it)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

backends=()
while [[ $# -gt 0 && $1 != -- ]]; do
    backends+=("$1")
    shift
done
[[ ${1:-} == -- ]] && shift
[[ ${#backends[@]} -eq 0 ]] && backends=(sqlite postgres)

OUT=${BENCH_OUT:-bench/results}
PG_ADMIN=${BENCH_PG_ADMIN:-postgres://postgres@127.0.0.1:5432/postgres}
PORT=${BENCH_PORT:-18080}
URL=http://127.0.0.1:${PORT}
mkdir -p "$OUT"

[[ -n ${BENCH_NO_BUILD:-} ]] || cargo build --release --locked -p layer-server -p layer-bench
SERVER=${BENCH_SERVER:-target/release/layer-server}
BENCH=${BENCH_TOOL:-target/release/layer-bench}

server_pid=
database=
cleanup() {
    if [[ -n $server_pid ]]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
        server_pid=
    fi
    if [[ -n $database ]]; then
        psql -q "$PG_ADMIN" -c "drop database if exists $database with (force)" || true
        database=
    fi
}
trap cleanup EXIT

for backend in "${backends[@]}"; do
    data=$(mktemp -d)
    db_url=
    if [[ $backend == postgres ]]; then
        database=layer_bench_$(date +%s)
        psql -q "$PG_ADMIN" -c "create database $database"
        db_url=${PG_ADMIN%/*}/$database${BENCH_PG_PARAMS:+?$BENCH_PG_PARAMS}
    elif [[ $backend != sqlite ]]; then
        echo "unknown backend $backend (sqlite, postgres)" >&2
        exit 2
    fi
    echo "== $backend: starting $SERVER on $URL (data dir $data)" >&2
    env LAYER__DATA_DIR="$data" LAYER__HTTP__BIND="127.0.0.1:$PORT" \
        LAYER__LOG__FILTER=warn DATABASE_URL="$db_url" \
        "$SERVER" >"$data/server.log" 2>&1 &
    server_pid=$!
    for _ in $(seq 1 300); do
        curl -fsS "$URL/readyz" >/dev/null 2>&1 && break
        kill -0 "$server_pid" 2>/dev/null || { cat "$data/server.log" >&2; exit 1; }
        sleep 0.1
    done
    curl -fsS "$URL/readyz" >/dev/null
    "$BENCH" --url "$URL" --data-dir "$data" \
        --server-pid "$server_pid" --out "$OUT/$backend.json" \
        ${db_url:+--database-url "$db_url"} --label "$backend" "$@" | tee "$OUT/$backend.txt"
    cleanup
    rm -rf "$data"
done
