#!/usr/bin/env bash
# `make fuzz`: Schemathesis against the live server, built the way production runs
# it (gunicorn, DEBUG=0), with the bundled provider simulator behind it.
#
# 1. a fresh database: <name of DATABASE_URL's database>_fuzz, dropped and created
#    again (PostgreSQL), or SQLite in a temporary directory when DATABASE_URL is
#    unset; REDIS_URL is used when set, under a key prefix of this run's own;
# 2. the simulator and gunicorn on 127.0.0.1 (FUZZ_SIMULATOR_PORT, FUZZ_PORT);
# 3. migrate, seed_demo, a login as demo1 and a call with the admin token;
# 4. schemathesis run (scripts/schemathesis.toml) on /api/schema?format=json:
#    every phase, FUZZ_MAX_EXAMPLES cases per operation, the whole run cut at
#    FUZZ_TIMEOUT seconds. Fails on any 5xx, a response that breaks the schema, an
#    undocumented status code, content type or header.
#
# Output: FUZZ_OUTPUT (default run/fuzz/): schemathesis.log, the JUnit and NDJSON
# reports, server.log and simulator.log. Every process started here is stopped on
# exit, also on failure or Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-.venv/bin}
FUZZ_PORT=${FUZZ_PORT:-18300}
FUZZ_SIMULATOR_PORT=${FUZZ_SIMULATOR_PORT:-18301}
FUZZ_MAX_EXAMPLES=${FUZZ_MAX_EXAMPLES:-100}
FUZZ_WORKERS=${FUZZ_WORKERS:-2}
FUZZ_TIMEOUT=${FUZZ_TIMEOUT:-200}
# A fixed seed by default: the same commit gets the same verdict in CI.
# FUZZ_SEED=random explores new cases (the seed used is printed).
FUZZ_SEED=${FUZZ_SEED:-20261128}
FUZZ_OUTPUT=${FUZZ_OUTPUT:-run/fuzz}
# Each of seven provider faults (5xx before and after acting, a refusal, two kinds
# of 429, bad JSON, a dropped connection) on each provider endpoint with this
# probability, after seeding; 0: none.
FUZZ_FAULT_PROBABILITY=${FUZZ_FAULT_PROBABILITY:-0.03}

if [ "$FUZZ_SEED" = random ]; then
    FUZZ_SEED=$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')
fi

py() { "$BIN/python" "$@"; }
port_busy() {
    py -c "import socket,sys; socket.create_connection(('127.0.0.1', int(sys.argv[1])), 0.2)" "$1" 2>/dev/null
}
wait_for_port() {  # port pid name
    for _ in $(seq 1 100); do
        port_busy "$1" && return 0
        kill -0 "$2" 2>/dev/null || { echo "fuzz: the $3 did not start (see $FUZZ_OUTPUT)" >&2; return 1; }
        sleep 0.2
    done
    echo "fuzz: the $3 did not open port $1 in 20 s" >&2
    return 1
}
for port in "$FUZZ_PORT" "$FUZZ_SIMULATOR_PORT"; do
    if port_busy "$port"; then
        echo "fuzz: port $port is in use; set FUZZ_PORT / FUZZ_SIMULATOR_PORT" >&2
        exit 1
    fi
done

