#!/usr/bin/env bash
# Benchmarks, one command: builds husk, its shim and the harness in release mode, then runs
# husk-bench (husk vs runc vs crun; the husk shim vs containerd's Go shim). Needs root.
# Usage: sudo bash packaging/bench.sh [SECTION...] [--runs N] [--n N,N,...] [--out DIR] ...
#   sections: all (default), runtime, run, lifecycle, containerd, shim-memory, density,
#             sizes, timeline
#   e.g. sudo bash packaging/bench.sh runtime --runs 5
#        sudo bash packaging/bench.sh density --n 10,50,100,200,500
# The field is fair: husk-bench moves itself into ONE private mount namespace with the hybrid
# host's /sys/fs/cgroup/unified unmounted before it starts anything, so husk, runc and crun
# (which refuses the hybrid layout otherwise), containerd and the shims all run there, with
# no wrapper around any of them and nothing subtracted. The samples are interleaved (husk,
# runc, crun, floors, rotating), each kept with its round and load average.
# --static-shim: bench the shim built static and non-PIE (crt-static, relocation-model=static;
# 2.8 instead of 3.8 MiB RSS and half the private memory per container, see
# docs/performance.md) instead of the default dynamic PIE build; husk stays as built.
# --static-husk: also bench husk built as the .deb builds it (glibc static-pie, libseccomp
# linked in; packaging/deb/build-deb.sh) beside the dynamic build, in the same interleaved
# rounds of the `run` section (row "husk-static-pie"; see HUSK_BENCH_EXTRA in
# tests/src/bin/husk_bench/runtime.rs).
# Raw samples go to $CARGO_TARGET_DIR/bench-results/<time>/ (raw.csv, summary.json,
# summary.md; density.csv for packaging/bench/plot-density.sh, smaps-*.txt, timeline-*.strace).
set -euo pipefail

cd "$(dirname "$0")/.."
REPO=$PWD

if [[ $(id -u) -ne 0 ]]; then
    echo "bench.sh: run as root (containers need namespaces, cgroups, containerd): sudo bash $0" >&2
    exit 1
fi
for d in "${CARGO_HOME:-$HOME/.cargo}/bin" /root/.cargo/bin; do
    [[ -d $d ]] && PATH="$d:$PATH"
done

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target}
# The whole workspace if it builds; else what the runtime rows need (the shim rows then
# print "n/a: ... not found" instead of stopping the run).
if ! cargo build --release --workspace --bins; then
    echo "bench.sh: workspace build failed; building husk and the harness only" >&2
    rm -f "$CARGO_TARGET_DIR/release/containerd-shim-husk-v2"
    cargo build --release -p husk-runtime -p husk-e2e --bins
fi

args=()
static_shim=false
static_husk=false
for a in "$@"; do
    case $a in
        --static-shim) static_shim=true ;;
        --static-husk) static_husk=true ;;
        *) args+=("$a") ;;
    esac
done
if $static_husk; then
    triple=x86_64-unknown-linux-gnu
    LIBSECCOMP_LINK_TYPE=static LIBSECCOMP_LIB_PATH=/usr/lib/x86_64-linux-gnu \
        RUSTFLAGS="-C target-feature=+crt-static" \
        cargo build --release -p husk-runtime --target "$triple" --target-dir "$CARGO_TARGET_DIR/static"
    export HUSK_BENCH_EXTRA="husk-static-pie=$CARGO_TARGET_DIR/static/$triple/release/husk${HUSK_BENCH_EXTRA:+;$HUSK_BENCH_EXTRA}"
fi
if $static_shim; then
    # A separate target dir: RUSTFLAGS apply to every crate, and a target triple keeps them
    # off build scripts and proc macros.
    triple=x86_64-unknown-linux-gnu
    static_dir=$CARGO_TARGET_DIR/v-static-nopie
    RUSTFLAGS="-C target-feature=+crt-static -C relocation-model=static" \
        cargo build --release -p containerd-shim-husk-v2 --target "$triple" --target-dir "$static_dir"
    # husk-bench finds husk and the shim in one directory (HUSK_TARGET_DIR).
    bins=$CARGO_TARGET_DIR/bench-static-shim
    mkdir -p "$bins"
    cp "$CARGO_TARGET_DIR/release/husk" "$static_dir/$triple/release/containerd-shim-husk-v2" "$bins/"
    export HUSK_TARGET_DIR=$bins
fi

exec "$CARGO_TARGET_DIR/release/husk-bench" ${args[@]+"${args[@]}"}
