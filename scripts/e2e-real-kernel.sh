#!/usr/bin/env bash
# e2e-real-kernel.sh: the pipeline end to end on a real Linux kernel (the slow sibling of
# apps/kernelci/tests/pipeline.rs, which uses a fake tree).
#
#   scripts/e2e-real-kernel.sh
#
# What it does (specs/real-peers.md §3):
#   a. installs the Debian packages it needs when one is missing (kernel source, QEMU with the
#      qemu-utils pin, kernel build tools, busybox-static): apt runs only then;
#   b. makes a git repository of /usr/src/linux-source-6.1.tar.xz (tag v6.1.<sublevel>), kept
#      in $KERNELCI_E2E_CACHE/linux so that later runs reuse it (rebuilt when the source
#      tarball changes); each run resets its branch `master` to that tag;
#   c. builds the initramfs with scripts/make-initramfs.sh --mode reboot;
#   d. writes a pipeline config from examples/pipeline/tinyconfig-qemu.yaml (paths replaced)
#      and starts `kernelci up --config` on a fresh data directory and a free port;
#   e. waits for the commit to be checked out, built (x86_64 tinyconfig + console fragment),
#      and booted in QEMU: kbuild pass, boot job pass, test `login` pass; then checks KCIDB
#      has the PASS build and the PASS test boot.baseline.login;
#   f. commits a compile error to the tree (a typo in kernel/bounds.c, which is compiled
#      first, right after the configuration: the build fails within a minute of starting
#      instead of after the whole kernel), waits for the failed kbuild (result fail), and
#      checks KCIDB has the FAIL build and a logspec incident for it (triage);
#   g. with KERNELCI_E2E_LAVA=1: before the server starts, sets up a real LAVA lab on this
#      machine (scripts/lava-local.sh: LAVA 2023.01 from Debian, one QEMU device) and adds
#      examples/pipeline/lava-qemu.yaml to the config; after e, checks that LAVA booted the
#      same kernel (job baseline-lava-x86_64 pass, setup/login pass, its console stored from
#      the callback, KCIDB tests boot.setup.login and boot.baseline.uname PASS) and that the
#      job with a missing initramfs ended incomplete with LAVA's error type (KCIDB: MISS, not
#      FAIL);
#   then prints a summary with timings. On a failure it prints the server log tail and the
#   nodes of the tree concerned; the server (and any job it still runs) is always stopped.
#   Exit status 0 only when every check passed.
#
# Environment:
#   KERNELCI_BIN               the kernelci binary (default: $CARGO_TARGET_DIR/debug/kernelci,
#                              CARGO_TARGET_DIR defaulting to ./target)
#   KERNELCI_E2E_CACHE         cache directory (default /tmp/kernelci-e2e; ~2 GB)
#   KERNELCI_E2E_DATABASE_URL  run on PostgreSQL (Maestro and KCIDB): a postgres:// URL; the
#                              run gets a fresh database on that server, dropped afterwards
#                              (or, when that user may not CREATE DATABASE, uses the URL's
#                              database itself, which must then be empty)
#   KERNELCI_E2E_TIMEOUT       seconds for the good commit to be built and booted (default 1200)
#   KERNELCI_E2E_FAIL_TIMEOUT  seconds for the broken commit's build to fail (default 600)
#   KERNELCI_E2E_KEEP=1        keep the run directory (data dir, server log) after a success
#   KERNELCI_E2E_LAVA=1        also boot through a real LAVA lab (g. above; ~2 min more, plus
#                              ~1.5 min of apt the first time)
#
# Needs root only to install missing packages. On a 2-core machine: ~4.5 min, ~1.5 min more
# on the first run (the git repository) and ~0.5 min more when apt has to run.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${KERNELCI_E2E_CACHE:-/tmp/kernelci-e2e}
BIN=${KERNELCI_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/debug/kernelci}
GOOD_TIMEOUT=${KERNELCI_E2E_TIMEOUT:-1200}
FAIL_TIMEOUT=${KERNELCI_E2E_FAIL_TIMEOUT:-600}
KCIDB_TIMEOUT=180
SOURCE_TARBALL=/usr/src/linux-source-6.1.tar.xz
EXAMPLE=$ROOT/examples/pipeline/tinyconfig-qemu.yaml
LAVA_EXAMPLE=$ROOT/examples/pipeline/lava-qemu.yaml
LAVA=${KERNELCI_E2E_LAVA:-0}
LAVA_JOB=baseline-lava-x86_64
LAVA_BAD_JOB=baseline-lava-missing-ramdisk
LAVA_TIMEOUT=${KERNELCI_E2E_LAVA_TIMEOUT:-420}
KBUILD_JOB=kbuild-gcc-x86_64-tinyconfig
BOOT_JOB=baseline-x86_64
# The apt line of specs/real-peers.md §3.1 (the qemu-utils pin is required on the build
# machines, whose preinstalled backports qemu-utils 10 conflicts with QEMU 7.2).
APT_PACKAGES=(linux-source-6.1 qemu-system-x86 bc flex bison libelf-dev libssl-dev busybox-static)
APT_PIN=qemu-utils=1:7.2+dfsg-7+deb12u18+b3
# Preinstalled on the build image; installed too when missing on a bare Debian 12.
APT_EXTRA=(build-essential cpio xz-utils curl git python3 procps)

