#!/usr/bin/env bash
# Interop suite: the real published Platform API clients against a freshly spawned layer-server.
#
#   bash tests/interop/run.sh
#
# For each backend: build (or reuse) target/debug/layer-server, provision apps and Bearer tokens
# with its CLI, start `layer-server serve` on 127.0.0.1 (a free port picked by the OS), then run
#   1. layer_api.js      every method of npm layer-api 2.3.3 (API versions 1.0 and 3.0)
#   2. layer-api's own bundled integration specs, unmodified (mocha), on a fresh app
#   3. layer_client.py   every method of PyPI LayerClient 0.1.10
#   4. websdk.js         the Client API through npm layer-websdk 3.4.18 (API 2.0) in Node
#   5. web_xdk.js        the Client API through npm @layerhq/web-xdk 4.0.6 (API 3.0) in Node, against
#                        a second server on the same database whose public URL is
#                        https://api.layer.com (X only accepts https object URLs; README.md)
# Each SDK suite runs alice's SDK in the suite's process and bob's SDK in a forked peer, both on
# one server. On Postgres the two SDK suites then run again on two nodes: two server processes on
# different ports sharing the database (for X two more, both with the https public URL), alice's
# client on node A and bob's (the peer) on node B, so every real-time check crosses the nodes
# through LISTEN/NOTIFY. The suites print a LATENCY line (median/p99 of message.send() -> the
# other user's messages:add, 200 messages one at a time); the summary repeats them.
# stop the servers (SIGTERM), and print a summary. Exits non-zero if any suite failed.
# The SDK suites act as the apps' identity provider: an RSA key pair made in Node
# (`node sdk_common.js keygen`) is registered for their apps with `layer-server key add` before
# the server starts, and they sign the identity tokens themselves.
# known_failures.txt lists the checks that may fail for now (reported as XFAIL).
#
# Environment:
#   LAYER_INTEROP_BACKEND    sqlite | postgres | both. Default: both when LAYER_TEST_POSTGRES_URL
#                            is set (as it is under .ci/test), otherwise sqlite.
#   LAYER_TEST_POSTGRES_URL  server on which the postgres run creates (and then drops) its
#                            layer_test_interop_* database
#                            (default postgres://postgres@127.0.0.1:5432/postgres)
#   LAYER_SERVER_BIN         use this binary instead of building target/debug/layer-server
#   LAYER_INTEROP_DEBUG=1    print every request and response the clients exchange
#   LAYER_INTEROP_KEEP=1     keep the temp dirs (server logs, suite output) for inspection
#   LAYER_INTEROP_SUITES     run only these suites (space/comma separated; default: all):
#                            layer-api layer-api-specs LayerClient websdk web-xdk
#   LAYER_INTEROP_NODES      1 | 2 | both: node counts for the SDK suites on Postgres (default both;
#                            SQLite always runs one node)
#   LAYER_INTEROP_LATENCY_N  messages in the latency measurement (default 200)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
cd "$HERE"

log() { echo "[interop $(date -u +%H:%M:%S)] $*"; }
die() {
    echo "[interop] error: $*" >&2
    exit 1
}

for tool in node npm python3 curl; do
    command -v "$tool" >/dev/null || die "$tool is required"
done

if [[ -n ${LAYER_INTEROP_BACKEND:-} ]]; then
    BACKENDS=$LAYER_INTEROP_BACKEND
elif [[ -n ${LAYER_TEST_POSTGRES_URL:-} ]]; then
    BACKENDS=both
else
    BACKENDS=sqlite
fi
case $BACKENDS in
sqlite | postgres) ;;
both) BACKENDS="sqlite postgres" ;;
*) die "LAYER_INTEROP_BACKEND must be sqlite, postgres or both, not '$BACKENDS'" ;;
esac
PG_ADMIN_URL=${LAYER_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}
case ${LAYER_INTEROP_NODES:-both} in
1) PG_NODES=1 ;;
2) PG_NODES=2 ;;
both) PG_NODES="1 2" ;;
*) die "LAYER_INTEROP_NODES must be 1, 2 or both, not '$LAYER_INTEROP_NODES'" ;;
esac

