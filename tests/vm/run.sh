#!/usr/bin/env bash
# The real-host rig: boots a Debian 12 VM (pure cgroup v2, systemd 252, Debian's containerd
# and runc) under qemu, runs tests/vm/guest/run-tests.sh in it on husk and on runc / the Go
# shim (the controls), and prints the guest's results. One command, as root:
#
#   bash tests/vm/run.sh [--bin-dir DIR] [--cgroup v2|v1]
#
# DIR has husk, containerd-shim-husk-v2 and husk-vm-cri (default target/debug). --cgroup v1 boots
# the same image with systemd.unified_cgroup_hierarchy=0 (v1 controllers under systemd) and runs
# the checks that make sense there (not in CI).
#
# Environment: HUSK_VM_CACHE (default /var/cache/husk-vm: the base image, rebuilt only when this
# script's base recipe changes), HUSK_VM_TIMEOUT (default 1800 s for the boot and the tests),
# HUSK_VM_KEEP=1 keeps the work dir, HUSK_VM_BENCH=1 adds the CLONE_INTO_CGROUP benchmark. Exit status: 0 when every guest test passed, 1 otherwise,
# 2 when the rig itself failed (no image, no boot, no result): it never skips silently.
set -euo pipefail
cd "$(dirname "$0")/../.."

bin_dir=target/debug
cgroup=v2
while (($#)); do
    case $1 in
    --bin-dir) bin_dir=${2:?--bin-dir needs a directory}; shift 2 ;;
    --cgroup) cgroup=${2:?--cgroup needs v2 or v1}; shift 2 ;;
    -h | --help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "tests/vm/run.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done

log() { printf '== vm %s: %s\n' "$(date -u +%H:%M:%S)" "$*"; }
die() {
    echo "tests/vm/run.sh: $*" >&2
    exit 2
}

[[ $(id -u) -eq 0 ]] || die "must run as root"
case $cgroup in
v2) cmdline_cgroup= ;;
# systemd 252 still boots legacy/hybrid on request; SYSTEMD_CGROUP_ENABLE_LEGACY_FORCE is 256+.
v1) cmdline_cgroup=" systemd.unified_cgroup_hierarchy=0" ;;
*) die "--cgroup must be v2 or v1, not $cgroup" ;;
esac
for b in husk containerd-shim-husk-v2 husk-vm-cri; do
    [[ -x $bin_dir/$b ]] || die "$bin_dir/$b missing: build the workspace first"
done

HOST_PACKAGES=(mmdebstrap qemu-system-x86 e2fsprogs kmod cpio busybox-static)
missing=()
for p in "${HOST_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; } ||
        die "cannot install ${missing[*]}"
fi

