#!/bin/bash
# make-initramfs.sh: build the busybox initramfs of specs/real-peers.md §3.3, without root.
#
# Usage: scripts/make-initramfs.sh [--mode reboot|shell] [--gen-init-cpio PATH] OUTPUT.cpio.gz
#
# The archive holds a static /init (compiled here from C with `gcc -static`) that prints
#   BOOT-MARKER: init reached, kernel <release> <machine>, uptime <...>
# and then
#   --mode reboot (default): reboots, which QEMU's -no-reboot turns into an exit (boot tests);
#   --mode shell: execs busybox sh with the prompt "/ # " (interactive tests, LAVA).
# plus /bin/busybox (static, from Debian's busybox-static) with a few applet links and the
# device nodes /dev/console (c 5 1) and /dev/null (c 1 3).
#
# No root needed: the device nodes are never created on disk. The archive is described by a
# gen_init_cpio list (the kernel's usr/gen_init_cpio format: dir/file/slink/nod lines), then
# written by
#   - the kernel's gen_init_cpio, if given with --gen-init-cpio or $GEN_INIT_CPIO (it is built
#     in <kernel build>/usr/gen_init_cpio when CONFIG_BLK_DEV_INITRD=y), or else
#   - a small embedded python3 writer of the same list format (newc cpio, what this script
#     uses by default; mtimes 0 so the archive is reproducible).
# and compressed with gzip -9.
#
# Needs: gcc with static glibc (build-essential), busybox-static (/bin/busybox), gzip,
# python3 (unless gen_init_cpio is used).
set -euo pipefail

mode=reboot
gen_init_cpio="${GEN_INIT_CPIO:-}"
output=""
while [ $# -gt 0 ]; do
    case "$1" in
        --mode) mode="$2"; shift 2 ;;
        --mode=*) mode="${1#--mode=}"; shift ;;
        --gen-init-cpio) gen_init_cpio="$2"; shift 2 ;;
        -h|--help) sed -n '2,26p' "$0"; exit 0 ;;
        -*) echo "make-initramfs.sh: unknown option $1" >&2; exit 2 ;;
        *) output="$1"; shift ;;
    esac
done
if [ -z "$output" ]; then
    echo "usage: make-initramfs.sh [--mode reboot|shell] [--gen-init-cpio PATH] OUTPUT.cpio.gz" >&2
    exit 2
fi
case "$mode" in reboot|shell) ;; *) echo "make-initramfs.sh: --mode must be reboot or shell" >&2; exit 2 ;; esac

busybox="${BUSYBOX:-/bin/busybox}"
for tool in gcc gzip; do
    command -v "$tool" > /dev/null || { echo "make-initramfs.sh: $tool not found" >&2; exit 2; }
done
[ -x "$busybox" ] || { echo "make-initramfs.sh: $busybox not found (apt-get install busybox-static)" >&2; exit 2; }
if ! file_out=$(LC_ALL=C file -L "$busybox" 2>/dev/null) || [[ "$file_out" != *static* ]]; then
    if command -v file > /dev/null; then
        echo "make-initramfs.sh: warning: $busybox does not look statically linked" >&2
    fi
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cat > "$work/init.c" <<'EOF'
/* Minimal PID 1 for a tinyconfig kernel: print a marker, then either reboot
 * (timing mode, when /reboot-after-marker exists) or exec a busybox shell. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/utsname.h>
#include <unistd.h>

int main(void) {
    struct utsname u;
    char up[64] = "?";
    uname(&u);
    mount("proc", "/proc", "proc", 0, NULL);         /* fails harmlessly without PROC_FS */
    mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);  /* fails harmlessly without DEVTMPFS */
    int fd = open("/proc/uptime", O_RDONLY);
    if (fd >= 0) {
        ssize_t n = read(fd, up, sizeof(up) - 1);
        if (n > 0) up[n] = 0;
        close(fd);
    }
    printf("BOOT-MARKER: init reached, kernel %s %s, uptime %s\n", u.release, u.machine, up);
    fflush(stdout);
    if (access("/reboot-after-marker", F_OK) == 0) {  /* timing mode */
        sync();
        reboot(RB_AUTOBOOT);                          /* qemu -no-reboot turns this into an exit */
    }
    setenv("PS1", "/ # ", 1);                         /* shell mode (LAVA interactive tests) */
    setenv("PATH", "/bin:/sbin", 1);
    char *sh[] = {"/bin/sh", NULL};
    execv("/bin/sh", sh);
    perror("execv /bin/sh");
    for (;;) pause();
}
EOF
gcc -static -Os -s -o "$work/init" "$work/init.c"
: > "$work/empty"

