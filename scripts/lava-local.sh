#!/usr/bin/env bash
# lava-local.sh: a real LAVA 2023.01 lab on this machine (Debian 12's lava-server,
# lava-dispatcher and lavacli), with one QEMU device, for tests of kernelci-lava against a real
# server (specs/real-peers.md §2).
#
#   scripts/lava-local.sh install          apt steps (only what is missing), ALLOWED_HOSTS, check
#   scripts/lava-local.sh start            daemons + admin user, tokens, qemu-01; writes the env file
#   scripts/lava-local.sh stop             stops worker, scheduler and gunicorn (never PostgreSQL)
#   scripts/lava-local.sh status           version, workers, devices; exit 0 when usable
#   scripts/lava-local.sh submit FILE      submits a job definition (YAML), prints the job id
#   scripts/lava-local.sh wait ID [SECS]   polls job ID until Finished (default 600 s), prints
#                                          "<id> <health>"; exit 0 Complete, 1 Incomplete or
#                                          Canceled, 2 not finished in time
#   scripts/lava-local.sh cancel ID        cancels job ID (GET /api/v0.2/jobs/ID/cancel/)
#
# What `start` sets up (idempotent; a re-run when everything is up takes well under a second and
# only rewrites the env file):
#   - PostgreSQL cluster 15/main is started if it is down (never stopped or restarted);
#   - gunicorn (127.0.0.1:8000: UI, /api/v0.2/, /RPC2) and lava-scheduler, as the systemd units
#     would run them, each in its own session/process group (setsid), PID files in $DIR;
#   - user `admin` (password `admin`, superuser), its API token with the secret
#     $KERNELCI_LAVA_TOKEN, a second token of admin described `kernelci-callback` with the
#     secret $KERNELCI_LAVA_CALLBACK_SECRET (LAVA sends that secret in the Authorization header
#     of a notify callback whose `token:` is `kernelci-callback`);
#   - device type `qemu`, worker `ci-worker`, device `qemu-01` (dictionary: qemu.jinja2 with
#     no_kvm = True, 256 MB: KVM does not work on the build machines);
#   - lava-worker `ci-worker` (ping every 5 s), worker dir $DIR/worker-dir;
#   - waits until the worker is Online and qemu-01 is Idle with health Good, then writes
#     $DIR/env:
#       export KERNELCI_LAVA_URL=http://127.0.0.1:8000/ KERNELCI_LAVA_TOKEN=... \
#              KERNELCI_LAVA_CALLBACK_SECRET=... KERNELCI_LAVA_CALLBACK_TOKEN_NAME=kernelci-callback \
#              KERNELCI_TEST_LAVA_URL=... KERNELCI_TEST_LAVA_TOKEN=...
#
# Environment:
#   KERNELCI_LAVA_DIR              state directory: PID files, daemon output, worker dir, env
#                                  (default /tmp/kernelci-lava)
#   KERNELCI_LAVA_TOKEN            the admin API token's secret (default kernelci-lava-admin-token)
#   KERNELCI_LAVA_CALLBACK_SECRET  the `kernelci-callback` token's secret
#                                  (default kernelci-lava-callback-secret)
#   KERNELCI_LAVA_START_TIMEOUT    seconds to wait for the API and for qemu-01 (default 120)
#
# Needs root (apt, daemons that drop to the lavaserver user, /etc/lava-server). State outside
# $DIR: /etc/lava-server, /var/lib/lava-server, /var/lib/lava, /var/log/lava-server and the
# database `lavaserver` in cluster 15/main.
#
# Cost on a 2-core machine (measured): install 49 s the first time (QEMU 7.2 with the
# qemu-utils downgrade, then ~190 LAVA packages incl. the database migrations), 1.5 s when all
# is installed; start 13 s the first time (users, tokens, device), 6-10 s after a stop, 0.3 s
# when already up; stop 6 s; a job that boots a tinyconfig kernel 14-21 s from submit to
# Finished (the scheduler loop and the worker's 5 s ping add ~6-15 s before it starts).
set -euo pipefail

