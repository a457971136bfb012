#!/usr/bin/env bash
# Install husk's .deb in a clean Debian 12 rootfs (chroot) and use it as an operator would:
# husk run; containerd + husk-register-containerd + ctr run --runtime io.containerd.husk.v2;
# the man pages and completions are there; an upgrade while a container runs (it keeps
# running, its shim keeps serving); remove leaves only the conffile, purge leaves no file. As root:
#
#   bash packaging/deb/test-deb.sh target/deb/husk_<version>_amd64.deb
#
# The clean rootfs is the VM rig's cached base (tests/vm/run.sh builds it), else mmdebstrap.
# Prints "deb-test: ok|not ok - <name>" lines and exits non-zero if any check failed.
set -euo pipefail
cd "$(dirname "$0")/../.."

deb=${1:?usage: test-deb.sh PATH.deb}
[[ -f $deb ]] || { echo "test-deb.sh: $deb not found" >&2; exit 2; }
[[ $(id -u) -eq 0 ]] || { echo "test-deb.sh: must run as root" >&2; exit 2; }

work=$(mktemp -d /tmp/husk-deb-test.XXXXXX)
# Container ids and cgroup paths are the host's even from the chroot: this run's own, so that
# two runs on one host (parallel CI runs) never share a cgroup.
tag=$$
root=$work/root
ctrd_pid=
failed=0

cleanup() {
    set +e
    [[ -n $ctrd_pid ]] && kill "$ctrd_pid" 2>/dev/null && wait "$ctrd_pid" 2>/dev/null
    # Containers and shims started inside the chroot, then every mount under it, deepest first.
    for pid in $(pgrep -f "$root" 2>/dev/null); do kill -9 "$pid" 2>/dev/null; done
    for pid in $(ls /proc | grep -E '^[0-9]+$'); do
        [[ $(readlink "/proc/$pid/root" 2>/dev/null) == "$root" ]] && kill -9 "$pid" 2>/dev/null
    done
    sleep 0.5
    grep -F " $root" /proc/self/mountinfo | cut -d' ' -f5 | sort -r | xargs -r -n1 umount -l 2>/dev/null
    for cg in /sys/fs/cgroup/*/husk-deb-test; do [[ -d $cg ]] && find "$cg" -depth -type d -exec rmdir {} \; 2>/dev/null; done
    rm -rf "$work"
}
trap cleanup EXIT

check() { # check <name> <command...>
    local name=$1
    shift
    if "$@" >"$work/out" 2>&1; then
        echo "deb-test: ok - $name"
    else
        echo "deb-test: not ok - $name"
        tail -15 "$work/out" | sed 's/^/deb-test:   | /'
        failed=$((failed + 1))
    fi
}

in_root() { chroot "$root" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$@"; }

# ---- the clean rootfs ----
mkdir "$root"
base_tar=$(ls -t /var/cache/husk-vm/base-*/rootfs.tar 2>/dev/null | head -1 || true)
if [[ -n $base_tar ]]; then
    tar -C "$root" -xf "$base_tar"
else
    mmdebstrap --quiet --variant=minbase --include=containerd,busybox-static bookworm "$root" >/dev/null
fi
# The chroot's / must be a mount point, as on a real host: the runtime (husk and runc alike)
# makes / rslave/rprivate in the container's mount namespace, which is EINVAL on a non-mount.
mount --bind "$root" "$root"
mount -t proc proc "$root/proc"
mount --rbind /sys "$root/sys"
mount --make-rslave "$root/sys"
mount --rbind /dev "$root/dev"
mount --make-rslave "$root/dev"
mount -t tmpfs tmpfs "$root/run"
cp "$deb" "$root/tmp/husk.deb"

# A busybox bundle inside the chroot.
bundle=$root/srv/bundle
mkdir -p "$bundle/rootfs/bin"
cp /bin/busybox "$bundle/rootfs/bin/"
ln -s busybox "$bundle/rootfs/bin/sh"
ln -s busybox "$bundle/rootfs/bin/sleep"

installed_files() { in_root dpkg -L husk | while read -r f; do [[ -f $root$f ]] && echo "$f"; done; }

check "dpkg -i installs both static binaries" sh -c \
    "chroot '$root' dpkg -i /tmp/husk.deb && chroot '$root' husk --version && ! readelf -d '$root/usr/bin/husk' | grep NEEDED && ! readelf -d '$root/usr/bin/containerd-shim-husk-v2' | grep NEEDED"
files_before=$(installed_files)