T_START=$(date +%s)
SERVER_PID=""
WORK=""
PG_ADMIN_URL=""
PG_DB=""
RESULT=1
CURRENT_STEP="start"
FAIL_COMMIT=""
declare -a TIMINGS=()
declare -a PHASES=()

log() { printf '[e2e %4ds] %s\n' "$(($(date +%s) - T_START))" "$*"; }

# step NAME: start timing a step (the previous one ends).
STEP_T0=$T_START
step() {
    step_end
    CURRENT_STEP=$1
    STEP_T0=$(date +%s)
    log "== $1"
}
step_end() {
    if [ "$CURRENT_STEP" != start ] && [ -n "$CURRENT_STEP" ]; then
        TIMINGS+=("$(printf '%-44s %5ds' "$CURRENT_STEP" "$(($(date +%s) - STEP_T0))")")
    fi
    CURRENT_STEP=""
}

die() {
    log "FAILED: $*"
    exit 1
}

# ------------------------------------------------------------------------------------------
# Cleanup: always stop the server and the jobs it started; on failure show why.

# Jobs of the shell runtime run in their own process group (PGID = PID) as children of the
# server, and outlive it: remember them while it runs, stop them once it is gone (stopping
# them first would have the server collect them as failed and schedule retries).
JOB_GROUPS=" "
capture_jobs() {
    local c pgid
    for c in $(pgrep -P "$SERVER_PID" 2> /dev/null || true); do
        pgid=$(ps -o pgid= -p "$c" 2> /dev/null | tr -d ' ' || true)
        if [ "$pgid" = "$c" ] && [[ "$JOB_GROUPS" != *" $c "* ]]; then
            JOB_GROUPS+="$c "
        fi
    done
}

stop_server() {
    [ -n "$SERVER_PID" ] || return 0
    capture_jobs
    kill -TERM "$SERVER_PID" 2> /dev/null || true
    local i g
    for i in $(seq 1 50); do
        kill -0 "$SERVER_PID" 2> /dev/null || break
        capture_jobs
        sleep 0.2
    done
    kill -KILL "$SERVER_PID" 2> /dev/null || true
    wait "$SERVER_PID" 2> /dev/null || true
    SERVER_PID=""
    for g in $JOB_GROUPS; do
        kill -TERM -- "-$g" 2> /dev/null && log "stopped job process group $g"
    done
    if [ -n "${JOB_GROUPS// /}" ]; then
        sleep 1
        for g in $JOB_GROUPS; do
            kill -KILL -- "-$g" 2> /dev/null || true
        done
    fi
    return 0
}

