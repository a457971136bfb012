#!/usr/bin/env bash
# Try husk on a fresh Debian 12, as root: installs the packages, builds husk (release),
# runs a busybox container with `husk run`, then the same through a private containerd
# with the husk shim. Leaves nothing behind but the build in target/.
# Usage: sudo bash packaging/try-husk.sh
set -euo pipefail

cd "$(dirname "$0")/.."
REPO=$PWD

step() { printf '\n== %s\n' "$*"; }

if [[ $(id -u) -ne 0 ]]; then
    echo "try-husk.sh: run as root (containers need namespaces and cgroups): sudo bash $0" >&2
    exit 1
fi

step "installing Debian packages"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
    containerd runc busybox-static libseccomp-dev pkg-config ca-certificates gcc libc6-dev >/dev/null

for d in "${CARGO_HOME:-$HOME/.cargo}/bin" /root/.cargo/bin; do
    [[ -d $d ]] && PATH="$d:$PATH"
done
if ! command -v cargo >/dev/null; then
    echo "try-husk.sh: cargo not found: install a Rust toolchain first (https://rustup.rs or apt-get install cargo)" >&2
    exit 1
fi

step "building husk (release)"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target}
cargo build --release --locked -p husk-runtime -p containerd-shim-husk-v2
BIN=$CARGO_TARGET_DIR/release
HUSK=$BIN/husk

WORK=$(mktemp -d /tmp/try-husk.XXXXXX)
CTRD_PID=
cleanup() {
    set +e
    "$HUSK" --root "$WORK/state" delete --force try-husk >/dev/null 2>&1
    if [[ -n $CTRD_PID ]]; then
        ctr --address "$WORK/ctrd/c.sock" -n try tasks delete -f try-husk-ctr >/dev/null 2>&1
        ctr --address "$WORK/ctrd/c.sock" -n try containers delete try-husk-ctr >/dev/null 2>&1
        kill "$CTRD_PID" 2>/dev/null
        wait "$CTRD_PID" 2>/dev/null
    fi
    # Lazily unmount whatever is still mounted below the work dir, deepest first.
    awk -v w="$WORK" '$5 == w || index($5, w "/") == 1 { print $5 }' /proc/self/mountinfo |
        sort -r | while read -r m; do umount -l "$m"; done
    # Cgroups and the shims' runtime roots (/run/containerd/<runtime>/<namespace>) that
    # outlive their containers; rmdir only removes them when empty.
    for d in /sys/fs/cgroup/*/try-husk /sys/fs/cgroup/*/try/try-husk-ctr /sys/fs/cgroup/*/try /run/containerd/*/try; do
        [[ -d $d ]] && rmdir "$d" 2>/dev/null
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

step "making a busybox bundle in $WORK/bundle"
ROOTFS=$WORK/bundle/rootfs
mkdir -p "$ROOTFS"/{bin,dev,etc,proc,sys,tmp,root}
cp /bin/busybox "$ROOTFS/bin/busybox"
for applet in $(/bin/busybox --list); do
    [[ $applet == busybox || $applet == */* ]] || ln -s busybox "$ROOTFS/bin/$applet"
done
echo 'root:x:0:0:root:/root:/bin/sh' >"$ROOTFS/etc/passwd"
echo 'root:x:0:' >"$ROOTFS/etc/group"

# runc's default spec (`runc spec`), not a terminal, with our own command and hostname.
cat >"$WORK/bundle/config.json" <<'JSON'
{
  "ociVersion": "1.0.2",
  "process": {
    "terminal": false,
    "user": { "uid": 0, "gid": 0 },
    "args": ["sh", "-c", "echo hello from husk; echo \"hostname: $(uname -n)\"; echo \"pid: $$\""],
    "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
    "cwd": "/",
    "capabilities": {
      "bounding": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
      "effective": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
      "permitted": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
      "ambient": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    },
    "rlimits": [{ "type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024 }],
    "noNewPrivileges": true
  },
  "root": { "path": "rootfs", "readonly": true },
  "hostname": "try-husk",
  "mounts": [
    { "destination": "/proc", "type": "proc", "source": "proc" },
    { "destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"] },
    { "destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"] },
    { "destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"] },
    { "destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"] },
    { "destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"] },
    { "destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"] }
  ],
  "linux": {
    "cgroupsPath": "/try-husk",
    "resources": { "devices": [{ "allow": false, "access": "rwm" }] },
    "namespaces": [{ "type": "pid" }, { "type": "network" }, { "type": "ipc" }, { "type": "uts" }, { "type": "mount" }],
    "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
                    "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
    "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
  }
}
JSON

step "husk run (the runc-compatible CLI)"
"$HUSK" --root "$WORK/state" run --bundle "$WORK/bundle" try-husk

# ---------------------------------------------------------------------------------------------
# Through containerd: a private containerd (own socket, root and state in $WORK, so a system
# containerd is not touched) finds containerd-shim-husk-v2 on its PATH for the runtime name
# io.containerd.husk.v2. Set TRY_RUNTIME=io.containerd.runc.v2 to compare with runc's Go shim.
# ---------------------------------------------------------------------------------------------
RUNTIME=${TRY_RUNTIME:-io.containerd.husk.v2}
step "ctr run --runtime $RUNTIME (private containerd)"
mkdir -p "$WORK/ctrd"
cat >"$WORK/ctrd/config.toml" <<TOML
version = 2
root = "$WORK/ctrd/root"
state = "$WORK/ctrd/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$WORK/ctrd/c.sock"
[ttrpc]
  address = "$WORK/ctrd/c.sock.ttrpc"
TOML
PATH="$BIN:$PATH" containerd --config "$WORK/ctrd/config.toml" >"$WORK/ctrd/log" 2>&1 &
CTRD_PID=$!
for _ in $(seq 100); do
    ctr --address "$WORK/ctrd/c.sock" version >/dev/null 2>&1 && break
    sleep 0.1
done
# --rootfs runs the bundle's rootfs directly (no image, no network); it is a flag and the
# rootfs path is then the first positional argument. Without an image nothing sets PATH.
ctr --address "$WORK/ctrd/c.sock" -n try run --rm --runtime "$RUNTIME" \
    --env PATH=/usr/sbin:/usr/bin:/sbin:/bin --rootfs "$ROOTFS" try-husk-ctr \
    sh -c 'echo hello from husk via containerd; echo "hostname: $(uname -n)"' ||
    { echo "ctr run failed; containerd log:" >&2; tail -30 "$WORK/ctrd/log" >&2; exit 1; }

step "done"