DIR=${KERNELCI_LAVA_DIR:-/tmp/kernelci-lava}
ADMIN_TOKEN=${KERNELCI_LAVA_TOKEN:-kernelci-lava-admin-token}
CALLBACK_SECRET=${KERNELCI_LAVA_CALLBACK_SECRET:-kernelci-lava-callback-secret}
CALLBACK_TOKEN_NAME=kernelci-callback
START_TIMEOUT=${KERNELCI_LAVA_START_TIMEOUT:-120}
URL=http://127.0.0.1:8000/
API=${URL}api/v0.2
WORKER=ci-worker
DEVICE=qemu-01
DEVICE_TYPE=qemu
DEVICE_DICT=/etc/lava-server/dispatcher-config/devices/$DEVICE.jinja2
LOCAL_SETTINGS=/etc/lava-server/settings.d/01-local.yaml
# specs/real-peers.md §2.1/§3.1: Debian 12's QEMU 7.2 needs this qemu-utils (the build image
# has a backports qemu-utils 10 that conflicts with qemu-system-common < 8.0).
QEMU_PACKAGES=(qemu-system-x86)
QEMU_UTILS_VERSION=1:7.2+dfsg-7+deb12u18+b3
LAVA_PACKAGES=(lava-server lava-dispatcher lavacli)
# Used by this script; preinstalled on the build image.
TOOL_PACKAGES=(curl python3 procps)