on_exit() {
    local rc=$?
    set +e
    step_end
    if [ "$RESULT" != 0 ] && [ -n "$WORK" ]; then
        log "---- server log (last 80 lines of $WORK/server.log)"
        tail -n 80 "$WORK/server.log" 2> /dev/null
        if [ -n "${BASE:-}" ] && [ -f "$WORK/e2e.py" ]; then
            for c in "${GOOD_COMMIT:-}" "$FAIL_COMMIT"; do
                [ -n "$c" ] || continue
                log "---- nodes of the tree of commit $c"
                python3 "$WORK/e2e.py" dump "$BASE" "$TOKEN" "$c"
            done
        fi
        for j in "$WORK"/data/pipeline/jobs/*/*/job.log; do
            [ -f "$j" ] || continue
            log "---- $j (last 30 lines)"
            tail -n 30 "$j"
        done
    fi
    local t_stop
    t_stop=$(date +%s)
    stop_server
    TIMINGS+=("$(printf '%-44s %5ds' "server stop" "$(($(date +%s) - t_stop))")")
    if [ -n "$PG_DB" ]; then
        psql -q "$PG_ADMIN_URL" -c "DROP DATABASE IF EXISTS \"$PG_DB\" WITH (FORCE)" > /dev/null 2>&1 ||
            log "warning: could not drop database $PG_DB"
    fi
    echo
    echo "==== e2e-real-kernel summary"
    local t
    for t in "${TIMINGS[@]}"; do
        echo "  $t"
    done
    printf '  %-44s %5ds\n' "total" "$(($(date +%s) - T_START))"
    for t in "${PHASES[@]}"; do
        echo "  $t"
    done
    if [ "$RESULT" = 0 ]; then
        echo "  result: PASS"
        if [ -n "$WORK" ] && [ "${KERNELCI_E2E_KEEP:-0}" != 1 ]; then
            rm -rf "$WORK"
        elif [ -n "$WORK" ]; then
            echo "  run directory kept: $WORK"
        fi
    else
        if [ -n "$WORK" ]; then
            # Keep the logs and databases, not the gigabytes of sources and tarballs.
            rm -rf "$WORK"/data/pipeline/jobs/*/*/linux "$WORK"/data/pipeline/git "$WORK"/data/artifacts/*.tar.gz
        fi
        echo "  result: FAIL (exit $rc); run directory kept: ${WORK:-none}"
        [ "$rc" != 0 ] || rc=1
    fi
    exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ------------------------------------------------------------------------------------------
# a. Packages

step "packages"
pkg_installed() {
    [ "$(dpkg-query -W -f='${Status}' "$1" 2> /dev/null || true)" = "install ok installed" ]
}
missing=()
for p in "${APT_PACKAGES[@]}" "${APT_EXTRA[@]}"; do
    pkg_installed "$p" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    log "missing packages: ${missing[*]}"
    [ "$(id -u)" = 0 ] || die "not root: install them with: apt-get install -y --allow-downgrades ${APT_PACKAGES[*]} $APT_PIN ${APT_EXTRA[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q > /dev/null
    # qemu-utils must be the version of qemu-system-x86 (§3.1 pins 1:7.2+dfsg-7+deb12u18+b3,
    # the candidate when the recipe was written; follow the mirror if it moved on).
    qemu_ver=$(apt-cache policy qemu-system-x86 | sed -n 's/^ *Candidate: //p')
    case "$qemu_ver" in
        "" | "(none)") ;;
        *) APT_PIN="qemu-utils=$qemu_ver" ;;
    esac
    extra=()
    for p in "${APT_EXTRA[@]}"; do
        pkg_installed "$p" || extra+=("$p")
    done
    mkdir -p "$CACHE"
    apt-get install -y -q --allow-downgrades "${APT_PACKAGES[@]}" "$APT_PIN" "${extra[@]}" > "$CACHE/apt.log" 2>&1 ||
        { tail -n 30 "$CACHE/apt.log"; die "apt-get install failed (log: $CACHE/apt.log)"; }
    log "installed: ${missing[*]}"
else
    log "all packages present, apt skipped"
fi
for tool in gcc make git curl python3 qemu-system-x86_64 timeout pgrep flock; do
    command -v "$tool" > /dev/null || die "$tool not found"
done
[ -f "$SOURCE_TARBALL" ] || die "$SOURCE_TARBALL not found"
[ -x "$BIN" ] || die "kernelci binary not found at $BIN (cargo build -p kernelci, or set KERNELCI_BIN)"
[ -f "$EXAMPLE" ] || die "$EXAMPLE not found"

if [ "$LAVA" = 1 ]; then
    step "LAVA lab (scripts/lava-local.sh install, start)"
    "$ROOT/scripts/lava-local.sh" install || die "LAVA install failed"
    "$ROOT/scripts/lava-local.sh" start || die "LAVA did not start"
    # shellcheck disable=SC1091
    . "${KERNELCI_LAVA_DIR:-/tmp/kernelci-lava}/env"
    [ -n "${KERNELCI_LAVA_URL:-}" ] || die "lava-local.sh start wrote no KERNELCI_LAVA_URL"
    log "LAVA at $KERNELCI_LAVA_URL"
fi

# ------------------------------------------------------------------------------------------
# b. The kernel tree as a git repository (cached)

step "kernel git repository"
mkdir -p "$CACHE"
# One run at a time per cache (the repository's branch is reset and committed to).
exec 9> "$CACHE/lock"
if ! flock -n 9; then
    log "waiting for another run to release $CACHE/lock"
    flock -w 1800 9 || die "$CACHE/lock is still held after 30 min"
fi
REPO=$CACHE/linux
src_id="$(stat -c '%s %Y' "$SOURCE_TARBALL") $SOURCE_TARBALL"
gitc() { git -C "$REPO" -c user.name=kernelci-e2e -c user.email=e2e@kernelci.invalid -c gc.auto=0 "$@"; }
if [ -f "$REPO/.git/kernelci-e2e-ready" ] && [ "$(cat "$REPO/.git/kernelci-e2e-ready")" = "$src_id" ]; then
    BASE_TAG=$(git -C "$REPO" tag -l 'v6.1.*' | head -n 1)
    [ -n "$BASE_TAG" ] || die "the cached repository $REPO has no v6.1.* tag; remove it"
    log "reusing $REPO ($BASE_TAG)"
else
    rm -rf "$REPO" "$REPO.tmp"
    mkdir -p "$REPO.tmp"
    log "unpacking $SOURCE_TARBALL"
    tar -xaf "$SOURCE_TARBALL" -C "$REPO.tmp" --strip-components=1
    sublevel=$(sed -n 's/^SUBLEVEL = //p' "$REPO.tmp/Makefile")
    BASE_TAG="v6.1.${sublevel:-0}"
    # Debian's .gitignore ends with a block ignoring the whole top level (real-peers §3.5).
    sed -i '/^# Debian packaging/,$d' "$REPO.tmp/.gitignore"
    git -C "$REPO.tmp" init -q -b master
    log "git add (78,000 files)"
    git -C "$REPO.tmp" add -A
    git -C "$REPO.tmp" -c user.name=kernelci-e2e -c user.email=e2e@kernelci.invalid -c gc.auto=0 \
        commit -q -m "linux-source $BASE_TAG (Debian $(basename "$SOURCE_TARBALL"))"
    git -C "$REPO.tmp" tag "$BASE_TAG"
    # One pack, so that the pipeline's mirror fetches it as it is (7 s) instead of packing
    # 80,000 loose objects on every run (46 s). No delta search: a single snapshot gains
    # little from it (253 MB instead of 236 MB) and `git gc` takes twice as long (65 s).
    log "git repack"
    git -C "$REPO.tmp" -c gc.auto=0 repack -a -d -q --window=0
    echo "$src_id" > "$REPO.tmp/.git/kernelci-e2e-ready"
    mv "$REPO.tmp" "$REPO"
fi
# Every run starts from the release: drop the broken commit of a previous run.
gitc checkout -q -f master
gitc reset -q --hard "$BASE_TAG"
gitc clean -q -fdx
GOOD_COMMIT=$(git -C "$REPO" rev-parse HEAD)
log "tree $REPO, branch master at $GOOD_COMMIT ($BASE_TAG)"

# ------------------------------------------------------------------------------------------
# c. initramfs, config, server

step "initramfs and config"
WORK=$(mktemp -d /tmp/kernelci-e2e-run.XXXXXX)
chmod 755 "$WORK"
INITRAMFS=$WORK/initramfs.cpio.gz
"$ROOT/scripts/make-initramfs.sh" --mode reboot "$INITRAMFS" > "$WORK/initramfs.log" 2>&1 ||
    { cat "$WORK/initramfs.log"; die "make-initramfs.sh failed"; }
CONFIG=$WORK/config
mkdir -p "$CONFIG"
sed -e "s|\"/srv/kernelci/linux\"|\"$REPO\"|" \
    -e "s|\"/srv/kernelci/initramfs.cpio.gz\"|\"$INITRAMFS\"|" \
    "$EXAMPLE" > "$CONFIG/pipeline.yaml"
grep -qF "\"$REPO\"" "$CONFIG/pipeline.yaml" || die "could not set the tree path in $CONFIG/pipeline.yaml"
grep -qF "\"$INITRAMFS\"" "$CONFIG/pipeline.yaml" || die "could not set the ramdisk path in $CONFIG/pipeline.yaml"
settings_args=()
if [ "$LAVA" = 1 ]; then
    SHELL_INITRAMFS=$WORK/initramfs-shell.cpio.gz
    "$ROOT/scripts/make-initramfs.sh" --mode shell "$SHELL_INITRAMFS" >> "$WORK/initramfs.log" 2>&1 ||
        { cat "$WORK/initramfs.log"; die "make-initramfs.sh --mode shell failed"; }
    sed -e "s|\"http://127.0.0.1:8000/\"|\"$KERNELCI_LAVA_URL\"|" \
        -e "s|\"/srv/kernelci/initramfs-shell.cpio.gz\"|\"$SHELL_INITRAMFS\"|" \
        "$LAVA_EXAMPLE" > "$CONFIG/lava.yaml"
    grep -qF "\"$SHELL_INITRAMFS\"" "$CONFIG/lava.yaml" || die "could not set the ramdisk path in $CONFIG/lava.yaml"
    printf '[runtime.lava-local]\nruntime_token = "%s"\ncallback_token = "%s"\n' \
        "$KERNELCI_LAVA_TOKEN" "$KERNELCI_LAVA_CALLBACK_SECRET" > "$WORK/kernelci.toml"
    chmod 600 "$WORK/kernelci.toml"
    settings_args=(--settings "$WORK/kernelci.toml")
fi
"$BIN" pipeline check "$CONFIG" || die "the generated configuration does not load"

# The helper that reads the API and KCIDB (no jq or sqlite3 CLI needed).
cat > "$WORK/e2e.py" << 'EOF'
import json, os, subprocess, sys, urllib.request
from datetime import datetime

def get(base, token, path):
    req = urllib.request.Request(base + path, headers={"Authorization": "Bearer " + token})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.load(r)

def tree(base, token, commit):
    cos = get(base, token, "/latest/nodes/fast?kind=checkout&data.kernel_revision.commit=" + commit)
    if not cos:
        return []
    return get(base, token, "/latest/nodes/fast?treeid=" + cos[0]["treeid"])

def ts(s):
    return datetime.fromisoformat(s) if s else None

def summary(nodes, names):
    """name=state/result(seconds since created) for each name; '-' when absent."""
    out = []
    for name in names:
        ns = [n for n in nodes if n["name"] == name]
        if not ns:
            out.append(name + "=-")
            continue
        n = max(ns, key=lambda n: n.get("retry_counter") or 0)
        secs = ""
        c, u = ts(n.get("created")), ts(n.get("updated"))
        if c and u:
            secs = "(%ds)" % (u - c).total_seconds()
        out.append("%s=%s/%s%s" % (name, n["state"], n.get("result") or "-", secs))
    return out

def main():
    cmd = sys.argv[1]
    if cmd == "status":
        # status BASE TOKEN COMMIT NAME...: one line "name=state/result(s) ..."
        base, token, commit, names = sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]
        try:
            nodes = tree(base, token, commit)
        except Exception as e:  # the server may be busy; the caller retries
            print("api-error=%s" % str(e).replace(" ", "_"))
            return
        print(" ".join(summary(nodes, names)))
    elif cmd == "node":
        # node BASE TOKEN COMMIT NAME FIELD: a field of the newest node of that name
        # (NAME#0: of its first attempt, whatever job-retry made since)
        base, token, commit, name, field = sys.argv[2:7]
        first = name.endswith("#0")
        name = name[:-2] if first else name
        ns = [n for n in tree(base, token, commit) if n["name"] == name]
        if ns:
            pick = min if first else max
            n = pick(ns, key=lambda n: n.get("retry_counter") or 0)
            v = n
            for k in field.split("."):
                v = v.get(k) if isinstance(v, dict) else None
            print("" if v is None else v)
    elif cmd == "phases":
        # phases BASE TOKEN COMMIT KBUILD BOOT: how long each stage took, from the node times
        base, token, commit, kbuild, boot = sys.argv[2:7]
        newest = {}
        for n in tree(base, token, commit):
            o = newest.get(n["name"])
            if o is None or (n.get("retry_counter") or 0) > (o.get("retry_counter") or 0):
                newest[n["name"]] = n
        co, kb, bt, lg = (newest.get(k) for k in ("checkout", kbuild, boot, "login"))
        d = lambda a, b: "%ds" % (ts(b) - ts(a)).total_seconds()
        out = []
        if co and kb:
            out.append("trigger+tarball " + d(co["created"], kb["created"]))
        if kb and bt:
            out.append("kbuild " + d(kb["created"], bt["created"]))
        elif kb:
            out.append("kbuild " + d(kb["created"], kb["updated"]))
        if bt and lg:
            out.append("boot " + d(bt["created"], lg["created"]))
        print(", ".join(out))
    elif cmd == "dump":
        base, token, commit = sys.argv[2:5]
        try:
            for n in tree(base, token, commit):
                print(json.dumps(n, indent=1, sort_keys=True))
        except Exception as e:
            print("cannot read the nodes: %s" % e)
    elif cmd == "sql":
        # sql URL QUERY: first column of the first row
        url, query = sys.argv[2], sys.argv[3]
        if url.startswith("postgres"):
            out = subprocess.run(["psql", "-qAt", url, "-c", query], check=True,
                                 capture_output=True, text=True).stdout.rstrip("\n")
            print(out.splitlines()[0] if out else "")
        else:
            import sqlite3
            if not os.path.exists(url):
                print("")
                return
            con = sqlite3.connect(url, timeout=30)
            try:
                row = con.execute(query).fetchone()
            finally:
                con.close()
            print("" if row is None or row[0] is None else row[0])
    else:
        sys.exit("unknown command " + cmd)

main()
EOF

step "server start"
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
BASE=http://127.0.0.1:$PORT
DATA=$WORK/data
db_args=()
KCIDB_DB=$DATA/kcidb.db
if [ -n "${KERNELCI_E2E_DATABASE_URL:-}" ]; then
    command -v psql > /dev/null || die "KERNELCI_E2E_DATABASE_URL needs psql"
    # A fresh database: in one that already saw a run, the trigger would find the checkout
    # of the same release commit and make none.
    PG_ADMIN_URL=$KERNELCI_E2E_DATABASE_URL
    PG_DB="kci_e2e_$(date +%s)_$$"
    if psql -q "$PG_ADMIN_URL" -c "CREATE DATABASE \"$PG_DB\"" > "$WORK/createdb.log" 2>&1; then
        # Same server and credentials, the new database (any ?query is kept).
        KCIDB_DB=$(python3 -c 'import sys, urllib.parse as u; p = u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/" + sys.argv[2])))' "$PG_ADMIN_URL" "$PG_DB")
        log "PostgreSQL: a fresh database $PG_DB"
    else
        log "PostgreSQL: cannot create a database ($(head -n 1 "$WORK/createdb.log")); using $PG_ADMIN_URL itself, which must be empty"
        PG_DB=""
        KCIDB_DB=$PG_ADMIN_URL
    fi
    db_args=(--database-url "$KCIDB_DB")
fi
# --keep-alive 5: with --config, SIGTERM only stops the server once the pipeline roles' own
# /listen long polls have ended, up to --keep-alive seconds (45 by default) later.
"$BIN" up --config "$CONFIG" --data-dir "$DATA" --listen "127.0.0.1:$PORT" \
    --trigger-poll 5 --holdoff 5 --timeout-poll 2 --kcidb-sweep 5 --kcidb-triage-interval 5 \
    --keep-alive 5 --job-retries 1 "${db_args[@]}" "${settings_args[@]}" > "$WORK/server.log" 2>&1 9>&- &
SERVER_PID=$!
log "kernelci up: pid $SERVER_PID, $BASE, data $DATA, log $WORK/server.log"
for i in $(seq 1 300); do
    kill -0 "$SERVER_PID" 2> /dev/null || die "the server exited at start-up"
    if [ -s "$DATA/admin.token" ] && curl -sf -o /dev/null "$BASE/latest/"; then
        break
    fi
    [ "$i" -lt 300 ] || die "the server did not answer within 60 s"
    sleep 0.2
done
TOKEN=$(tr -d '[:space:]' < "$DATA/admin.token")

e2e() { python3 "$WORK/e2e.py" "$@"; }

# wait_tree COMMIT TIMEOUT CHECK: poll the tree of COMMIT until CHECK (a function given the
# status line) returns 0 (done) or 2 (failed); a progress line on every change and every 30 s.
wait_tree() {
    local commit=$1 timeout=$2 check=$3 t0 last="" last_print=0 line now rc
    t0=$(date +%s)
    while true; do
        kill -0 "$SERVER_PID" 2> /dev/null || die "the server died"
        line=$(e2e status "$BASE" "$TOKEN" "$commit" checkout "$KBUILD_JOB" "$BOOT_JOB" login)
        now=$(date +%s)
        if [ "$line" != "$last" ] || [ $((now - last_print)) -ge 30 ]; then
            log "  [$((now - t0))s] $line"
            last=$line
            last_print=$now
        fi
        rc=0
        "$check" "$line" || rc=$?
        case "$rc" in
            0) return 0 ;;
            2) die "unexpected result: $line" ;;
        esac
        [ $((now - t0)) -lt "$timeout" ] || die "no result within $timeout s: $line"
        sleep 3
    done
}

field() { # field LINE NAME: the state/result of NAME in a status line
    local w
    for w in $1; do
        case "$w" in "$2="*) w=${w#*=}; echo "${w%%(*}"; return ;; esac
    done
}

# The good commit: built, booted, login passed.
good_done() {
    local co kb bt lg
    co=$(field "$1" checkout); kb=$(field "$1" "$KBUILD_JOB")
    bt=$(field "$1" "$BOOT_JOB"); lg=$(field "$1" login)
    case "$co" in */fail|*/incomplete) return 2 ;; esac
    case "$kb" in */fail|*/incomplete) return 2 ;; esac
    case "$bt" in done/fail|done/incomplete) return 2 ;; esac
    case "$lg" in */fail) return 2 ;; esac
    [ "${kb#*/}" = pass ] && [ "$bt" = done/pass ] && [ "$lg" = done/pass ]
}

