#!/usr/bin/env bash
# rootfs.sh BINARY ROOTFS: lays out a minimal image root file system for one binary:
#   /usr/local/bin/<name>         the binary
#   /entrypoint                   a symlink to it (the image's entrypoint)
#   /lib*, /usr/lib*              the shared libraries `ldd` names (none for a static binary)
#   /etc/passwd, /etc/group       root and nobody (65534)
#   /tmp                          world-writable
# Used by deploy/image (daemonless) and deploy/Dockerfile, so both produce the same layout.
set -euo pipefail
bin=$1 root=$2
[ -x "$bin" ] || { echo "rootfs.sh: $bin is not an executable" >&2; exit 1; }
mkdir -p "$root/usr/local/bin" "$root/etc" "$root/tmp"
chmod 1777 "$root/tmp"
install -m 0755 "$bin" "$root/usr/local/bin/$(basename "$bin")"
ln -sfn "/usr/local/bin/$(basename "$bin")" "$root/entrypoint"
# Dynamic dependencies, at the same paths as on the build machine (the loader included).
if ldd "$bin" >/dev/null 2>&1; then
  ldd "$bin" | grep -oE '/[^ ]+' | sort -u | while read -r lib; do
    [ -e "$lib" ] || continue
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
fi
# Debian's merged /usr: /lib64 -> usr/lib64 etc. Keep the paths the binary asks for real.
printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n' >"$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
