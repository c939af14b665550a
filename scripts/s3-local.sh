#!/usr/bin/env bash
# A local S3 server for the object-storage tests: moto (PyPI `moto[server]`), a real S3 API
# implementation, listening on 127.0.0.1 only.
#
#   scripts/s3-local.sh start    create the venv if missing ($KERNELCI_S3_VENV, default
#                                $KERNELCI_CI_CACHE/moto-venv or /tmp/kernelci-ci/moto-venv),
#                                start moto_server on $KERNELCI_S3_PORT (5010) unless something
#                                there already answers like moto, write /tmp/kernelci-s3/env
#   scripts/s3-local.sh stop     stop that server (only the one started here, by its pid file)
#   scripts/s3-local.sh status   say whether it answers (exit 1 if not)
#   scripts/s3-local.sh env      print the env file (`. /tmp/kernelci-s3/env`)
#
# Idempotent: `start` on a running server only checks it and rewrites the env file. The
# credentials in the env file are dummies: moto checks none until a test turns its auth on
# (POST /moto-api/reset-auth), and the tests create their own buckets.
set -euo pipefail

W="${KERNELCI_S3_DIR:-/tmp/kernelci-s3}"
PORT="${KERNELCI_S3_PORT:-5010}"
URL="http://127.0.0.1:$PORT"
VENV="${KERNELCI_S3_VENV:-${KERNELCI_CI_CACHE:-/tmp/kernelci-ci}/moto-venv}"

answers() {
    # moto's own API: a plain S3 server or another service would not answer this.
    curl -sf --max-time 2 "$URL/moto-api/data.json" >/dev/null 2>&1
}

install_moto() {
    if [ -x "$VENV/bin/moto_server" ]; then
        return
    fi
    echo "s3-local: installing moto[server] into $VENV" >&2
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q 'moto[server]' >&2
}

write_env() {
    cat >"$W/env" <<EOF
export KERNELCI_TEST_S3_URL=$URL
export AWS_ACCESS_KEY_ID=kernelci-test
export AWS_SECRET_ACCESS_KEY=kernelci-test-secret
export AWS_REGION=us-east-1
EOF
}

start() {
    mkdir -p "$W"
    if ! answers; then
        install_moto
        # From /: a daemon must not keep the caller's directory (a CI clone deleted later).
        (cd / && exec setsid "$VENV/bin/moto_server" -H 127.0.0.1 -p "$PORT" >"$W/moto.log" 2>&1 </dev/null) &
        echo $! >"$W/moto.pid"
        for _ in $(seq 1 300); do
            answers && break
            sleep 0.1
        done
        if ! answers; then
            echo "s3-local: moto_server did not answer on $URL; see $W/moto.log" >&2
            tail -n 20 "$W/moto.log" >&2 || true
            exit 1
        fi
        echo "s3-local: moto_server up on $URL" >&2
    fi
    write_env
    echo "s3-local: ready; run: . $W/env" >&2
}

stop() {
    if [ -f "$W/moto.pid" ]; then
        local pid
        pid="$(cat "$W/moto.pid")"
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid"
            for _ in $(seq 1 50); do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.1
            done
        fi
        rm -f "$W/moto.pid"
    fi
    echo "s3-local: stopped" >&2
}

case "${1:-}" in
start) start ;;
stop) stop ;;
status)
    if answers; then
        echo "s3-local: moto answers on $URL"
    else
        echo "s3-local: nothing answers on $URL"
        exit 1
    fi
    ;;
env)
    mkdir -p "$W"
    [ -f "$W/env" ] || write_env
    cat "$W/env"
    ;;
*)
    echo "usage: $0 start|stop|status|env" >&2
    exit 2
    ;;
esac
