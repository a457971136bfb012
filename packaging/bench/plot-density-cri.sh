#!/usr/bin/env bash
# Plot the CRI density curves (husk-bench section `density-cri`: N sleeping containers as pods
# of 5, one shim per pod) against the per-container ones (section `density`: `ctr run -d`,
# one shim per container) as one PNG: time until all run and to remove them all, the shims'
# total RSS and PSS, containerd's RSS. Needs gnuplot (Debian: apt-get install gnuplot-nox).
# Usage: bash packaging/bench/plot-density-cri.sh density-cri.csv density.csv docs/density-cri.png
set -euo pipefail

usage="usage: plot-density-cri.sh density-cri.csv density.csv out.png"
cri=${1:?$usage}
ctr=${2:?$usage}
png=${3:?$usage}
command -v gnuplot >/dev/null || { echo "plot-density-cri.sh: gnuplot not found (apt-get install gnuplot-nox)" >&2; exit 1; }
for csv in "$cri" "$ctr"; do
    [[ -s $csv ]] || { echo "plot-density-cri.sh: $csv is empty or missing" >&2; exit 1; }
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# One whitespace-separated data file per source and shim, sorted by N (columns as in the CSV
# minus the name: n start remove shim_rss shim_pss containerd_rss threads).
by_shim() {
    awk -F, -v dir="$work" -v tag="$2" 'NR > 1 {
        name = ($2 ~ /^"husk/) ? "husk" : "go";
        print $1, $3, $4, $5, $6, $7, $8 | ("sort -n > " dir "/" tag "-" name ".dat")
    }' "$1"
}
by_shim "$cri" pod
by_shim "$ctr" ctr

gnuplot <<GP
set terminal pngcairo size 1500,480 font ",10"
set output "$png"
set multiplot layout 1,3 title "N sleeping busybox containers through containerd 1.6: pods of 5 via CRI (solid, one shim per pod) and ctr run -d (dashed, one shim per container)"
set key top left
set grid
set xlabel "containers"
hp = "$work/pod-husk.dat"; gp = "$work/pod-go.dat"; hc = "$work/ctr-husk.dat"; gc = "$work/ctr-go.dat"
set title "time until all run (s)"
plot hp using 1:2 with linespoints lc rgb "#1f77b4" pt 7 title "husk, pods", \
     gp using 1:2 with linespoints lc rgb "#d62728" pt 7 title "Go+runc, pods", \
     hc using 1:2 with linespoints lc rgb "#1f77b4" pt 6 dt 2 title "husk, per container", \
     gc using 1:2 with linespoints lc rgb "#d62728" pt 6 dt 2 title "Go+runc, per container"
set title "all shims together: RSS (o) and PSS (x), MiB, log scale"
set key bottom right
set logscale y
plot hp using 1:4 with linespoints lc rgb "#1f77b4" pt 7 title "husk RSS, pods", \
     hp using 1:5 with linespoints lc rgb "#1f77b4" pt 2 title "husk PSS, pods", \
     gp using 1:4 with linespoints lc rgb "#d62728" pt 7 title "Go RSS, pods", \
     gp using 1:5 with linespoints lc rgb "#d62728" pt 2 title "Go PSS, pods", \
     hc using 1:4 with linespoints lc rgb "#1f77b4" pt 6 dt 2 title "husk RSS, per container", \
     gc using 1:4 with linespoints lc rgb "#d62728" pt 6 dt 2 title "Go RSS, per container"
unset logscale y
set key top left
set title "containerd RSS with all running (MiB)"
plot hp using 1:6 with linespoints lc rgb "#1f77b4" pt 7 title "husk, pods", \
     gp using 1:6 with linespoints lc rgb "#d62728" pt 7 title "Go+runc, pods", \
     hc using 1:6 with linespoints lc rgb "#1f77b4" pt 6 dt 2 title "husk, per container", \
     gc using 1:6 with linespoints lc rgb "#d62728" pt 6 dt 2 title "Go+runc, per container"
unset multiplot
GP
echo "wrote $png"