log() { printf '[lava-local] %s\n' "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

# ------------------------------------------------------------------------------------------
# helpers

pkg_installed() {
    [ "$(dpkg-query -W -f='${Status}' "$1" 2> /dev/null || true)" = "install ok installed" ]
}
pkg_version() { dpkg-query -W -f='${Version}' "$1" 2> /dev/null || true; }

# apt_install ARGS...: apt-get install -y ARGS, waiting for the dpkg/apt lock when another
# process holds it, and running `apt-get update` once if the install fails otherwise.
apt_install() {
    local tries=0 updated=0 out rc
    out=$(mktemp)
    while true; do
        rc=0
        DEBIAN_FRONTEND=noninteractive apt-get install -y -o DPkg::Lock::Timeout=300 "$@" \
            > "$out" 2>&1 || rc=$?
        if [ "$rc" = 0 ]; then
            tail -n 3 "$out" >&2
            rm -f "$out"
            return 0
        fi
        tries=$((tries + 1))
        if grep -qiE 'could not get lock|unable to acquire the dpkg|is another process using it' "$out" &&
            [ "$tries" -lt 20 ]; then
            log "apt is locked by another process; retrying in 15 s"
            sleep 15
            continue
        fi
        if [ "$updated" = 0 ]; then
            log "apt-get install failed; running apt-get update and retrying"
            tail -n 5 "$out" >&2
            apt-get update -q > /dev/null 2>&1 || apt-get update -q >&2 ||
                log "apt-get update failed"
            updated=1
            continue
        fi
        cat "$out" >&2
        rm -f "$out"
        return 1
    done
}

pg_running() {
    [ "$(pg_lsclusters -h 2> /dev/null | awk '$1 == "15" && $2 == "main" {print $4}')" = online ]
}

# pg_up: start cluster 15/main if it is down. Never stops or restarts it (other test runs use it).
pg_up() {
    pg_running && return 0
    log "starting PostgreSQL 15/main"
    pg_ctlcluster --skip-systemctl-redirect 15 main start ||
        pg_running || die "PostgreSQL 15/main does not start"
}

manage() { lava-server manage "$@"; }

# csv_has COLUMN VALUE [COLUMN VALUE]: stdin (CSV with a header line) has a record with these
# exact values in these columns (1-based).
csv_has() {
    python3 -c 'import csv, sys
a = sys.argv[1:]
want = [(int(a[i]) - 1, a[i + 1]) for i in range(0, len(a), 2)]
rows = list(csv.reader(sys.stdin))[1:]
sys.exit(0 if any(all(len(r) > c and r[c] == v for c, v in want) for r in rows) else 1)' "$@"
}

# api METHOD PATH [CURL ARGS...]: an authenticated request to the REST API; prints the body,
# fails on a non-2xx status.
api() {
    local method=$1 path=$2
    shift 2
    curl -sS -f --max-time 30 -X "$method" -H "Authorization: Token $ADMIN_TOKEN" "$@" "$API$path"
}

# json EXPR: evaluate a Python expression on the JSON document read from stdin (bound to `d`).
json() {
    python3 -c 'import json, sys
d = json.load(sys.stdin)
v = eval(sys.argv[1])
print(v if not isinstance(v, (dict, list)) else json.dumps(v))' "$1"
}

pid_alive() { # pid_alive NAME: the daemon of that PID file runs
    local f=$DIR/$1.pid
    [ -s "$f" ] && kill -0 "$(cat "$f")" 2> /dev/null
}

api_up() { curl -s -f -o /dev/null --max-time 5 "$API/"; }

write_env() {
    mkdir -p "$DIR"
    cat > "$DIR/env.tmp" << EOF
export KERNELCI_LAVA_URL=$URL KERNELCI_LAVA_TOKEN=$ADMIN_TOKEN KERNELCI_LAVA_CALLBACK_SECRET=$CALLBACK_SECRET KERNELCI_LAVA_CALLBACK_TOKEN_NAME=$CALLBACK_TOKEN_NAME
export KERNELCI_TEST_LAVA_URL=$URL KERNELCI_TEST_LAVA_TOKEN=$ADMIN_TOKEN
EOF
    mv "$DIR/env.tmp" "$DIR/env"
    log "wrote $DIR/env"
}

# device_ready [SINCE]: by REST, worker Online with a ping at or after SINCE (epoch seconds;
# default: in the last 30 s, it pings every 5 s) and qemu-01 usable (health Good).
device_ready() {
    local since=${1:-$(($(date +%s) - 30))} w d
    w=$(api GET "/workers/$WORKER/" 2> /dev/null | json 'd["state"] + "/" + d["health"] + "/" + str(int(__import__("datetime").datetime.fromisoformat(d["last_ping"].replace("Z", "+00:00")).timestamp()) if d.get("last_ping") else 0)' 2> /dev/null) || return 1
    d=$(api GET "/devices/$DEVICE/" 2> /dev/null | json 'd["state"] + "/" + d["health"]' 2> /dev/null) || return 1
    [ "${w%/*}" = Online/Active ] && [ "${w##*/}" -ge "$since" ] || return 1
    case "$d" in Idle/Good | Reserved/Good | Running/Good) return 0 ;; esac
    return 1
}

# ------------------------------------------------------------------------------------------
# install

cmd_install() {
    local t0 missing=() p
    t0=$(date +%s)
    [ "$(id -u)" = 0 ] || die "install needs root"
    for p in "${TOOL_PACKAGES[@]}"; do
        pkg_installed "$p" || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing ${missing[*]}"
        apt_install --no-install-recommends "${missing[@]}" || die "apt-get install ${missing[*]} failed"
    fi
    # 1. QEMU 7.2 with the qemu-utils downgrade (one apt call, specs/real-peers.md §2.1).
    missing=()
    for p in "${QEMU_PACKAGES[@]}"; do
        pkg_installed "$p" || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ] || [ "$(pkg_version qemu-utils)" != "$QEMU_UTILS_VERSION" ]; then
        log "installing ${QEMU_PACKAGES[*]} qemu-utils=$QEMU_UTILS_VERSION"
        apt_install --allow-downgrades "${QEMU_PACKAGES[@]}" "qemu-utils=$QEMU_UTILS_VERSION" ||
            die "apt-get install of QEMU failed"
    fi
    # 2. lava-server's postinst creates its role and database and migrates: PostgreSQL first.
    pg_up
    # 3. LAVA itself, without recommends (those would add apache2, lxc, tftpd, NFS, ...).
    missing=()
    for p in "${LAVA_PACKAGES[@]}"; do
        pkg_installed "$p" || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing ${missing[*]} (--no-install-recommends)"
        apt_install --no-install-recommends "${missing[@]}" || die "apt-get install ${missing[*]} failed"
    fi
    # 4. Accept any Host header on the API.
    if [ "$(cat "$LOCAL_SETTINGS" 2> /dev/null || true)" != 'ALLOWED_HOSTS: ["*"]' ]; then
        printf 'ALLOWED_HOSTS: ["*"]\n' > "$LOCAL_SETTINGS"
        chown lavaserver:lavaserver "$LOCAL_SETTINGS"
        log "wrote $LOCAL_SETTINGS"
    fi
    manage check
    log "install done in $(($(date +%s) - t0)) s: lava-server $(pkg_version lava-server), QEMU $(pkg_version qemu-system-x86)"
}