ALL_SUITES="layer-api layer-api-specs LayerClient websdk web-xdk"
SUITES=" $(tr ',' ' ' <<<"${LAYER_INTEROP_SUITES:-$ALL_SUITES}") "
for suite in $SUITES; do
    [[ " $ALL_SUITES " == *" $suite "* ]] || die "unknown suite '$suite' in LAYER_INTEROP_SUITES (known: $ALL_SUITES)"
done
want() { [[ $SUITES == *" $1 "* ]]; }

# --- the server binary ---------------------------------------------------------------------------
if [[ -n ${LAYER_SERVER_BIN:-} ]]; then
    BIN=$LAYER_SERVER_BIN
else
    log "cargo build --locked --workspace --bin layer-server"
    (cd "$ROOT" && cargo build --locked --workspace --bin layer-server)
    BIN=$ROOT/target/debug/layer-server
fi
[[ -x $BIN ]] || die "no server binary at $BIN"

# --- client installs, cached: re-run only when the pinned versions change -------------------------
stamp_of() { cat "$@" | sha256sum | cut -d' ' -f1; }

NPM_STAMP="$(stamp_of package.json package-lock.json) node-$(node --version)"
if [[ $(cat node_modules/.interop-stamp 2>/dev/null) != "$NPM_STAMP" ]]; then
    log "npm ci (node_modules missing or stale)"
    npm ci --prefer-offline --no-audit --no-fund --loglevel=error
    echo "$NPM_STAMP" >node_modules/.interop-stamp
else
    log "node_modules up to date"
fi

PY_STAMP="$(stamp_of requirements.txt) $(python3 --version 2>&1)"
if ! want LayerClient; then
    : # not needed
elif [[ $(cat .venv/.interop-stamp 2>/dev/null) != "$PY_STAMP" ]]; then
    log "pip install -r requirements.txt into .venv (missing or stale)"
    python3 -m venv --clear .venv
    .venv/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
    echo "$PY_STAMP" >.venv/.interop-stamp
else
    log ".venv up to date"
fi

# --- per-run state and cleanup --------------------------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/layer-interop.XXXXXX")
SERVER_PID=
XDK_SERVER_PID=
B_SERVER_PID=
XDK_B_SERVER_PID=
PG_DB=

psql_admin() { psql -X -q -w -v ON_ERROR_STOP=1 "$PG_ADMIN_URL" "$@"; }

# stop_server [VAR]: stops the server whose pid is in $VAR (default SERVER_PID): SIGTERM, then
# wait (20 s deadline, then SIGKILL); returns the server's exit status.
stop_server() {
    local var=${1:-SERVER_PID}
    [[ -n ${!var} ]] || return 0
    local pid=${!var} rc=0 deadline=$((SECONDS + 20))
    printf -v "$var" '%s' ''
    kill -TERM "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do
        if ((SECONDS >= deadline)); then
            log "the server did not stop within 20 s of SIGTERM; killing it"
            kill -KILL "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.05 # poll interval
    done
    wait "$pid" || rc=$?
    return "$rc"
}

drop_pg_db() {
    [[ -n $PG_DB ]] || return 0
    local db=$PG_DB
    PG_DB=
    psql_admin -c "drop database if exists \"$db\" with (force)" >/dev/null ||
        log "warning: could not drop database $db"
}

# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
    stop_server XDK_B_SERVER_PID || true
    stop_server B_SERVER_PID || true
    stop_server XDK_SERVER_PID || true
    stop_server || true
    drop_pg_db
    if [[ ${LAYER_INTEROP_KEEP:-} == 1 ]]; then
        log "kept $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT

# cli DIR DBURL ARGS...: the server's CLI on one backend.
cli() {
    local dir=$1 db=$2
    shift 2
    env DATABASE_URL="$db" LAYER__DATA_DIR="$dir" LAYER__BOOTSTRAP__DEV_APP=false \
        "$BIN" "$@"
}

# provision DIR DBURL NAME: creates an app with a fresh UUID and a token for it; sets APP, TOKEN.
provision() {
    local dir=$1 db=$2 name=$3
    APP=$(python3 -c 'import uuid; print(uuid.uuid4())')
    if ! cli "$dir" "$db" app create --id "$APP" --name "interop $name" >>"$dir/cli.log" 2>&1 ||
        ! TOKEN=$(cli "$dir" "$db" token create --app "$APP" --label "interop $name" 2>>"$dir/cli.log") ||
        [[ -z $TOKEN ]]; then
        cat "$dir/cli.log" >&2
        die "provisioning app $name with the CLI failed (output above)"
    fi
}

