#!/bin/sh
# Runs a command the way a container engine would run an image's process, without an engine:
# in a private mount namespace (start it with `unshare -m`), chrooted into a fresh root whose
# /usr, /etc and friends are the host's, read-only; at the application path only what the
# image's COPY instructions put there (SANDBOX_COPY, paths relative to SANDBOX_APP; copied and
# owned by root like the image's, except node_modules, which is bound read-only); tmpfs on /tmp
# and on every volume; then the image's USER, no new privileges, no capabilities, and only the
# image's environment.
#
#   SANDBOX_ROOT=<empty dir> SANDBOX_APP=<repo> SANDBOX_APP_PATH=/app SANDBOX_WORKDIR=/app \
#   SANDBOX_COPY="package.json bin server …" SANDBOX_USER=10001:10001 SANDBOX_VOLUMES="/var/lib/x" \
#   unshare -m sh container-sandbox.sh KEY=VALUE… command args…
#
# Every step execs the next, so the PID the caller holds ends up being the command's own
# (signals sent to it reach the image's ENTRYPOINT directly). Root is needed for the mounts.
set -eu
root=$SANDBOX_ROOT
uid=${SANDBOX_USER%%:*}
gid=${SANDBOX_USER##*:}
mount -t tmpfs -o mode=0755 sandbox-root "$root"
for d in usr etc bin sbin lib lib32 lib64 libx32; do
  if [ -L "/$d" ]; then
    ln -s "$(readlink "/$d")" "$root/$d"
  elif [ -d "/$d" ]; then
    mkdir "$root/$d"
    mount --rbind "/$d" "$root/$d"
    mount -o remount,bind,ro "$root/$d"
  fi
done
mkdir -p "$root/dev" "$root/proc" "$root/tmp" "$root$SANDBOX_APP_PATH"
mount --rbind /dev "$root/dev"
mount --rbind /proc "$root/proc"
mount -t tmpfs -o mode=1777 sandbox-tmp "$root/tmp"
for v in ${SANDBOX_VOLUMES:-}; do
  mkdir -p "$root$v"
  mount -t tmpfs -o "mode=0700,uid=$uid,gid=$gid" sandbox-volume "$root$v"
done
app="$root$SANDBOX_APP_PATH"
for path in $SANDBOX_COPY; do
  mkdir -p "$(dirname "$app/$path")"
  if [ "$path" = node_modules ]; then
    mkdir "$app/node_modules"
    mount --bind "$SANDBOX_APP/node_modules" "$app/node_modules"
    mount -o remount,bind,ro "$app/node_modules"
  else
    cp -R "$SANDBOX_APP/$path" "$app/$path"
  fi
done
# As COPY leaves them: root's, readable by all, writable by no one else.
find "$app" -path "$app/node_modules" -prune -o -exec chown 0:0 {} + -exec chmod u+rwX,go+rX,go-w {} +
mount -o remount,ro "$root"
# The leading KEY=VALUE words become the process's whole environment.
exec chroot "$root" /usr/bin/setpriv --reuid="$uid" --regid="$gid" --clear-groups --no-new-privs \
  --bounding-set=-all --inh-caps=-all -- /usr/bin/env -i --chdir="$SANDBOX_WORKDIR" "$@"