# The broken commit: its build failed (result fail, not incomplete).
fail_done() {
    local co kb
    co=$(field "$1" checkout); kb=$(field "$1" "$KBUILD_JOB")
    case "$co" in */fail|*/incomplete) return 2 ;; esac
    case "$kb" in */pass|*/incomplete) return 2 ;; esac
    [ "$kb" = done/fail ]
}

# wait_sql WHAT QUERY: until the query's value is a number > 0.
wait_sql() {
    local what=$1 query=$2 t0 v=""
    t0=$(date +%s)
    while true; do
        v=$(e2e sql "$KCIDB_DB" "$query" 2> "$WORK/sql.err" || true)
        if [ -n "$v" ] && [ "$v" != 0 ]; then
            log "  KCIDB: $what: $v"
            return 0
        fi
        [ $(($(date +%s) - t0)) -lt "$KCIDB_TIMEOUT" ] ||
            { cat "$WORK/sql.err"; die "KCIDB: no $what within $KCIDB_TIMEOUT s ($query)"; }
        sleep 2
    done
}

# ------------------------------------------------------------------------------------------
# e. The release: checkout -> tarball -> kbuild -> boot -> KCIDB

step "good commit: checkout, build, boot"
log "waiting for $GOOD_COMMIT (at most $GOOD_TIMEOUT s)"
wait_tree "$GOOD_COMMIT" "$GOOD_TIMEOUT" good_done
KID=$(e2e node "$BASE" "$TOKEN" "$GOOD_COMMIT" "$KBUILD_JOB" id)
log "kbuild $KID: $(e2e node "$BASE" "$TOKEN" "$GOOD_COMMIT" "$KBUILD_JOB" artifacts.kernel)"
PHASES+=("good commit:   $(e2e phases "$BASE" "$TOKEN" "$GOOD_COMMIT" "$KBUILD_JOB" "$BOOT_JOB")")
# The console log is the real kernel's: its version line and the marker of our /init.
console_url=$(e2e node "$BASE" "$TOKEN" "$GOOD_COMMIT" "$BOOT_JOB" artifacts.test_log)
[ -n "$console_url" ] || die "the boot job has no test_log artifact"
curl -sf -o "$WORK/console.log" "$console_url" || die "cannot download $console_url"
grep -q "Linux version ${BASE_TAG#v} " "$WORK/console.log" ||
    { tail -n 40 "$WORK/console.log"; die "no 'Linux version ${BASE_TAG#v}' in the console log"; }