# The man pages and completions the package generated from husk's command table.
docs_installed() {
    local f missing=""
    for f in /usr/share/man/man8/husk.8.gz /usr/share/man/man8/husk-run.8.gz /usr/share/man/man8/husk-kill.8.gz \
        /usr/share/man/man8/containerd-shim-husk-v2.8.gz /usr/share/bash-completion/completions/husk \
        /usr/share/zsh/vendor-completions/_husk /usr/share/fish/vendor_completions.d/husk.fish; do
        [[ -s $root$f ]] && grep -qxF "$f" <<<"$files_before" || missing="$missing $f"
    done
    [[ -z $missing ]] || { echo "not installed (or not the package's):$missing"; return 1; }
    # Every command has its page, and the bash completion loads and offers kill's flags.
    local cmd
    for cmd in $(in_root husk --help | sed -n '/^COMMANDS:/,/^$/p' | awk 'NR > 1 && $1 != "help," {print $1}'); do
        [[ -s $root/usr/share/man/man8/husk-$cmd.8.gz ]] || missing="$missing husk-$cmd.8.gz"
    done
    [[ -z $missing ]] || { echo "no page for:$missing"; return 1; }
    in_root bash -c 'source /usr/share/bash-completion/completions/husk
        COMP_WORDS=(husk kill --); COMP_CWORD=2; _husk; [[ " ${COMPREPLY[*]} " == *" --all "* ]]'
}
check "man pages and bash/zsh/fish completions are installed" docs_installed

husk_run() {
    in_root sh -c 'cd /srv/bundle && rm -f config.json && husk spec' || return 1
    python3 - "$bundle/config.json" "$tag" <<'PY' || return 1
import json, sys
path = sys.argv[1]
config = json.load(open(path))
config["process"]["terminal"] = False
config["process"]["args"] = ["sh", "-c", "echo hello-from-deb"]
config["linux"]["cgroupsPath"] = "/husk-deb-test/run-" + sys.argv[2]
json.dump(config, open(path, "w"))
PY
    local out
    out=$(in_root husk run --bundle /srv/bundle "deb-run-$tag") || return 1
    [[ $out == *hello-from-deb* ]] || { echo "output: $out"; return 1; }
}
check "husk run from the package" husk_run

start_containerd() {
    in_root husk-register-containerd >/dev/null || return 1
    grep -q 'runtimes.husk' "$root/etc/containerd/config.toml" || return 1
    in_root containerd >"$work/containerd.log" 2>&1 &
    ctrd_pid=$!
    for _ in $(seq 100); do in_root ctr version >/dev/null 2>&1 && return 0; sleep 0.1; done
    tail -5 "$work/containerd.log"
    return 1
}
check "husk-register-containerd, then containerd starts" start_containerd
check "the CRI plugin is loaded" sh -c "chroot '$root' ctr plugins ls | grep -E 'io.containerd.grpc.v1 +cri +.* ok'"

ctr_run() {
    local out
    out=$(in_root ctr run --rm --runtime io.containerd.husk.v2 --env PATH=/bin --rootfs /srv/bundle/rootfs \
        "deb-ctr-$tag" sh -c 'echo hello-from-shim')
    [[ $out == *hello-from-shim* ]] || { echo "output: $out"; return 1; }
}
check "ctr run --runtime io.containerd.husk.v2" ctr_run

upgrade_keeps_running() {
    in_root ctr run -d --runtime io.containerd.husk.v2 --env PATH=/bin --rootfs /srv/bundle/rootfs \
        "deb-long-$tag" sleep 300 || return 1
    # The same package with a higher version, as an upgrade.
    local repack=$work/repack
    dpkg-deb -R "$deb" "$repack"
    sed -i 's/^Version: \(.*\)/Version: \1+upgrade1/' "$repack/DEBIAN/control"
    dpkg-deb --root-owner-group --build "$repack" "$root/tmp/husk-upgrade.deb" >/dev/null
    in_root dpkg -i /tmp/husk-upgrade.deb || return 1
    in_root ctr task ls | grep -E "^deb-long-$tag +[0-9]+ +RUNNING" || return 1
    in_root ctr task exec --exec-id probe "deb-long-$tag" sh -c 'echo still-served' | grep -q still-served || return 1
    in_root ctr task kill -s KILL "deb-long-$tag"
    sleep 0.5
    in_root ctr task delete "deb-long-$tag" && in_root ctr container delete "deb-long-$tag"
}
check "upgrade while a container runs: it keeps running and its shim keeps serving" upgrade_keeps_running

left_behind() { # left_behind FILE...: the ones still in the chroot
    local f
    for f in "$@"; do [[ -e $root$f ]] && echo -n " $f"; done
    true
}

# remove: every file but the conffile goes (binaries, man pages, completions); purge: that too.
remove_leaves_only_the_conffile() {
    in_root dpkg --remove husk || return 1
    local left
    left=$(left_behind $(grep -vxF /etc/containerd/husk-options.toml <<<"$files_before"))
    [[ -z $left ]] || { echo "left behind:$left"; return 1; }
    [[ -e $root/etc/containerd/husk-options.toml ]] || { echo "remove took the conffile too"; return 1; }
}
check "dpkg --remove leaves no file but the conffile (man pages and completions included)" \
    remove_leaves_only_the_conffile

purge_leaves_nothing() {
    in_root dpkg --purge husk || return 1
    local left
    left=$(left_behind $files_before /etc/containerd/husk-options.toml)
    [[ -z $left ]] || { echo "left behind:$left"; return 1; }
}
check "dpkg --purge leaves no file of the package" purge_leaves_nothing

echo "deb-test: $([[ $failed == 0 ]] && echo all checks passed || echo "$failed checks failed")"
exit $((failed > 0))
