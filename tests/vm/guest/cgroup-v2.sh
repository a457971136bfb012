# Sourced by run-tests.sh: the cgroup v2 checks of issue 12 (items 3 and 4). Every function
# takes the runtime (runc or husk; a containerd runtime name for the ctr checks) and runs the
# same container on both; the caller compares. Uses run-tests.sh's bundle, expect_file, unit_gone.

# Every v2 limit husk and runc know, for the limits check. The swap limit is memory+swap (so
# memory.swap.max is 32 MiB), the blkio weight 500 is io.weight 4950 (or io.bfq.weight 500),
# shares 512 are cpu.weight 20. VDA is the guest disk's major:minor, for io.max.
VDA=$(cat /sys/block/vda/dev 2>/dev/null || echo 254:0)
FULL_LIMITS='{"memory": {"limit": 67108864, "swap": 100663296, "reservation": 33554432},
  "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"},
  "pids": {"limit": 32},
  "blockIO": {"weight": 500, "throttleReadBpsDevice": [{"major": '${VDA%:*}', "minor": '${VDA#*:}', "rate": 1048576}]},
  "hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}],
  "unified": {"memory.high": "50331648"},
  "devices": [{"allow": false, "access": "rwm"}]}'
LIMIT_FILES="memory.max memory.swap.max memory.low memory.high cpu.weight cpu.max cpuset.cpus cpuset.mems
  pids.max io.weight io.bfq.weight io.max hugetlb.2MB.max"

# path_for <driver> <id>: the cgroupsPath; cgroup_dir <driver> <id>: its directory.
path_for() { [[ $1 == systemd ]] && echo "system.slice:husk-vm:$2" || echo "/husk-vm/$2"; }
cgroup_dir() {
    [[ $1 == systemd ]] && echo "/sys/fs/cgroup/system.slice/husk-vm-$2.scope" || echo "/sys/fs/cgroup/husk-vm/$2"
}

# Every limit lands in its file with either driver; pause and resume freeze and thaw;
# `events --stats` reports the pids and the memory limit. The files' contents are kept in
# $WORK/limits-<driver>-<rt> so that husk's can be compared with runc's.
limits_pause_stats() {
    local rt=$1 driver=$2 id=$1-lim-$2 rc=0 f stats dir
    dir=$(cgroup_dir "$driver" "$id")
    local flag=()
    [[ $driver == systemd ]] && flag=(--systemd-cgroup)
    bundle "$WORK/$id" "$(path_for "$driver" "$id")" "$FULL_LIMITS" "$SLEEP"
    "$rt" "${flag[@]}" run -d --bundle "$WORK/$id" "$id" || return 1
    for f in $LIMIT_FILES; do
        echo "$f=$(tr '\n' ' ' <"$dir/$f" 2>/dev/null || echo '<none>')"
    done >"$WORK/limits-$driver-$rt"
    cat "$WORK/limits-$driver-$rt"
    expect_file "$dir/memory.max" 67108864 && expect_file "$dir/memory.swap.max" 33554432 &&
        expect_file "$dir/memory.low" 33554432 && expect_file "$dir/memory.high" 50331648 &&
        expect_file "$dir/cpu.weight" 20 && expect_file "$dir/cpu.max" "50000 100000" &&
        expect_file "$dir/cpuset.cpus" 0 && expect_file "$dir/cpuset.mems" 0 && expect_file "$dir/pids.max" 32 &&
        expect_file "$dir/hugetlb.2MB.max" 4194304 || rc=1
    grep -q "^$VDA rbps=1048576 " "$dir/io.max" || { echo "io.max: $(cat "$dir/io.max")"; rc=1; }
    "$rt" "${flag[@]}" pause "$id" && expect_file "$dir/cgroup.freeze" 1 &&
        grep -q '"status": "paused"' <("$rt" "${flag[@]}" state "$id") || { echo "pause"; rc=1; }
    "$rt" "${flag[@]}" resume "$id" && expect_file "$dir/cgroup.freeze" 0 &&
        grep -q '"status": "running"' <("$rt" "${flag[@]}" state "$id") || { echo "resume"; rc=1; }
    stats=$("$rt" "${flag[@]}" events --stats "$id" | tr -d ' \n')
    grep -q '"pids":{"current":1,"limit":32}' <<<"$stats" && grep -q '"usage":{[^}]*"limit":67108864' <<<"$stats" &&
        grep -q '"cpu":{"usage":{"total":[1-9]' <<<"$stats" || { echo "events --stats: $stats"; rc=1; }
    "$rt" "${flag[@]}" delete -f "$id" || rc=1
    [[ $driver == systemd ]] && { unit_gone "husk-vm-$id.scope" "$dir" || rc=1; }
    [[ ! -d $dir ]] || { echo "$dir left behind"; rc=1; }
    return $rc
}

