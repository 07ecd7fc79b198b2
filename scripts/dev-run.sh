#!/usr/bin/env bash
# `make run`: the development stack with the embedded defaults (SQLite, local-memory
# cache) plus the bundled provider simulator. Ctrl-C stops both processes.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-.venv/bin}
HOST=${HOST:-127.0.0.1}
PORT=${PORT:-8000}
SIMULATOR_PORT=${SIMULATOR_PORT:-8081}

export DEBUG=${DEBUG:-1}
export LOG_FORMAT=${LOG_FORMAT:-console}
export EXTERNAL_API_URL=${EXTERNAL_API_URL:-http://127.0.0.1:${SIMULATOR_PORT}/api}

port_busy() {
    "$BIN/python" -c "import socket,sys; socket.create_connection(('127.0.0.1', int(sys.argv[1])), 0.2)" "$1" 2>/dev/null
}
for port in "$SIMULATOR_PORT" "$PORT"; do
    if port_busy "$port"; then
        echo "Port $port is already in use (another make run?). Stop it, or set PORT / SIMULATOR_PORT." >&2
        exit 1
    fi
done

pids=()
cleanup() {
    trap - INT TERM EXIT
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    echo "Stopped."
}
trap cleanup INT TERM EXIT

"$BIN/python" manage.py migrate --no-input
mkdir -p run
# The simulator keeps its state in a file so that it agrees with db.sqlite3 across
# restarts of `make run` (delete both to start over).
"$BIN/python" manage.py run_provider_simulator --host 127.0.0.1 --port "$SIMULATOR_PORT" \
    --state-file run/provider-simulator.json &
pids+=($!)
# The simulator must be up before seed_demo links and funds the demo accounts.
for _ in $(seq 1 50); do
    port_busy "$SIMULATOR_PORT" && break
    kill -0 "${pids[0]}" 2>/dev/null || { echo "The provider simulator did not start." >&2; exit 1; }
    sleep 0.2
done
"$BIN/python" manage.py seed_demo
echo
echo "Server: http://${HOST}:${PORT}/  (admin at /admin/, API under /api/). Ctrl-C stops."
"$BIN/python" manage.py runserver "${HOST}:${PORT}" --noreload &
pids+=($!)
wait -n "${pids[@]}"
