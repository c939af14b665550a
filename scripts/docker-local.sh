#!/usr/bin/env bash
# A private Docker engine for the docker runtime's tests (specs/real-peers.md §5.1, §5.3).
#
#   scripts/docker-local.sh start   install docker.io if missing, start dockerd on
#                                   unix:///tmp/kernelci-docker/docker.sock (data and exec roots
#                                   under /tmp/kernelci-docker), build local/kernelci-busybox:latest
#                                   from the busybox-static binary (never pulls), write
#                                   /tmp/kernelci-docker/env
#   scripts/docker-local.sh stop    stop that dockerd (only the one started here)
#   scripts/docker-local.sh env     print the env file (`. /tmp/kernelci-docker/env`)
#
# Idempotent: `start` on a running engine only checks it and (re)builds a missing image.
# Needs root (dockerd). Touches no other service: the engine has its own socket, data root,
# exec root and pid file; only the docker0 bridge and iptables chains are system-wide.
set -euo pipefail

W="${KERNELCI_DOCKER_DIR:-/tmp/kernelci-docker}"
SOCK="$W/docker.sock"
HOST="unix://$SOCK"
IMAGE="local/kernelci-busybox:latest"

ping_engine() {
    curl -sf --max-time 2 --unix-socket "$SOCK" http://d/_ping >/dev/null 2>&1
}

install_engine() {
    if [ -x /usr/sbin/dockerd ]; then
        return
    fi
    echo "docker-local: installing docker.io" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends docker.io >&2 ||
        { apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends docker.io >&2; }
}

busybox_bin() {
    for b in /bin/busybox /usr/bin/busybox; do
        if [ -x "$b" ] && ! ldd "$b" >/dev/null 2>&1; then
            echo "$b"
            return
        fi
    done
    if ! dpkg -s busybox-static >/dev/null 2>&1; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends busybox-static >&2
    fi
    echo /bin/busybox
}

build_image() {
    if DOCKER_HOST="$HOST" docker image inspect "$IMAGE" >/dev/null 2>&1; then
        return
    fi
    local r="$W/busybox-fs" bb
    bb="$(busybox_bin)"
    rm -rf "$r"
    mkdir -p "$r/bin" "$r/etc" "$r/tmp" "$r/proc" "$r/sys" "$r/dev" "$r/root"
    chmod 1777 "$r/tmp"
    cp "$bb" "$r/bin/busybox"
    # Every applet busybox has (sh, wget, nc, mkdir, printf, ...).
    for a in $("$r/bin/busybox" --list); do
        [ "$a" = busybox ] || ln -sf busybox "$r/bin/$a"
    done
    echo 'root:x:0:0:root:/root:/bin/sh' >"$r/etc/passwd"
    echo 'nobody:x:65534:65534:nobody:/:/bin/sh' >>"$r/etc/passwd"
    echo 'root:x:0:' >"$r/etc/group"
    echo 'nogroup:x:65534:' >>"$r/etc/group"
    tar -C "$r" -cf "$W/busybox-rootfs.tar" .
    DOCKER_HOST="$HOST" docker import --change 'CMD ["/bin/sh"]' --change 'ENV PATH=/bin' \
        "$W/busybox-rootfs.tar" "$IMAGE" >/dev/null
    echo "docker-local: built $IMAGE" >&2
}

write_env() {
    cat >"$W/env" <<EOF
export KERNELCI_TEST_DOCKER_HOST=$HOST
export KERNELCI_TEST_DOCKER_IMAGE=$IMAGE
EOF
}

start() {
    mkdir -p "$W/docker-root" "$W/docker-exec"
    install_engine
    if ! ping_engine; then
        rm -f "$SOCK"
        # From /: a daemon must not keep the caller's directory (a CI clone deleted later).
        (cd / && exec setsid /usr/sbin/dockerd -H "$HOST" \
            --data-root "$W/docker-root" --exec-root "$W/docker-exec" \
            --pidfile "$W/dockerd.pid" >"$W/dockerd.log" 2>&1 </dev/null) &
        for _ in $(seq 1 300); do
            ping_engine && break
            sleep 0.1
        done
        if ! ping_engine; then
            echo "docker-local: dockerd did not answer on $SOCK; see $W/dockerd.log" >&2
            tail -n 20 "$W/dockerd.log" >&2 || true
            exit 1
        fi
        echo "docker-local: dockerd up on $HOST" >&2
    fi
    build_image
    write_env
    echo "docker-local: ready; run: . $W/env" >&2
}

stop() {
    if [ -f "$W/dockerd.pid" ]; then
        local pid
        pid="$(cat "$W/dockerd.pid")"
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid"
            for _ in $(seq 1 100); do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.1
            done
        fi
        rm -f "$W/dockerd.pid"
    fi
    # The bridge stays behind otherwise (only when no other dockerd uses it).
    if ! pgrep -x dockerd >/dev/null 2>&1; then
        ip link delete docker0 2>/dev/null || true
    fi
    echo "docker-local: stopped" >&2
}

case "${1:-}" in
start) start ;;
stop) stop ;;
env)
    [ -f "$W/env" ] || write_env
    cat "$W/env"
    ;;
*)
    echo "usage: $0 start|stop|env" >&2
    exit 2
    ;;
esac