# ------------------------------------------------------------------------------------------
# start

start_daemon() { # start_daemon NAME COMMAND...: setsid, PID file, output in $DIR/NAME.out
    local name=$1
    shift
    if pid_alive "$name"; then
        return 0
    fi
    # From /: a daemon must not keep the caller's directory (a CI clone that is deleted
    # later), or LAVA's notifications fail in os.getcwd() and no callback is ever sent.
    (cd / && exec setsid "$@" > "$DIR/$name.out" 2>&1 < /dev/null) &
    echo $! > "$DIR/$name.pid"
    log "started $name (pid $!)"
}

# setup_objects: admin user, its tokens, device type, worker, device and its dictionary.
# Each check reads what exists first, so that a re-run adds nothing twice.
setup_objects() {
    local out
    # `list --csv` prints a header line, then one record per line, the name first.
    if ! manage users list --csv | csv_has 1 admin; then
        manage users add --passwd admin --staff --superuser admin
        log "added user admin"
    fi
    out=$(manage tokens list --user admin --csv) # id,secret,description
    if ! csv_has 2 "$ADMIN_TOKEN" <<< "$out"; then
        manage tokens add --user admin --description kernelci-api --secret "$ADMIN_TOKEN" > /dev/null
        log "added the admin API token"
    fi
    # LAVA sends the secret of the *first* token with that description: keep only ours.
    local stale
    for stale in $(python3 -c 'import csv, sys
for r in list(csv.reader(sys.stdin))[1:]:
    if len(r) > 2 and r[2] == sys.argv[1] and r[1] != sys.argv[2]:
        print(r[1])' "$CALLBACK_TOKEN_NAME" "$CALLBACK_SECRET" <<< "$out"); do
        manage tokens rm "$stale"
        log "removed an older $CALLBACK_TOKEN_NAME token"
    done
    if ! csv_has 2 "$CALLBACK_SECRET" 3 "$CALLBACK_TOKEN_NAME" <<< "$out"; then
        manage tokens add --user admin --description "$CALLBACK_TOKEN_NAME" \
            --secret "$CALLBACK_SECRET" > /dev/null
        log "added the $CALLBACK_TOKEN_NAME token"
    fi
    # Without --all only installed types are listed (--all adds every known template,
    # installed or not, so a fresh lab would look as if it had the type already).
    if ! manage device-types list --csv | csv_has 1 "$DEVICE_TYPE"; then
        manage device-types add "$DEVICE_TYPE"
        log "added device type $DEVICE_TYPE"
    fi
    if ! manage workers list --all --csv | csv_has 1 "$WORKER"; then
        manage workers add "$WORKER" > /dev/null
        log "added worker $WORKER"
    fi
    if ! manage devices list --all --csv | csv_has 1 "$DEVICE"; then
        manage devices add --device-type "$DEVICE_TYPE" --worker "$WORKER" "$DEVICE"
        log "added device $DEVICE"
    fi
    local dict
    dict=$(
        cat << 'EOF'
{% extends 'qemu.jinja2' %}
{% set mac_addr = '52:54:00:12:34:59' %}
{% set memory = '256' %}
{% set no_kvm = True %}
EOF
    )
    if [ "$(cat "$DEVICE_DICT" 2> /dev/null || true)" != "$dict" ]; then
        printf '%s\n' "$dict" > "$DEVICE_DICT"
        chown lavaserver:lavaserver "$DEVICE_DICT"
        log "wrote $DEVICE_DICT"
    fi
}

cmd_start() {
    local t0 i worker_token
    t0=$(date +%s)
    [ "$(id -u)" = 0 ] || die "start needs root"
    command -v lava-server > /dev/null || die "LAVA is not installed: run '$0 install' first"
    mkdir -p "$DIR/worker-dir"
    chmod 755 "$DIR"
    # Fast path: everything up already.
    # (The callback token is an ordinary API token: it must authenticate as admin too.)
    if pid_alive gunicorn && pid_alive scheduler && pid_alive worker && api_up && device_ready &&
        [ "$(ADMIN_TOKEN=$CALLBACK_SECRET api GET /system/whoami/ 2> /dev/null | json 'd["user"]' 2> /dev/null)" = admin ]; then
        write_env
        log "already up ($(($(date +%s) - t0)) s)"
        return 0
    fi
    pg_up
    start_daemon gunicorn /usr/bin/gunicorn3 lava_server.wsgi --log-level DEBUG \
        --log-file /var/log/lava-server/gunicorn.log -u lavaserver -g lavaserver \
        --worker-class eventlet --workers 2 --bind 127.0.0.1:8000
    # As root: it drops privileges itself (under runuser it cannot open its log file).
    start_daemon scheduler /usr/bin/lava-server manage lava-scheduler --level DEBUG \
        --log-file /var/log/lava-server/lava-scheduler.log
    i=0
    until api_up; do
        i=$((i + 1))
        pid_alive gunicorn || { tail -n 20 "$DIR/gunicorn.out" >&2; die "gunicorn exited"; }
        [ "$i" -lt $((START_TIMEOUT * 5)) ] || die "no answer from $API/ within $START_TIMEOUT s"
        sleep 0.2
    done
    log "API up after $(($(date +%s) - t0)) s"
    setup_objects
    worker_token=$(api GET "/workers/$WORKER/" | json 'd["token"]') ||
        die "cannot read the token of worker $WORKER"
    [ -n "$worker_token" ] && [ "$worker_token" != None ] || die "worker $WORKER has no token"
    local worker_t0
    worker_t0=$(date +%s)
    pid_alive worker && worker_t0=$((worker_t0 - 30))
    start_daemon worker /usr/bin/lava-worker --level DEBUG --name "$WORKER" --url "$URL" \
        --token "$worker_token" --worker-dir "$DIR/worker-dir" --log-file "$DIR/lava-worker.log" \
        --ping-interval 5
    i=0
    until device_ready "$worker_t0"; do
        i=$((i + 1))
        pid_alive worker || { tail -n 20 "$DIR/lava-worker.log" "$DIR/worker.out" >&2; die "lava-worker exited"; }
        pid_alive scheduler || { tail -n 20 "$DIR/scheduler.out" >&2; die "lava-scheduler exited"; }
        if [ "$i" -ge "$START_TIMEOUT" ]; then
            api GET "/workers/$WORKER/" >&2 || true
            api GET "/devices/$DEVICE/" >&2 || true
            die "$WORKER/$DEVICE not usable within $START_TIMEOUT s"
        fi
        sleep 1
    done
    write_env
    log "up in $(($(date +%s) - t0)) s: $URL, worker $WORKER online, device $DEVICE ready"
}

# ------------------------------------------------------------------------------------------
# stop

cmd_stop() {
    local d pid i
    for d in worker scheduler publisher gunicorn; do
        [ -s "$DIR/$d.pid" ] || continue
        pid=$(cat "$DIR/$d.pid")
        if kill -0 "$pid" 2> /dev/null; then
            # setsid made the daemon its process group's leader: the group signal also
            # reaches gunicorn's workers and the worker's QEMU.
            kill -TERM -- "-$pid" 2> /dev/null || kill -TERM "$pid" 2> /dev/null || true
            for i in $(seq 1 100); do
                kill -0 "$pid" 2> /dev/null || break
                sleep 0.1
            done
            if kill -0 "$pid" 2> /dev/null; then
                kill -KILL -- "-$pid" 2> /dev/null || true
                log "killed $d (pid $pid)"
            else
                log "stopped $d (pid $pid)"
            fi
        fi
        rm -f "$DIR/$d.pid"
    done
}

# ------------------------------------------------------------------------------------------
# status, submit, wait, cancel

cmd_status() {
    local rc=0
    if ! api_up; then
        echo "LAVA API $API/: not answering"
        return 1
    fi
    echo "LAVA $(api GET /system/version/ | json 'd["version"]') at $URL (user $(api GET /system/whoami/ | json 'd["user"]'))"
    echo "workers:"
    api GET "/workers/?limit=100" | json '"\n".join("  %-20s state=%s health=%s" % (w["hostname"], w["state"], w["health"]) for w in d["results"])'
    echo "devices:"
    api GET "/devices/?limit=100" | json '"\n".join("  %-20s type=%s worker=%s state=%s health=%s" % (x["hostname"], x["device_type"], x["worker_host"], x["state"], x["health"]) for x in d["results"])'
    for p in gunicorn scheduler worker; do
        if pid_alive "$p"; then
            echo "daemon $p: pid $(cat "$DIR/$p.pid")"
        else
            echo "daemon $p: not running (from $DIR)"
        fi
    done
    if pid_alive gunicorn && pid_alive scheduler && pid_alive worker && device_ready; then
        echo "usable: yes"
    else
        echo "usable: no (the three daemons must run, $WORKER be Online/Active with a recent ping and $DEVICE healthy)"
        rc=1
    fi
    return $rc
}

cmd_submit() {
    local file=${1:-}
    [ -n "$file" ] && [ -f "$file" ] || die "usage: $0 submit FILE"
    python3 -c 'import json, sys; print(json.dumps({"definition": open(sys.argv[1]).read()}))' "$file" |
        api POST /jobs/ -H 'Content-Type: application/json' --data-binary @- |
        json 'd["job_ids"][0]'
}

cmd_wait() {
    local id=${1:-} secs=${2:-600} t0 state health
    [ -n "$id" ] || die "usage: $0 wait ID [SECONDS]"
    t0=$(date +%s)
    while true; do
        read -r state health < <(api GET "/jobs/$id/" | json 'd["state"] + " " + d["health"]') ||
            die "cannot read job $id"
        if [ "$state" = Finished ]; then
            echo "$id $health"
            [ "$health" = Complete ] && return 0
            return 1
        fi
        if [ $(($(date +%s) - t0)) -ge "$secs" ]; then
            echo "$id $state $health"
            return 2
        fi
        sleep 1
    done
}

# LAVA 2023.01's REST cancel is a GET (`@detail_route(methods=["get"])`); POST answers 405.
cmd_cancel() {
    local id=${1:-}
    [ -n "$id" ] || die "usage: $0 cancel ID"
    api GET "/jobs/$id/cancel/"
    echo
}

case "${1:-}" in
    install) cmd_install ;;
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    submit) shift; cmd_submit "$@" ;;
    wait) shift; cmd_wait "$@" ;;
    cancel) shift; cmd_cancel "$@" ;;
    -h | --help | help) sed -n '2,/^set -euo pipefail$/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0" ;;
    *)
        echo "usage: $0 install|start|stop|status|submit FILE|wait ID [SECONDS]|cancel ID" >&2
        exit 2
        ;;
esac