# husk's files hold exactly what runc's do (io.weight / io.bfq.weight included).
same_limits_as_runc() {
    diff "$WORK/limits-$1-runc" "$WORK/limits-$1-husk"
}

# `kill --all KILL` ends every process of the container: orphaned grandchildren, and one
# the host moved into a nested cgroup. husk writes cgroup.kill (v2, kernel 5.14+), runc 1.1
# freezes and walks the pids: the outcome must be the same.
kill_all_ends_every_process() {
    local rt=$1 id=$1-killall dir=/sys/fs/cgroup/husk-vm/$1-killall rc=0 n=0 pid
    bundle "$WORK/$id" "/husk-vm/$id" '{"pids": {"limit": 64}}' \
        '["sh", "-c", "for i in 1 2 3; do (sleep 600 &); done; sleep 600 & sleep 600 & wait"]'
    "$rt" run -d --bundle "$WORK/$id" "$id" || return 1
    while (($(wc -l <"$dir/cgroup.procs") < 6 && n++ < 50)); do sleep 0.1; done
    pid=$(tail -1 "$dir/cgroup.procs")
    mkdir "$dir/nested" && echo "$pid" >"$dir/nested/cgroup.procs" || rc=1
    echo "before: $(cat "$dir/cgroup.procs" | wc -l) + $(cat "$dir/nested/cgroup.procs" | wc -l) nested"
    "$rt" kill --all "$id" KILL || rc=1
    n=0
    while ! grep -q "populated 0" "$dir/cgroup.events" && ((n++ < 30)); do sleep 0.1; done
    grep -q "populated 0" "$dir/cgroup.events" || { echo "still populated: $(cat "$dir/cgroup.procs")"; rc=1; }
    "$rt" delete -f "$id" || rc=1
    [[ ! -d $dir ]] || { echo "$dir left behind"; rc=1; }
    return $rc
}

# memory.oom.group from linux.resources.unified (what the kubelet sends on v2): an OOM kill in a
# group of processes kills them all, the init included; with "0" only the allocating one dies.
OOM_PROCS='["sh", "-c", "sleep 600 & sleep 2; dd if=/dev/zero of=/dev/null bs=64M count=1; exec sleep 600"]'
oom_group_kills_the_whole_group() {
    local rt=$1 rc=0 group id dir
    for group in 0 1; do
        id=$rt-oomg$group
        bundle "$WORK/$id" "/husk-vm/$id" \
            '{"memory": {"limit": 33554432}, "unified": {"memory.oom.group": "'$group'"}}' "$OOM_PROCS"
        "$rt" run -d --bundle "$WORK/$id" "$id" || return 1
        expect_file "/sys/fs/cgroup/husk-vm/$id/memory.oom.group" $group || rc=1
    done
    sleep 6
    dir=/sys/fs/cgroup/husk-vm/$rt-oomg1
    grep -q '"status": "stopped"' <("$rt" state "$rt-oomg1") || { echo "oom.group 1: init alive"; rc=1; }
    grep -q "populated 0" "$dir/cgroup.events" || { echo "oom.group 1: left $(cat "$dir/cgroup.procs")"; rc=1; }
    grep -q "oom_group_kill [1-9]" "$dir/memory.events" || { cat "$dir/memory.events"; rc=1; }
    dir=/sys/fs/cgroup/husk-vm/$rt-oomg0
    grep -q '"status": "running"' <("$rt" state "$rt-oomg0") || { echo "oom.group 0: init dead"; rc=1; }
    [[ $(wc -l <"$dir/cgroup.procs") == 2 ]] || { echo "oom.group 0: $(cat "$dir/cgroup.procs")"; rc=1; }
    grep -q "oom_kill 1" "$dir/memory.events" || { cat "$dir/memory.events"; rc=1; }
    "$rt" delete -f "$rt-oomg0" || rc=1
    "$rt" delete -f "$rt-oomg1" || rc=1
    return $rc
}