grep -q '^BOOT-MARKER: init reached' "$WORK/console.log" ||
    { tail -n 40 "$WORK/console.log"; die "no BOOT-MARKER line in the console log"; }
log "console: $(grep -m1 -o 'Linux version [^ ]*' "$WORK/console.log"), $(grep -m1 '^BOOT-MARKER' "$WORK/console.log")"
# QEMU should have ended by itself (the init reboots, -no-reboot exits), not by boot_timeout.
status_url=$(e2e node "$BASE" "$TOKEN" "$GOOD_COMMIT" "$BOOT_JOB" artifacts.qemu_status_txt)
qemu_status=$(curl -sf "$status_url" | tr '\n' ' ' || true)
log "qemu: ${qemu_status:-no qemu_status.txt}"
case "$qemu_status" in
    *timed_out=no*) ;;
    *) PHASES+=("warning: QEMU did not exit by itself: ${qemu_status:-no qemu_status.txt}") ;;
esac

step "good commit: KCIDB"
wait_sql "checkout of $GOOD_COMMIT" "SELECT count(*) FROM checkouts WHERE git_commit_hash = '$GOOD_COMMIT'"
wait_sql "PASS build maestro:$KID" "SELECT count(*) FROM builds WHERE id = 'maestro:$KID' AND status = 'PASS'"
wait_sql "PASS test boot.baseline.login of that build" \
    "SELECT count(*) FROM tests WHERE build_id = 'maestro:$KID' AND path = 'boot.baseline.login' AND status = 'PASS'"