# ---- The base image: Debian 12 rootfs, the cloud kernel and a tiny initramfs (cached) ----
# curl (with nghttp2) carries husk-vm-cri's CRI calls: gRPC over HTTP/2 on the unix socket.
GUEST_PACKAGES=systemd,systemd-sysv,udev,kmod,dbus,containerd,runc,iproute2,procps,busybox-static,libseccomp2,curl
KERNEL_META=linux-image-cloud-amd64
# The host's own Debian mirror (deb822 sources first, then sources.list).
mirror=$(sed -n 's/^URIs: *\([^ ]*\).*/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -v security | head -1)
[[ -n $mirror ]] || mirror=$(awk '$1 == "deb" && $0 !~ /security/ { print $2; exit }' /etc/apt/sources.list 2>/dev/null)
mirror=${mirror:-http://deb.debian.org/debian}

cache=${HUSK_VM_CACHE:-/var/cache/husk-vm}
recipe_hash=$(sed -n '/^# ---- The base image/,/^# ---- end of base image/p' "$0" | sha256sum | cut -c1-12)
base=$cache/base-$recipe_hash

build_initramfs() {
    local out=$1 modules=$2 kver=$3 dir
    dir=$(mktemp -d)
    mkdir -p "$dir"/{bin,dev,proc,sys,newroot,lib/modules}
    cp /bin/busybox "$dir/bin/busybox"
    for m in virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_blk; do
        find "$modules/$kver" -name "$m.ko" -exec cp {} "$dir/lib/modules/" \;
        [[ -f $dir/lib/modules/$m.ko ]] || die "kernel module $m.ko not found in $kver"
    done
    cp tests/vm/initramfs-init "$dir/init"
    chmod 0755 "$dir/init"
    (cd "$dir" && find . | cpio -o -H newc --quiet | gzip -1) >"$out"
    rm -rf "$dir"
}

build_base() {
    local tmp kdeb kver
    tmp=$(mktemp -d "$cache/build.XXXXXX")
    log "building the base image in $tmp (mirror $mirror)"
    mmdebstrap --quiet --variant=minbase --include="$GUEST_PACKAGES" bookworm "$tmp/rootfs.tar" \
        "deb $mirror bookworm main" "deb $mirror bookworm-updates main" ||
        die "mmdebstrap failed"
    (cd "$tmp" && apt-get download -q "$KERNEL_META" >/dev/null 2>&1) || die "apt-get download $KERNEL_META failed"
    kdeb=$(dpkg-deb -f "$tmp"/"$KERNEL_META"_*.deb Depends | sed -n 's/^\(linux-image-[^ ]*\).*/\1/p')
    [[ -n $kdeb ]] || die "cannot tell the kernel package $KERNEL_META depends on"
    (cd "$tmp" && apt-get download -q "$kdeb" >/dev/null 2>&1) || die "apt-get download $kdeb failed"
    mkdir "$tmp/kernel"
    dpkg-deb -x "$tmp"/"$kdeb"_*.deb "$tmp/kernel"
    kver=$(ls "$tmp/kernel/lib/modules")
    cp "$tmp/kernel/boot/vmlinuz-$kver" "$tmp/vmlinuz"
    mv "$tmp/kernel/lib/modules" "$tmp/modules"
    build_initramfs "$tmp/initrd.img" "$tmp/modules" "$kver"
    echo "$kver" >"$tmp/kver"
    rm -rf "$tmp/kernel" "$tmp"/*.deb
    rm -rf "$base"
    mv "$tmp" "$base"
}
# ---- end of base image ----

mkdir -p "$cache"
if [[ ! -f $base/kver ]]; then
    build_base
else
    log "base image cached: $base"
fi
kver=$(cat "$base/kver")

# ---- The disk: base rootfs + modules + the project's binaries and guest tests ----
work=$(mktemp -d /tmp/husk-vm.XXXXXX)
cleanup() { [[ ${HUSK_VM_KEEP:-0} == 1 ]] && log "kept $work" || rm -rf "$work"; }
trap cleanup EXIT
root=$work/root
mkdir "$root"
tar -C "$root" -xf "$base/rootfs.tar"
mkdir -p "$root/lib/modules"
cp -a "$base/modules/$kver" "$root/lib/modules/"
depmod -b "$root" "$kver"
install -m 0755 "$bin_dir/husk" "$bin_dir/containerd-shim-husk-v2" "$bin_dir/husk-vm-cri" "$root/usr/local/bin/"
mkdir -p "$root/opt/husk"
cp tests/vm/guest/*.sh "$root/opt/husk/"
# The CRI checks: the operator's registration files, and the pause and busybox images built
# here (the guest never pulls).
mkdir -p "$root/opt/husk/packaging"
cp packaging/containerd/register-husk.sh packaging/containerd/husk-options.toml "$root/opt/husk/packaging/"
"$bin_dir/husk-vm-cri" images "$root/opt/husk/images" || die "cannot build the CRI images"
printf 'HUSK_VM_BENCH=%s\n' "${HUSK_VM_BENCH:-0}" >"$root/opt/husk/env"
chmod 0755 "$root/opt/husk/run-tests.sh"
install -m 0644 tests/vm/guest/husk-vm-tests.service "$root/etc/systemd/system/"
ln -sf /etc/systemd/system/husk-vm-tests.service "$root/etc/systemd/system/multi-user.target.wants/"
# The serial getty would hang up the console the tests write to.
ln -sf /dev/null "$root/etc/systemd/system/serial-getty@ttyS0.service"
echo husk-vm >"$root/etc/hostname"
# mmdebstrap's minbase has no /etc/hosts; CRI copies the node's into every pod sandbox and
# fails RunPodSandbox without one ("open /etc/hosts: no such file or directory").
printf '127.0.0.1\tlocalhost\n127.0.1.1\thusk-vm\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"
# The containers' rootfs: busybox-static and its applets.
rootfs=$root/opt/husk/rootfs
mkdir -p "$rootfs"/{bin,proc,sys,dev,tmp,etc}
cp /bin/busybox "$rootfs/bin/busybox"
for applet in $(/bin/busybox --list); do
    [[ $applet == busybox ]] || ln -sf busybox "$rootfs/bin/$applet"
done
printf 'root:x:0:0:root:/:/bin/sh\n' >"$rootfs/etc/passwd"
printf 'root:x:0:\n' >"$rootfs/etc/group"
mkfs.ext4 -q -F -L husk-vm -d "$root" "$work/disk.img" 2G || die "mkfs.ext4 failed"
rm -rf "$root"

# ---- Boot ----
log "booting (kernel $kver, TCG, cgroup $cgroup)"
console=$work/console.log
status=0
timeout --kill-after=10s "${HUSK_VM_TIMEOUT:-1800}" \
    qemu-system-x86_64 -accel tcg -cpu max -m 2048 -smp 2 -nographic -no-reboot \
    -kernel "$base/vmlinuz" -initrd "$base/initrd.img" \
    -drive file="$work/disk.img",format=raw,if=virtio \
    -append "console=ttyS0 quiet panic=-1 systemd.show_status=0$cmdline_cgroup" \
    </dev/null >"$console" 2>&1 || status=$?
log "qemu exited with status $status after ${SECONDS}s"

grep -a '^vm-\(test\|bench\|time\): ' "$console" | tr -d '\r' || true
summary=$(grep -a '^vm-summary: ' "$console" | tr -d '\r' | tail -1 || true)
if [[ -z $summary ]]; then
    echo "tests/vm/run.sh: no result from the guest; the console's last lines:" >&2
    tail -40 "$console" | tr -d '\r' >&2
    exit 2
fi
echo "$summary"
failed=$(sed -n 's/.* \([0-9]*\) failed.*/\1/p' <<<"$summary")
[[ $failed == 0 ]]