# `events` reports an OOM kill as {"type":"oom"} (runc: from memory.events by inotify; husk:
# when the oom_kill count grows between two samples). Neither sees an OOM from before it
# started, so the container allocates only once `events` has printed its first stats line
# (the host creates /tmp/go in the container's /tmp).
EVOOM_PROCS='["sh", "-c", "while [ ! -e /tmp/go ]; do sleep 0.1; done; dd if=/dev/zero of=/dev/null bs=64M count=1; exec sleep 600"]'
events_reports_oom() {
    local rt=$1 id=$1-evoom rc=0 watcher pid n=0
    bundle "$WORK/$id" "/husk-vm/$id" '{"memory": {"limit": 33554432}}' "$EVOOM_PROCS"
    "$rt" run -d --bundle "$WORK/$id" "$id" || return 1
    pid=$("$rt" state "$id" | sed -n 's/.*"pid": *\([0-9]*\).*/\1/p')
    "$rt" events --interval 1s "$id" >"$WORK/events-$id" 2>&1 &
    watcher=$!
    while ! grep -q '"type": *"stats"' "$WORK/events-$id" && ((n++ < 100)); do sleep 0.1; done
    sleep 1
    touch "/proc/$pid/root/tmp/go" || rc=1
    n=0
    while ! grep -q '"type": *"oom"' "$WORK/events-$id" && ((n++ < 100)); do sleep 0.1; done
    kill "$watcher" 2>/dev/null
    grep -q '"type": *"oom"' "$WORK/events-$id" || { echo "no oom event:"; tail -c 300 "$WORK/events-$id"; rc=1; }
    "$rt" delete -f "$id" || rc=1
    return $rc
}

# Device rules are an eBPF program on v2: a block device no rule allows cannot be opened
# (EPERM), one a rule allows can (the driver answers instead), and a later deny wins.
DEVICE_PROBE='["sh", "-c", "mknod /tmp/probe b 7 0 && head -c 1 /tmp/probe >/dev/null; true"]'
device_rules_deny_and_allow() {
    local rt=$1 id=$1-dev rc=0 out rules
    local allow='{"allow": true, "type": "b", "major": 7, "minor": 0, "access": "rwm"}'
    local deny='{"allow": false, "type": "b", "major": 7, "minor": 0, "access": "rwm"}'
    for rules in "" "$allow" "$allow, $deny"; do
        bundle "$WORK/$id" "/husk-vm/$id" '{"devices": [{"allow": false, "access": "rwm"}'"${rules:+, $rules}"']}' "$DEVICE_PROBE"
        sed -i 's/"noNewPrivileges": true/"noNewPrivileges": true, "capabilities": {"bounding": ["CAP_MKNOD"], "effective": ["CAP_MKNOD"], "permitted": ["CAP_MKNOD"]}/' "$WORK/$id/config.json"
        out=$("$rt" run --bundle "$WORK/$id" "$id" 2>&1)
        "$rt" delete -f "$id" >/dev/null 2>&1
        echo "rules [${rules:-deny all}]: ${out:-opened}"
        if [[ $rules == "$allow" ]]; then
            [[ $out != *"not permitted"* ]] || rc=1
        else
            [[ $out == *"not permitted"* ]] || rc=1
        fi
    done
    return $rc
}

# A new cgroup namespace is rooted at the container's cgroup, and /sys/fs/cgroup shows its files.
cgroup_namespace_is_rooted_at_the_container() {
    local rt=$1 id=$1-cgns out
    bundle "$WORK/$id" "/husk-vm/$id" '{"memory": {"limit": 67108864}}' \
        '["sh", "-c", "cat /proc/self/cgroup /sys/fs/cgroup/memory.max"]'
    out=$("$rt" run --bundle "$WORK/$id" "$id" 2>&1)
    "$rt" delete -f "$id" >/dev/null 2>&1
    [[ $out == $'0::/\n67108864' ]] || { echo "got: $out"; return 1; }
}