# register_key DIR DBURL APP: registers DIR/idp-public.pem for the app's identity tokens; sets
# IDP_ENV to the suite's LAYER_IDP_* settings (private key file, kid and iss as the CLI printed them).
register_key() {
    local dir=$1 db=$2 app=$3 out kid iss
    if ! out=$(cli "$dir" "$db" key add --app "$app" --public-key "$dir/idp-public.pem" 2>>"$dir/cli.log"); then
        cat "$dir/cli.log" >&2
        die "registering the identity provider key for app $app failed (output above)"
    fi
    kid=$(awk -F'\t' '$1 == "key_id" { print $2 }' <<<"$out")
    iss=$(awk -F'\t' '$1 == "provider_id" { print $2 }' <<<"$out")
    [[ -n $kid && -n $iss ]] || die "unexpected output of 'key add': $out"
    IDP_ENV="LAYER_IDP_PRIVATE_KEY=$dir/idp-private.pem LAYER_IDP_KEY_ID=$kid LAYER_IDP_PROVIDER_ID=$iss"
}

# start_server DIR DBURL [NAME [PUBLIC_URL [PIDVAR]]]: starts `serve` on 127.0.0.1:0 and waits
# until /readyz answers 200; sets the pid variable and BASE_URL. The bound address comes from the
# "listening" log line. NAME names the log files (default server); PUBLIC_URL is the base of the
# URLs the server renders (default: http://<bound address>); PIDVAR is the variable that gets the
# pid (default SERVER_PID for NAME server, XDK_SERVER_PID for any other name).
start_server() {
    local dir=$1 db=$2 name=${3:-server} public=${4:-} addr='' deadline=$((SECONDS + 60))
    local log=$dir/$name.log pidvar=${5:-SERVER_PID} pid
    [[ -n ${5:-} || $name == server ]] || pidvar=XDK_SERVER_PID
    # Typing indicators expire server-side well before the SDKs' own 6 s (sdk_flows.js checks it).
    env DATABASE_URL="$db" LAYER__DATA_DIR="$dir" LAYER__HTTP__BIND=127.0.0.1:0 \
        LAYER__BOOTSTRAP__DEV_APP=false LAYER__LOG__FORMAT=json ${public:+LAYER__HTTP__PUBLIC_URL=$public} \
        LAYER__WEBSOCKET__TYPING_PAUSED_AFTER_MS=1000 LAYER__WEBSOCKET__TYPING_FINISHED_AFTER_MS=2500 \
        RUST_LOG="${RUST_LOG:-info},layer_server::server=info" "$BIN" serve >"$dir/$name.stdout" 2>"$log" &
    pid=$!
    printf -v "$pidvar" '%s' "$pid"
    until [[ -n $addr ]] && curl -fsS -o /dev/null "http://$addr/readyz" 2>/dev/null; do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 20 "$log" >&2
            printf -v "$pidvar" '%s' ''
            die "the server exited during start-up (log above)"
        fi
        if ((SECONDS >= deadline)); then
            tail -n 20 "$log" >&2
            die "the server was not ready within 60 s (log above)"
        fi
        [[ -n $addr ]] || addr=$(grep -so '"local_addr":"[^"]*"' "$log" | head -n 1 | cut -d'"' -f4 || true)
        sleep 0.05 # poll interval
    done
    BASE_URL=http://$addr
}

