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

exec "$CARGO_TARGET_DIR/release/husk-bench" "$@"
