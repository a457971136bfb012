#!/usr/bin/env bash
# Plot the density curves from husk-bench's density.csv (section `density`) as one PNG:
# time until all containers run and to remove them all, the shims' total RSS and PSS, and
# containerd's RSS, against the number of sleeping containers, for husk shim + husk and
# Go shim + runc. Needs gnuplot (Debian: apt-get install gnuplot-nox).
# Usage: bash packaging/bench/plot-density.sh RESULTS_DIR/density.csv docs/density.png
set -euo pipefail

csv=${1:?usage: plot-density.sh density.csv out.png}
png=${2:?usage: plot-density.sh density.csv out.png}
command -v gnuplot >/dev/null || { echo "plot-density.sh: gnuplot not found (apt-get install gnuplot-nox)" >&2; exit 1; }
[[ -s $csv ]] || { echo "plot-density.sh: $csv is empty or missing" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# One whitespace-separated data file per shim, sorted by N (columns as in density.csv
# minus the name: n start remove shim_rss shim_pss containerd_rss threads).
awk -F, -v dir="$work" 'NR > 1 {
    name = ($2 ~ /^"husk/) ? "husk" : "go";
    print $1, $3, $4, $5, $6, $7, $8 | ("sort -n > " dir "/" name ".dat")
}' "$csv"

gnuplot <<GP
set terminal pngcairo size 1500,450 font ",10"
set output "$png"
set multiplot layout 1,3 title "density: N sleeping busybox containers through containerd 1.6 (ctr run -d, 4 in parallel)"
set key top left
set grid
set xlabel "containers"
h = "$work/husk.dat"; g = "$work/go.dat"
set title "time (s)"
plot h using 1:2 with linespoints lc rgb "#1f77b4" pt 7 title "husk: all running", \
     h using 1:3 with linespoints lc rgb "#1f77b4" pt 4 dt 2 title "husk: all removed", \
     g using 1:2 with linespoints lc rgb "#d62728" pt 7 title "Go+runc: all running", \
     g using 1:3 with linespoints lc rgb "#d62728" pt 4 dt 2 title "Go+runc: all removed"
set title "all shims together (MiB)"
plot h using 1:4 with linespoints lc rgb "#1f77b4" pt 7 title "husk shims RSS", \
     h using 1:5 with linespoints lc rgb "#1f77b4" pt 4 dt 2 title "husk shims PSS", \
     g using 1:4 with linespoints lc rgb "#d62728" pt 7 title "Go shims RSS", \
     g using 1:5 with linespoints lc rgb "#d62728" pt 4 dt 2 title "Go shims PSS"
set title "containerd RSS with all running (MiB)"
plot h using 1:6 with linespoints lc rgb "#1f77b4" pt 7 title "with husk shims", \
     g using 1:6 with linespoints lc rgb "#d62728" pt 7 title "with Go shims"
unset multiplot
GP
echo "wrote $png"