# ------------------------------------------------------------------------------------------
# g. The same kernel booted by a real LAVA lab; its results came back by callback.

if [ "$LAVA" = 1 ]; then
    step "good commit: LAVA boot and callback"
    t0=$(date +%s)
    while true; do
        kill -0 "$SERVER_PID" 2> /dev/null || die "the server died"
        lj=$(e2e node "$BASE" "$TOKEN" "$GOOD_COMMIT" "$LAVA_JOB" state)/$(e2e node "$BASE" "$TOKEN" "$GOOD_COMMIT" "$LAVA_JOB" result)
        # Its first attempt (#0: job-retry must not make another, see below).
        lb=$(e2e node "$BASE" "$TOKEN" "$GOOD_COMMIT" "$LAVA_BAD_JOB#0" state)/$(e2e node "$BASE" "$TOKEN" "$GOOD_COMMIT" "$LAVA_BAD_JOB#0" result)
        if [ "${lj%%/*}" = done ] && [ "${lb%%/*}" = done ]; then
            break
        fi
        [ $(($(date +%s) - t0)) -lt "$LAVA_TIMEOUT" ] ||
            die "LAVA jobs not done within $LAVA_TIMEOUT s: $LAVA_JOB=$lj $LAVA_BAD_JOB=$lb ($("$ROOT/scripts/lava-local.sh" status 2>&1 | tail -n 5 | tr '\n' ' '))"
        sleep 3
    done
    log "  $LAVA_JOB=$lj $LAVA_BAD_JOB=$lb ($(($(date +%s) - t0)) s after the kernel was built and booted)"
    PHASES+=("LAVA: both jobs done $(($(date +%s) - t0)) s after the shell boot")
    LID=$(e2e node "$BASE" "$TOKEN" "$GOOD_COMMIT" "$LAVA_JOB" id)
    [ "$lj" = done/pass ] || die "$LAVA_JOB ended $lj (LAVA job $(e2e node "$BASE" "$TOKEN" "$GOOD_COMMIT" "$LAVA_JOB" data.job_id))"
    lava_log_url=$(e2e node "$BASE" "$TOKEN" "$GOOD_COMMIT" "$LAVA_JOB" artifacts.lava_log)
    [ -n "$lava_log_url" ] || die "$LAVA_JOB has no lava_log artifact"
    curl -sf "$lava_log_url" | gzip -dc > "$WORK/lava-console.log" || die "cannot read $lava_log_url"
    grep -q "Linux version ${BASE_TAG#v} " "$WORK/lava-console.log" ||
        { tail -n 40 "$WORK/lava-console.log"; die "no 'Linux version ${BASE_TAG#v}' in the LAVA console"; }
    log "  LAVA console: $(grep -m1 -o 'Linux version [^ ]*' "$WORK/lava-console.log"), device $(e2e node "$BASE" "$TOKEN" "$GOOD_COMMIT" "$LAVA_JOB" data.device)"
    # LAVA's own stages (setup/login, setup/kernelmsg) are nodes; KCIDB leaves setup out,
    # as upstream's send_kcidb does.
    for t in kernelmsg uname shell-arithmetic; do
        r=$(e2e node "$BASE" "$TOKEN" "$GOOD_COMMIT" "$t" result)
        [ "$r" = pass ] || die "the LAVA test $t is '$r', expected pass"
    done
    wait_sql "PASS test maestro:$LID (boot, LAVA)" \
        "SELECT count(*) FROM tests WHERE id = 'maestro:$LID' AND path = 'boot' AND status = 'PASS'"
    wait_sql "PASS test boot.baseline.uname of $LAVA_JOB" \
        "SELECT count(*) FROM tests WHERE build_id = 'maestro:$KID' AND path = 'boot.baseline.uname' AND status = 'PASS'"
    [ "$lb" = done/incomplete ] || die "$LAVA_BAD_JOB ended $lb, expected done/incomplete"
    code=$(e2e node "$BASE" "$TOKEN" "$GOOD_COMMIT" "$LAVA_BAD_JOB#0" data.error_code)
    msg=$(e2e node "$BASE" "$TOKEN" "$GOOD_COMMIT" "$LAVA_BAD_JOB#0" data.error_msg)
    log "  $LAVA_BAD_JOB: error_code $code: $msg"
    [ -n "$code" ] || die "$LAVA_BAD_JOB has no error_code"
    case "$msg" in *initramfs*) ;; *) die "$LAVA_BAD_JOB's error_msg does not name the missing initramfs: $msg" ;; esac
    # LAVA's `Job` error (invalid job data) is the job definition's fault: job-retry does
    # not run it again, and KCIDB hears of it at once, as MISS, not FAIL.
    rc=$(e2e node "$BASE" "$TOKEN" "$GOOD_COMMIT" "$LAVA_BAD_JOB" retry_counter)
    [ "${rc:-0}" = 0 ] || die "$LAVA_BAD_JOB was retried (retry_counter $rc) although its error is not the infrastructure's"
    wait_sql "the $LAVA_BAD_JOB test, MISS" \
        "SELECT count(*) FROM tests WHERE build_id = 'maestro:$KID' AND path = 'boot' AND status = 'MISS'"
    n_fail=$(e2e sql "$KCIDB_DB" "SELECT count(*) FROM tests WHERE build_id = 'maestro:$KID' AND status = 'FAIL'")
    [ "$n_fail" = 0 ] || die "$n_fail FAIL tests for build maestro:$KID; the lab's error must not look like the kernel's"