# run_suite LABEL OUTFILE APP TOKEN CMD...: runs one suite with its output shown and kept, and
# appends "LABEL|passed|failed|xfail|xpass|total" (from its RESULT line) to $RESULTS.
run_suite() {
    local label=$1 out=$2 app=$3 token=$4 rc=0 line
    shift 4
    echo
    log "--- $label"
    env LAYER_INTEROP_URL="$BASE_URL" LAYER_APP_ID="$app" LAYER_TOKEN="$token" LAYER_INTEROP_BACKEND_NAME="$CURRENT_BACKEND" \
        NO_PROXY="127.0.0.1,localhost${NO_PROXY:+,$NO_PROXY}" no_proxy="127.0.0.1,localhost${no_proxy:+,$no_proxy}" \
        "$@" 2>&1 | tee "$out" || rc=$?
    grep '^LATENCY ' "$out" >>"$LATENCY" || true
    line=$(grep '^RESULT ' "$out" | tail -n 1 || true)
    if [[ -z $line ]]; then
        # No RESULT line: the suite crashed before it could count. Count that as one failure.
        echo "$label|0|1|0|0|1|crashed (exit $rc, no RESULT line)" >>"$RESULTS"
        return
    fi
    local passed failed xfail xpass total
    passed=$(sed -E 's/.* passed=([0-9]+).*/\1/' <<<"$line")
    failed=$(sed -E 's/.* failed=([0-9]+).*/\1/' <<<"$line")
    xfail=$(sed -E 's/.* xfail=([0-9]+).*/\1/' <<<"$line")
    xpass=$(sed -E 's/.* xpass=([0-9]+).*/\1/' <<<"$line")
    total=$(sed -E 's/.* total=([0-9]+).*/\1/' <<<"$line")
    echo "$label|$passed|$failed|$xfail|$xpass|$total|" >>"$RESULTS"
}

