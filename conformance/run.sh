#!/usr/bin/env bash
# Run the OCI Distribution Spec conformance suite (v1.1, a compiled Go test binary)
# against a throw-away Dockyard server on loopback.
#
#   CONFORMANCE_BIN=/path/to/conformance.test conformance/run.sh [extra ginkgo flags...]
#
# Extra arguments go to the test binary, e.g. -ginkgo.focus='Blob Upload Chunked'.
# Results land in conformance/results/: report.html and junit.xml (both hold the HTTP
# request/response log of every spec), output.log (the console output) and
# dockyard.log (the server's log). The exit code is the suite's.
#
# Optional environment:
#   OCI_DEBUG=1                also print every HTTP exchange on the console
#   OCI_AUTOMATIC_CROSSMOUNT=0|1   automatic cross-mount expected or not (default 0: Dockyard has none)
#   OCI_DELETE_MANIFEST_BEFORE_BLOBS, OCI_SKIP_EMPTY_LAYER_PUSH_TEST: passed through
#   KEEP_DATA=1                keep the server's data directory (path is printed)
#   DOCKYARD_STARTUP_TIMEOUT   seconds to wait for /v2/ to answer (default 60)
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
RESULTS="$HERE/results"
DOCKYARD="${DOCKYARD:-$ROOT/.venv/bin/dockyard}"

die() { echo "run.sh: $*" >&2; exit 2; }

[ -n "${CONFORMANCE_BIN:-}" ] || die "set CONFORMANCE_BIN to the built conformance test binary (see conformance/README.md)"
CONFORMANCE_BIN="$(cd "$(dirname "$CONFORMANCE_BIN")" && pwd)/$(basename "$CONFORMANCE_BIN")" \
    || die "cannot resolve CONFORMANCE_BIN"
[ -x "$CONFORMANCE_BIN" ] || die "$CONFORMANCE_BIN is not an executable file"
[ -x "$DOCKYARD" ] || die "$DOCKYARD not found: cd $ROOT && python3 -m venv .venv && .venv/bin/pip install -e '.[test]'"
command -v curl >/dev/null || die "curl is needed (apt-get install curl)"
command -v python3 >/dev/null || die "python3 is needed"

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

DATA_DIR="$(mktemp -d /tmp/dockyard-conformance.XXXXXX)"
ADMIN_PASSWORD="$(python3 -c 'import secrets; print(secrets.token_urlsafe(18))')"
SERVER_PID=""

cleanup() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null
        for _ in $(seq 1 50); do
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.2
        done
        if kill -0 "$SERVER_PID" 2>/dev/null; then
            echo "run.sh: server $SERVER_PID ignored SIGTERM for 10s; sending SIGKILL" >&2
            kill -KILL "$SERVER_PID" 2>/dev/null
        fi
        wait "$SERVER_PID" 2>/dev/null
    fi
    if [ "${KEEP_DATA:-0}" = 1 ]; then
        echo "run.sh: data directory kept at $DATA_DIR"
    else
        rm -rf "$DATA_DIR"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

rm -rf "$RESULTS"
mkdir -p "$RESULTS"

# Start Dockyard; the port is chosen now, so retry if another process grabbed it first.
PORT=""
for attempt in 1 2 3; do
    PORT="$(free_port)"
    (
        cd "$ROOT" &&
        DOCKYARD_ADMIN_PASSWORD="$ADMIN_PASSWORD" exec "$DOCKYARD" serve \
            --data-dir "$DATA_DIR" --listen "127.0.0.1:$PORT"
    ) >>"$RESULTS/dockyard.log" 2>&1 &
    SERVER_PID=$!
    echo "run.sh: started dockyard (pid $SERVER_PID) on 127.0.0.1:$PORT, data dir $DATA_DIR"

    ready=""
    deadline=$(( $(date +%s) + ${DOCKYARD_STARTUP_TIMEOUT:-60} ))
    while [ "$(date +%s)" -lt "$deadline" ]; do
        kill -0 "$SERVER_PID" 2>/dev/null || break
        code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$PORT/v2/" || true)"
        if [ "$code" = 401 ] || [ "$code" = 200 ]; then ready=1; break; fi
        sleep 0.3
    done
    [ -n "$ready" ] && break
    if kill -0 "$SERVER_PID" 2>/dev/null; then
        tail -n 30 "$RESULTS/dockyard.log" >&2
        die "dockyard did not answer GET /v2/ with 401/200 within ${DOCKYARD_STARTUP_TIMEOUT:-60}s"
    fi
    wait "$SERVER_PID" 2>/dev/null
    SERVER_PID=""
    echo "run.sh: dockyard exited during start-up (attempt $attempt); log:" >&2
    tail -n 30 "$RESULTS/dockyard.log" >&2
    rm -rf "$DATA_DIR" && mkdir -p "$DATA_DIR"
done
[ -n "$SERVER_PID" ] || die "dockyard could not be started"

# Credentials must actually work before we blame the registry for 100 failures.
code="$(curl -s -o /dev/null -w '%{http_code}' -u "admin:$ADMIN_PASSWORD" "http://127.0.0.1:$PORT/v2/")"
[ "$code" = 200 ] || echo "run.sh: warning: GET /v2/ with admin Basic credentials answered $code, not 200" >&2

export OCI_ROOT_URL="http://127.0.0.1:$PORT"
export OCI_NAMESPACE="${OCI_NAMESPACE:-library/conformance}"
export OCI_CROSSMOUNT_NAMESPACE="${OCI_CROSSMOUNT_NAMESPACE:-library/crossmount}"
export OCI_USERNAME=admin
export OCI_PASSWORD="$ADMIN_PASSWORD"
export OCI_TEST_PULL=1
export OCI_TEST_PUSH=1
export OCI_TEST_CONTENT_DISCOVERY=1
export OCI_TEST_CONTENT_MANAGEMENT=1
export OCI_HIDE_SKIPPED_WORKFLOWS="${OCI_HIDE_SKIPPED_WORKFLOWS:-0}"
export OCI_DEBUG="${OCI_DEBUG:-0}"
# Dockyard never mounts without `from` (no automatic content discovery); saying
# so runs the spec that checks it answers 202 there.
export OCI_AUTOMATIC_CROSSMOUNT="${OCI_AUTOMATIC_CROSSMOUNT:-0}"
export OCI_REPORT_DIR="$RESULTS"
# The v1.1 suite has no switch for sha512 digests (only sha256 content is pushed).

(cd "$RESULTS" && "$CONFORMANCE_BIN" -ginkgo.no-color "$@") 2>&1 | tee "$RESULTS/output.log"
rc=${PIPESTATUS[0]}

echo "run.sh: suite exit code $rc; results in $RESULTS"
exit "$rc"
