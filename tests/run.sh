#!/usr/bin/env bash
# Build husk and run every test: unit, runtime integration and end-to-end (private containerd).
# Needs root (namespaces, cgroups, containerd). Usage: sudo bash tests/run.sh [cargo test args...]
# Environment: RUST_TEST_THREADS (default 2), CARGO_TARGET_DIR (default target/),
# HUSK_SKIP_INSTALL=1 to skip the apt step, HUSK_SKIP_VM=1 to skip the VM (tests/vm/run.sh),
# HUSK_SKIP_DEB=1 to skip building and testing the .deb, HUSK_SKIP_FUZZ=1 to skip the 60 s fuzz pass, HUSK_E2E_KEEP=1 to keep temp dirs for debugging,
# HUSK_TEST_BINARY_TIMEOUT (default 8m) per test binary, HUSK_TEST_TIMEOUT (default 25m) for
# the whole test run. Extra args go to cargo test, e.g.
# `bash tests/run.sh -- --skip husk_under_go_shim` (the whole workspace is always tested).
set -euo pipefail

cd "$(dirname "$0")/.."

PACKAGES=(containerd runc crun podman docker.io catatonit containernetworking-plugins curl util-linux procps busybox-static
    libseccomp-dev pkg-config hyperfine iproute2 ca-certificates gcc libc6-dev
    mmdebstrap qemu-system-x86 e2fsprogs kmod cpio binutils python3
    man-db groff-base bash-completion zsh fish)

log() { printf '== %s: %s\n' "$(date -u +%H:%M:%S)" "$*"; }

if [[ $(id -u) -ne 0 ]]; then
    echo "tests/run.sh: must run as root (namespaces, cgroups, containerd)" >&2
    exit 1
fi

install_packages() {
    local missing=()
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if ((${#missing[@]} == 0)); then
        log "packages already installed"
        return
    fi
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

if [[ ${HUSK_SKIP_INSTALL:-0} != 1 ]]; then
    install_packages
fi

# rustup's toolchain lives in ~/.cargo/bin (root's on this machine), which sudo's PATH lacks.
for d in "${CARGO_HOME:-$HOME/.cargo}/bin" /root/.cargo/bin; do
    [[ -d $d ]] && PATH="$d:$PATH"
done
export PATH
if ! command -v cargo >/dev/null; then
    echo "tests/run.sh: cargo not found (looked on PATH and in ~/.cargo/bin); install a Rust toolchain (rustup) first" >&2
    exit 1
fi

export RUST_TEST_THREADS=${RUST_TEST_THREADS:-2}
export RUST_BACKTRACE=${RUST_BACKTRACE:-1}

start=$SECONDS
log "cargo $(cargo --version | cut -d' ' -f2), building the workspace (debug)"
# The e2e tests drive the husk and shim binaries, which cargo builds for their own package's
# tests only: build them all first.
cargo build --workspace --locked --all-targets
log "build took $((SECONDS - start))s; running tests with RUST_TEST_THREADS=$RUST_TEST_THREADS"

# Shim sockets and ctr's fifo dirs live in shared /run/containerd: count them before and after.
count_entries() { { find "$1" -mindepth 1 -maxdepth 1 2>/dev/null || true; } | wc -l; }
sockets_before=$(count_entries /run/containerd/s)
fifos_before=$(count_entries /run/containerd/fifo)
# The host's cgroup mounts with their superblock options: a superblock remount inside a
# container (a remount without MS_BIND) would turn the host's cgroup2 read-only for everyone.
cgroup_supers() { awk '$9 ~ /^cgroup2?$/ {print $5, $NF}' /proc/self/mountinfo | sort; }
supers_before=$(cgroup_supers)

test_start=$SECONDS
status=0
# A hung test must not eat CI's budget: each test binary runs under tests/test-runner.sh
# (HUSK_TEST_BINARY_TIMEOUT, default 8m), and the whole run gets HUSK_TEST_TIMEOUT (default 25m).
host=$(rustc -vV | sed -n 's/^host: //p')
runner_var="CARGO_TARGET_$(tr 'a-z-' 'A-Z_' <<<"$host")_RUNNER"
export "$runner_var=$PWD/tests/test-runner.sh"
timeout --kill-after=30s "${HUSK_TEST_TIMEOUT:-25m}" \
    cargo test --workspace --locked --no-fail-fast "$@" || status=$?
if ((status == 124)); then
    log "tests timed out after ${HUSK_TEST_TIMEOUT:-25m}"
fi
log "tests took $((SECONDS - test_start))s (total $((SECONDS - start))s), exit status $status"

# The tests clean up after themselves, even when they fail; report anything they missed (on a
# machine where other test runs are going on, their files show up here too).
leftovers=$(
    ls -d /tmp/husk-e2e-* /sys/fs/cgroup/*/husk-test /sys/fs/cgroup/*/ns-* 2>/dev/null
    grep -E 'husk-e2e-' /proc/self/mountinfo | cut -d' ' -f5
    # Processes started from a test's temp dir or a shim binary (not a build naming the shim).
    pgrep -a -f '^[^ ]*containerd-shim-husk-v2( |$)|husk-e2e-(ctrd|bundle|root)-' || true
    sockets_after=$(count_entries /run/containerd/s)
    ((sockets_after > sockets_before)) && echo "$((sockets_after - sockets_before)) new shim sockets in /run/containerd/s"
    fifos_after=$(count_entries /run/containerd/fifo)
    ((fifos_after > fifos_before)) && echo "$((fifos_after - fifos_before)) new fifo dirs in /run/containerd/fifo"
    supers_after=$(cgroup_supers)
    [[ $supers_after == "$supers_before" ]] || diff <(echo "$supers_before") <(echo "$supers_after") |
        sed 's/^/cgroup superblock options changed: /' || true
    true
)
if [[ -n $leftovers ]]; then
    log "WARNING: left behind by the tests:"
    printf '%s\n' "$leftovers"
fi

# The config fuzz pass: 60 s of mutated config.json through parsing and validation (no panics).
if [[ ${HUSK_SKIP_FUZZ:-0} != 1 ]]; then
    log "config fuzz pass (tests/fuzz-config.sh 60)"
    bash tests/fuzz-config.sh 60 2>&1 | grep -E '^(fuzz|test result)|panicked' || status=1
    [[ ${PIPESTATUS[0]} == 0 ]] || status=1
fi

# The real host: a Debian 12 VM with pure cgroup v2 and systemd (docs/vm.md).
if [[ ${HUSK_SKIP_VM:-0} != 1 ]]; then
    vm_start=$SECONDS
    log "the real-host VM (tests/vm/run.sh)"
    bash tests/vm/run.sh || status=1
    log "the VM took $((SECONDS - vm_start))s"
fi

# The package: static binaries in a .deb, installed and used in a clean Debian 12 chroot.
if [[ ${HUSK_SKIP_DEB:-0} != 1 ]]; then
    deb_start=$SECONDS
    log "the .deb (packaging/deb/build-deb.sh, test-deb.sh)"
    if bash packaging/deb/build-deb.sh --out target/deb; then
        bash packaging/deb/test-deb.sh target/deb/husk_*_amd64.deb || status=1
    else
        status=1
    fi
    log "the .deb took $((SECONDS - deb_start))s"
fi
exit "$status"