# run_backend NAME: one complete round on a fresh database.
run_backend() {
    local backend=$1 dir=$WORK/$1 db
    CURRENT_BACKEND=$backend
    mkdir -p "$dir"
    if [[ $backend == postgres ]]; then
        PG_DB=layer_test_interop_$(python3 -c 'import uuid; print(uuid.uuid4().hex)')
        psql_admin -c "create database \"$PG_DB\"" >/dev/null ||
            die "cannot create a database on $PG_ADMIN_URL (set LAYER_TEST_POSTGRES_URL)"
        db=$(python3 -c 'import sys, urllib.parse as u
p = u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/" + sys.argv[2])))' "$PG_ADMIN_URL" "$PG_DB")
    else
        db=sqlite://$dir/layer.db
    fi
    echo
    log "=== backend $backend"
    # One app per suite: the bundled messages spec only passes on an app it has never run on
    # (platform-clients.md §7), and separate apps keep the suites independent.
    local api_app api_token specs_app specs_token py_app py_token
    local w_app w_token w_idp x_app x_token x_idp
    if want layer-api; then
        provision "$dir" "$db" layer-api
        api_app=$APP api_token=$TOKEN
    fi
    if want layer-api-specs; then
        provision "$dir" "$db" layer-api-specs
        specs_app=$APP specs_token=$TOKEN
    fi
    if want LayerClient; then
        provision "$dir" "$db" LayerClient
        py_app=$APP py_token=$TOKEN
    fi
    if want websdk || want web-xdk; then
        node sdk_common.js keygen "$dir" || die "generating the identity provider's key pair failed"
    fi
    if want websdk; then
        provision "$dir" "$db" websdk
        w_app=$APP w_token=$TOKEN
        register_key "$dir" "$db" "$w_app"
        w_idp=$IDP_ENV
    fi
    if want web-xdk; then
        provision "$dir" "$db" web-xdk
        x_app=$APP x_token=$TOKEN
        register_key "$dir" "$db" "$x_app"
        x_idp=$IDP_ENV
    fi
    start_server "$dir" "$db"
    log "server ready at $BASE_URL (pid $SERVER_PID, log $dir/server.log)"

    if want layer-api; then
        run_suite "[$backend] layer-api methods" "$dir/layer_api.out" "$api_app" "$api_token" \
            node layer_api.js
    fi
    if want layer-api-specs; then
        run_suite "[$backend] layer-api bundled integration specs" "$dir/specs.out" "$specs_app" "$specs_token" \
            node_modules/.bin/mocha --require "$HERE/mocha_setup.js" --reporter "$HERE/mocha_reporter.js" \
            --timeout 10000 node_modules/layer-api/test/integration
    fi
    if want LayerClient; then
        run_suite "[$backend] LayerClient" "$dir/layer_client.out" "$py_app" "$py_token" \
            .venv/bin/python layer_client.py
    fi
    local nodes_list=1 nodes main_url=$BASE_URL b_url='' x_url='' xb_url='' label xrc
    [[ $backend != postgres ]] || nodes_list=$PG_NODES
    for nodes in $nodes_list; do
        label="[$backend] "
        ((nodes == 1)) || label="[$backend] 2 nodes: "
        if ((nodes == 2)) && want websdk; then
            # Node B: a second server on the same database; bob's SDK (the forked peer) uses it.
            start_server "$dir" "$db" server-b '' B_SERVER_PID
            b_url=$BASE_URL
            BASE_URL=$main_url
            log "node B ready at $b_url (pid $B_SERVER_PID); alice on node A $main_url"
        fi
        if want websdk; then
            # shellcheck disable=SC2086 # w_idp is a list of VAR=value words without spaces
            run_suite "${label}websdk" "$dir/websdk-$nodes.out" "$w_app" "$w_token" \
                env $w_idp ${b_url:+LAYER_PEER_URL=$b_url} node websdk.js
        fi
        if want web-xdk; then
            # X needs https:// object URLs: a second server on the same database renders
            # https://api.layer.com, the URL X is given; its requests are redirected to the server.
            # On two nodes, node B renders the same public URL and bob's requests go there.
            if [[ -z $x_url ]]; then
                start_server "$dir" "$db" server-https https://api.layer.com
                x_url=$BASE_URL
                log "server with public URL https://api.layer.com ready at $x_url (pid $XDK_SERVER_PID)"
            fi
            if ((nodes == 2)); then
                start_server "$dir" "$db" server-https-b https://api.layer.com XDK_B_SERVER_PID
                xb_url=$BASE_URL
                log "node B with public URL https://api.layer.com ready at $xb_url (pid $XDK_B_SERVER_PID)"
            fi
            BASE_URL=$x_url
            # shellcheck disable=SC2086
            run_suite "${label}web-xdk" "$dir/web_xdk-$nodes.out" "$x_app" "$x_token" \
                env $x_idp LAYER_SDK_URL=https://api.layer.com ${xb_url:+LAYER_PEER_URL=$xb_url} node web_xdk.js
            BASE_URL=$main_url
        fi
    done
    for pidvar in XDK_B_SERVER_PID XDK_SERVER_PID B_SERVER_PID; do
        xrc=0
        [[ -n ${!pidvar} ]] || continue
        stop_server "$pidvar" || xrc=$?
        log "stopped the server of $pidvar (exit $xrc)"
        if ((xrc != 0)); then
            echo "$backend server ($pidvar)|0|1|0|0|1|did not exit cleanly on SIGTERM (exit $xrc)" >>"$RESULTS"
        fi
    done

    local rc=0
    stop_server || rc=$?
    if ((rc != 0)); then
        echo "$backend server|0|1|0|0|1|did not exit cleanly on SIGTERM (exit $rc)" >>"$RESULTS"
    fi
    drop_pg_db
}

RESULTS=$WORK/results
LATENCY=$WORK/latency
: >"$RESULTS"
: >"$LATENCY"
for backend in $BACKENDS; do
    run_backend "$backend"
done

# --- summary --------------------------------------------------------------------------------------
echo
log "=== summary"
all_passed=0 all_failed=0 all_xfail=0 all_xpass=0 failed_any=0
for backend in $BACKENDS; do
    summary=""
    while IFS='|' read -r label passed failed xfail xpass total note; do
        [[ $label == "[$backend]"* || $label == "$backend "* ]] || continue
        all_passed=$((all_passed + passed)) all_failed=$((all_failed + failed))
        all_xfail=$((all_xfail + xfail)) all_xpass=$((all_xpass + xpass))
        ((failed + xpass == 0)) || failed_any=1
        extra=""
        ((failed == 0)) || extra+=", $failed failed"
        ((xfail == 0)) || extra+=", $xfail xfail"
        ((xpass == 0)) || extra+=", $xpass XPASS"
        [[ -z $note ]] || extra+=", $note"
        part="${label#"[$backend] "}: $passed/$total passed${extra:+ (${extra#, })}"
        summary+="${summary:+; }$part"
    done <"$RESULTS"
    echo "[$backend] $summary"
done
echo "(skipped = known failures from known_failures.txt, reported as XFAIL)"
if [[ -s $LATENCY ]]; then
    echo "send-to-receive latency (alice's message.send() -> bob's messages:add, one message at a time):"
    sed 's/^LATENCY /  /' "$LATENCY"
fi
echo "interop: $all_passed passed, $((all_failed + all_xpass)) failed, $all_xfail skipped"
exit "$failed_any"