rm -rf "$FUZZ_OUTPUT"
mkdir -p "$FUZZ_OUTPUT"
tmp=$(mktemp -d)
pids=()
cleanup() {
    trap - INT TERM EXIT
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for _ in $(seq 1 50); do
        alive=0
        for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [ "$alive" -eq 0 ] && break
        sleep 0.2
    done
    for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup INT TERM EXIT

secret() { py -c "import secrets; print(secrets.token_urlsafe(48))"; }

# Production-like settings with throw-away secrets: DEBUG=0, no rate limits (the
# fuzzer sends thousands of requests from one address), warnings only in the logs.
DJANGO_SECRET_KEY=$(secret)
JWT_SIGNING_KEY=$(secret)
FIELD_ENCRYPTION_KEYS=$(py -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())")
ADMIN_TOKEN=$(secret)
export DEBUG=0 DJANGO_SECRET_KEY JWT_SIGNING_KEY FIELD_ENCRYPTION_KEYS ADMIN_TOKEN
export ALLOWED_HOSTS=127.0.0.1,localhost
export SECURE_SSL_REDIRECT=0
export STATIC_MANIFEST=0
export RATE_LIMIT_GLOBAL=0 RATE_LIMIT_AUTH=0 RATE_LIMIT_BETS=0
export LOG_LEVEL=WARNING LOG_FORMAT=json GUNICORN_LOG_LEVEL=warning
export EXTERNAL_API_URL="http://127.0.0.1:${FUZZ_SIMULATOR_PORT}/api"
export CACHE_KEY_PREFIX="fuzz-$$"
DATABASE_URL=$(py scripts/fuzz_tools.py database "$tmp")
export DATABASE_URL

started=$(date +%s)
py manage.py migrate --no-input -v 0
"$BIN/python" manage.py run_provider_simulator --host 127.0.0.1 --port "$FUZZ_SIMULATOR_PORT" \
    --seed "$FUZZ_SEED" >"$FUZZ_OUTPUT/simulator.log" 2>&1 &
pids+=($!)
wait_for_port "$FUZZ_SIMULATOR_PORT" "${pids[-1]}" "provider simulator"
py manage.py seed_demo --force >"$FUZZ_OUTPUT/seed.log"

GUNICORN_BIND="127.0.0.1:${FUZZ_PORT}" WEB_CONCURRENCY=${WEB_CONCURRENCY:-2} \
    GUNICORN_THREADS=${GUNICORN_THREADS:-4} \
    "$BIN/gunicorn" -c gunicorn.conf.py betting_site.wsgi >"$FUZZ_OUTPUT/server.log" 2>&1 &
pids+=($!)
wait_for_port "$FUZZ_PORT" "${pids[-1]}" "server"

base="http://127.0.0.1:${FUZZ_PORT}"
# The credentials work before the fuzzer relies on them: schemathesis logs in as
# demo1 itself (and again after a 401: a fuzzed logout may revoke its session),
# and sends ADMIN_TOKEN to /api/internal/*.
fail() { echo "fuzz: $1 (see $FUZZ_OUTPUT/server.log)" >&2; exit 1; }
login=$(curl -sf -X POST "$base/api/auth/login" -H 'Content-Type: application/json' \
    -d '{"username":"demo1","password":"demo-password-1"}') || fail "login as demo1 failed"
token=$(py -c 'import json,sys; print(json.load(sys.stdin)["token"])' <<<"$login")
curl -sf -o /dev/null "$base/api/auth/me" -H "Authorization: Bearer $token" ||
    fail "demo1's token was refused"
curl -sf -o /dev/null "$base/api/internal/bet?user_id=1001" \
    -H "Authorization: Bearer $ADMIN_TOKEN" || fail "the admin token was refused"
# From now on the provider fails now and then.
if [ "$FUZZ_FAULT_PROBABILITY" != 0 ]; then
    py scripts/fuzz_tools.py faults "http://127.0.0.1:${FUZZ_SIMULATOR_PORT}" "$FUZZ_FAULT_PROBABILITY"
fi

export FUZZ_ADMIN_TOKEN=$ADMIN_TOKEN
# Hypothesis' own files (unicode tables, constants) stay out of the work tree.
export HYPOTHESIS_STORAGE_DIRECTORY="$tmp/hypothesis"
echo "fuzz: schemathesis on $base (seed $FUZZ_SEED, $FUZZ_MAX_EXAMPLES examples per operation, at most ${FUZZ_TIMEOUT} s)"
status=0
timeout --signal=INT --kill-after=15 "$FUZZ_TIMEOUT" \
    "$BIN/schemathesis" --no-color --config-file scripts/schemathesis.toml run \
    "$base/api/schema?format=json" --url "$base" \
    --max-examples "$FUZZ_MAX_EXAMPLES" --workers "$FUZZ_WORKERS" --seed "$FUZZ_SEED" \
    --report junit,ndjson --report-dir "$FUZZ_OUTPUT" \
    2>&1 | tee "$FUZZ_OUTPUT/schemathesis.log" || status=$?
if [ "$status" -eq 124 ] || [ "$status" -eq 130 ] || [ "$status" -eq 137 ]; then
    echo "fuzz: schemathesis did not finish within ${FUZZ_TIMEOUT} s" >&2
fi
# The ledger after thousands of fuzzed requests and provider faults: with the
# provider healthy again, settle_pending resolves every open bet and
# check_ledger finds every invariant of the contract (section 6) intact.
py scripts/fuzz_tools.py faults "http://127.0.0.1:${FUZZ_SIMULATOR_PORT}" 0 >/dev/null
ledger=0
{
    py manage.py settle_pending && py manage.py check_ledger && py manage.py reconcile
} >"$FUZZ_OUTPUT/ledger.log" 2>&1 || ledger=$?
if [ "$ledger" -ne 0 ]; then
    echo "fuzz: the ledger check after the run failed:" >&2
    tail -20 "$FUZZ_OUTPUT/ledger.log" >&2
    [ "$status" -ne 0 ] || status=$ledger
else
    echo "fuzz: settle_pending, check_ledger and reconcile clean afterwards ($FUZZ_OUTPUT/ledger.log)"
fi
echo "fuzz: $(($(date +%s) - started)) s in all; output in $FUZZ_OUTPUT/"
py scripts/fuzz_tools.py summary "$FUZZ_OUTPUT"
exit "$status"