{
    for d in /bin /sbin /dev /proc /sys /tmp /etc; do
        echo "dir $d 755 0 0"
    done
    echo "file /init $work/init 755 0 0"
    echo "file /bin/busybox $busybox 755 0 0"
    for a in sh ls cat echo uname mount dmesg reboot poweroff; do
        echo "slink /bin/$a busybox 777 0 0"
    done
    echo "nod /dev/console 600 0 0 c 5 1"
    echo "nod /dev/null 666 0 0 c 1 3"
    if [ "$mode" = reboot ]; then
        echo "file /reboot-after-marker $work/empty 644 0 0"
    fi
} > "$work/cpio.list"

if [ -n "$gen_init_cpio" ]; then
    [ -x "$gen_init_cpio" ] || { echo "make-initramfs.sh: $gen_init_cpio is not executable" >&2; exit 2; }
    "$gen_init_cpio" "$work/cpio.list" > "$work/initramfs.cpio"
    writer="gen_init_cpio ($gen_init_cpio)"
else
    command -v python3 > /dev/null || { echo "make-initramfs.sh: python3 not found (or use --gen-init-cpio)" >&2; exit 2; }
    python3 - "$work/cpio.list" "$work/initramfs.cpio" <<'EOF'
"""Write a newc cpio archive from a gen_init_cpio list (dir, file, slink, nod lines)."""
import os
import stat
import sys

def main(list_path, out_path):
    out = open(out_path, "wb")
    ino = [300000]

    def entry(name, mode, uid, gid, data=b"", nlink=1, rmaj=0, rmin=0):
        ino[0] += 1
        name_b = name.lstrip("/").encode() + b"\0"
        fields = [ino[0], mode, uid, gid, nlink, 0, len(data), 0, 0, rmaj, rmin, len(name_b), 0]
        hdr = b"070701" + b"".join(b"%08X" % f for f in fields)
        out.write(hdr + name_b)
        out.write(b"\0" * (-(len(hdr) + len(name_b)) % 4))
        out.write(data)
        out.write(b"\0" * (-len(data) % 4))

    for line in open(list_path):
        f = line.split()
        if not f or f[0].startswith("#"):
            continue
        kind, name = f[0], f[1]
        if kind == "dir":
            entry(name, stat.S_IFDIR | int(f[2], 8), int(f[3]), int(f[4]), nlink=2)
        elif kind == "file":
            with open(f[2], "rb") as src:
                entry(name, stat.S_IFREG | int(f[3], 8), int(f[4]), int(f[5]), src.read())
        elif kind == "slink":
            entry(name, stat.S_IFLNK | int(f[3], 8), int(f[4]), int(f[5]), f[2].encode())
        elif kind == "nod":
            dev_type = stat.S_IFCHR if f[5] == "c" else stat.S_IFBLK
            entry(name, dev_type | int(f[2], 8), int(f[3]), int(f[4]),
                  rmaj=int(f[6]), rmin=int(f[7]))
        else:
            sys.exit("unsupported cpio list entry: " + line.strip())
    entry("TRAILER!!!", 0, 0, 0, nlink=1)
    out.write(b"\0" * (-out.tell() % 512))
    out.close()

main(sys.argv[1], sys.argv[2])
EOF
    writer="python3 newc writer"
fi

mkdir -p "$(dirname -- "$output")"
gzip -9 -n < "$work/initramfs.cpio" > "$output.tmp"
mv -- "$output.tmp" "$output"
echo "make-initramfs.sh: wrote $output ($mode mode, $(stat -c %s "$output") bytes, $writer)"