fi

# ------------------------------------------------------------------------------------------
# f. A commit that does not compile: a typo in kernel/bounds.c, the first kernel C file
#    compiled (it makes include/generated/bounds.h, right after the configuration).

step "broken commit: checkout, build fails"
grep -q 'DEFINE(NR_PAGEFLAGS, __NR_PAGEFLAGS);' "$REPO/kernel/bounds.c" ||
    die "kernel/bounds.c does not have the line this script breaks"
sed -i 's/DEFINE(NR_PAGEFLAGS, __NR_PAGEFLAGS);/DEFINE(NR_PAGEFLAGS, __NR_PAGEFLAG);/' "$REPO/kernel/bounds.c"
gitc commit -q -a -m "bounds: a typo that breaks the build (kernelci e2e)"
FAIL_COMMIT=$(git -C "$REPO" rev-parse HEAD)
log "committed $FAIL_COMMIT; waiting for its build to fail (at most $FAIL_TIMEOUT s)"
wait_tree "$FAIL_COMMIT" "$FAIL_TIMEOUT" fail_done
FKID=$(e2e node "$BASE" "$TOKEN" "$FAIL_COMMIT" "$KBUILD_JOB" id)
PHASES+=("broken commit: $(e2e phases "$BASE" "$TOKEN" "$FAIL_COMMIT" "$KBUILD_JOB" "$BOOT_JOB")")
n_boot=$(e2e status "$BASE" "$TOKEN" "$FAIL_COMMIT" "$BOOT_JOB")
[ "$n_boot" = "$BOOT_JOB=-" ] || die "a boot job was scheduled for the failed build: $n_boot"

step "broken commit: KCIDB and triage"
wait_sql "FAIL build maestro:$FKID" "SELECT count(*) FROM builds WHERE id = 'maestro:$FKID' AND status = 'FAIL'"
wait_sql "incidents of maestro:$FKID" "SELECT count(*) FROM incidents WHERE build_id = 'maestro:$FKID'"
# The issue names the compile error (logspec's kbuild parser found it in the build log).
issue=$(e2e sql "$KCIDB_DB" "SELECT i.comment FROM incidents n JOIN issues i ON i.id = n.issue_id AND i.version = n.issue_version WHERE n.build_id = 'maestro:$FKID' AND i.comment LIKE '%NR_PAGEFLAG%' LIMIT 1" || true)
[ -n "$issue" ] || die "no issue of maestro:$FKID names the compile error (__NR_PAGEFLAG)"
log "  issue:$issue"
origin=$(e2e sql "$KCIDB_DB" "SELECT origin FROM incidents WHERE build_id = 'maestro:$FKID' LIMIT 1")
[ "$origin" = logspec ] || die "the incident's origin is '$origin', expected logspec"

step_end
RESULT=0