# husk only (runc 1.1 does not use it): on pure v2 the init is born in its cgroup by clone3's
# CLONE_INTO_CGROUP (--trace names the phase); HUSK_CLONE_INTO_CGROUP=0 writes cgroup.procs.
husk_clones_into_the_cgroup() {
    local id rc=0 mode pid want
    for mode in 1 0; do
        id=husk-c3-$mode
        bundle "$WORK/$id" "/husk-vm/$id" '{"pids": {"limit": 32}}' "$SLEEP"
        HUSK_CLONE_INTO_CGROUP=$mode husk --trace create --bundle "$WORK/$id" "$id" 2>"$WORK/trace-$id" || rc=1
        want="clone3 into cgroup"
        [[ $mode == 0 ]] && want="| clone3 [0-9]"
        grep -q "$want" "$WORK/trace-$id" || { echo "mode $mode: $(cat "$WORK/trace-$id")"; rc=1; }
        pid=$(husk state "$id" | sed -n 's/.*"pid": *\([0-9]*\).*/\1/p')
        grep -qx "0::/husk-vm/$id" "/proc/$pid/cgroup" || { echo "init in $(cat "/proc/$pid/cgroup")"; rc=1; }
        husk delete -f "$id" || rc=1
    done
    return $rc
}

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# What CLONE_INTO_CGROUP saves on create: N interleaved creates with and without it (order
# alternating), the wall time of `husk create` and the trace's clone3 + attach phases.
bench_clone_into_cgroup() {
    local n=${1:-15} i mode t0 t1 id
    bundle "$WORK/bench" "" '{"pids": {"limit": 32}}' "$SLEEP"
    rm -f "$WORK"/bench-*
    for ((i = 0; i < n; i++)); do
        for mode in $( ((i % 2)) && echo "0 1" || echo "1 0"); do
            id=bench-$mode-$i
            t0=$(date +%s%N)
            HUSK_CLONE_INTO_CGROUP=$mode "$HUSK_BIN" --trace create --bundle "$WORK/bench" "$id" 2>"$WORK/bench-trace" || return 1
            t1=$(date +%s%N)
            echo $(((t1 - t0) / 1000)) >>"$WORK/bench-wall-$mode"
            # "clone3[ into cgroup] X.XXms | id maps, join cgroup Y.YYms": their sum, in µs.
            tr '|' '\n' <"$WORK/bench-trace" | sed -n 's/^ *\(clone3.*\|id maps, join cgroup\) \([0-9.]*\)ms.*/\2/p' |
                awk '{ s += $1 } END { printf "%d\n", s * 1000 }' >>"$WORK/bench-phase-$mode"
            "$HUSK_BIN" delete -f "$id" || return 1
        done
    done
    for mode in 1 0; do
        echo "vm-bench: husk create, CLONE_INTO_CGROUP=$mode: wall median $(median <"$WORK/bench-wall-$mode") us," \
            "clone3+attach median $(median <"$WORK/bench-phase-$mode") us (n=$n, interleaved)"
    done
}

# Through containerd: exec into a running task (output, exit status), pause and resume (the
# task's status and cgroup.freeze), and `ctr task metrics` (the v2 metric names are kept in
# $WORK/metrics-<runtime> to compare the two shims).
ctr_exec_pause_metrics() {
    local runtime=$1 id=task-$RANDOM rc=0 out dir
    dir=/sys/fs/cgroup/default/$id
    ctr run -d --runtime "$runtime" --env PATH=/bin --memory-limit 67108864 --rootfs "$ROOTFS" "$id" sleep 600 >/dev/null ||
        return 1
    out=$(ctr task exec --exec-id e1 "$id" sh -c 'echo hi; exit 4')
    local status=$?
    [[ $out == hi && $status == 4 ]] || { echo "exec: output '$out', status $status"; rc=1; }
    ctr task pause "$id" && ctr task ls | grep -q "^$id .*PAUSED" && expect_file "$dir/cgroup.freeze" 1 ||
        { echo "pause: $(ctr task ls | grep "$id")"; rc=1; }
    ctr task resume "$id" && ctr task ls | grep -q "^$id .*RUNNING" && expect_file "$dir/cgroup.freeze" 0 ||
        { echo "resume: $(ctr task ls | grep "$id")"; rc=1; }
    ctr task metrics "$id" >"$WORK/metrics-raw-$runtime" || rc=1
    # ctr prints an ID/TIMESTAMP table, then METRIC/VALUE: the names of the second.
    awk '/^METRIC/ { m = 1; next } m && NF { print $1 }' "$WORK/metrics-raw-$runtime" | sort >"$WORK/metrics-$runtime"
    grep -q "^memory.usage_limit *67108864" "$WORK/metrics-raw-$runtime" && grep -q "^pids.current *1" "$WORK/metrics-raw-$runtime" ||
        { cat "$WORK/metrics-raw-$runtime"; rc=1; }
    ctr task kill -s SIGKILL "$id"
    ctr task delete -f "$id" >/dev/null 2>&1 || { sleep 1; ctr task delete "$id" >/dev/null 2>&1; }
    ctr container delete "$id" || rc=1
    [[ ! -d $dir ]] || { echo "$dir left behind"; rc=1; }
    return $rc
}

# The husk shim reports every v2 metric the Go shim does.
same_metrics_as_go_shim() {
    diff "$WORK/metrics-io.containerd.runc.v2" "$WORK/metrics-io.containerd.husk.v2" &&
        [[ $(wc -l <"$WORK/metrics-io.containerd.runc.v2") -ge 10 ]]
}
