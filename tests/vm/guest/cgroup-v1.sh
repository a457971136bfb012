# Sourced by run-tests.sh when the guest was booted with systemd.unified_cgroup_hierarchy=0
# (tests/vm/run.sh --cgroup v1): the systemd and cgroupfs drivers on v1 controllers under
# systemd (issue 12: the systemd driver must work "on v1 with systemd" too). Each check runs
# on runc and husk. Uses run-tests.sh's bundle, expect_file, unit_prop, unit_gone, check.

# v1_dirs <path>: the directories of cgroup <path> in every v1 controller that has one.
v1_dirs() {
    local d
    for d in /sys/fs/cgroup/*/"${1#/}"; do
        [[ -d $d ]] && echo "$d"
    done
}

# nothing_in_v1 <path>: no controller has cgroup <path> any more.
nothing_in_v1() {
    local left
    left=$(v1_dirs "$1")
    [[ -z $left ]] || { echo "left behind: $left"; return 1; }
}

host_is_v1_with_systemd() {
    local layout=legacy
    [[ -d /sys/fs/cgroup/unified ]] && layout="hybrid (systemd's own cgroup2 at /sys/fs/cgroup/unified)"
    echo "vm-test: cgroup layout: v1 controllers, $layout"
    [[ $(stat -fc %T /sys/fs/cgroup) == tmpfs ]] && [[ -f /sys/fs/cgroup/memory/memory.limit_in_bytes ]] &&
        [[ $(cat /proc/1/comm) == systemd ]]
}

# v1_limits <cgroup path>: LIMITS (memory 64 MiB, 32 pids, half a CPU) in the v1 controllers.
v1_limits() {
    expect_file "/sys/fs/cgroup/memory/$1/memory.limit_in_bytes" 67108864 &&
        expect_file "/sys/fs/cgroup/pids/$1/pids.max" 32 &&
        expect_file "/sys/fs/cgroup/cpu/$1/cpu.cfs_quota_us" 50000 &&
        expect_file "/sys/fs/cgroup/cpu/$1/cpu.cfs_period_us" 100000
}

# The cgroupfs driver on v1: limits, freezer pause/resume, kill --all, delete removes the
# cgroup from every controller.
v1_cgroupfs_driver() {
    local rt=$1 id=$1-fs1 rc=0
    bundle "$WORK/$id" "/husk-vm/$id" "$LIMITS" "$SLEEP"
    "$rt" run -d --bundle "$WORK/$id" "$id" || return 1
    v1_limits "husk-vm/$id" || rc=1
    "$rt" pause "$id" && expect_file "/sys/fs/cgroup/freezer/husk-vm/$id/freezer.state" FROZEN || rc=1
    "$rt" resume "$id" && expect_file "/sys/fs/cgroup/freezer/husk-vm/$id/freezer.state" THAWED || rc=1
    "$rt" kill --all "$id" KILL || rc=1
    sleep 0.3
    "$rt" delete -f "$id" || rc=1
    nothing_in_v1 "husk-vm/$id" || rc=1
    return $rc
}

# The systemd driver on v1: an active scope whose v1 controller dirs hold the limits; update
# changes the file and the unit (runc sets MemoryLimit, systemd's v1 name); delete leaves no
# unit and no directory in any controller, also in a nested slice.
v1_systemd_driver() {
    local rt=$1 id=$1-sd1 rc=0 rel scope
    scope=husk-vm-$id.scope
    rel=system.slice/$scope
    bundle "$WORK/$id" "system.slice:husk-vm:$id" "$LIMITS" "$SLEEP"
    "$rt" --systemd-cgroup run -d --bundle "$WORK/$id" "$id" || return 1
    systemctl is-active --quiet "$scope" || { echo "$scope not active"; rc=1; }
    v1_limits "$rel" || rc=1
    "$rt" --systemd-cgroup update --memory 134217728 "$id" || rc=1
    expect_file "/sys/fs/cgroup/memory/$rel/memory.limit_in_bytes" 134217728 || rc=1
    echo "after update: MemoryLimit=$(unit_prop "$scope" MemoryLimit) MemoryMax=$(unit_prop "$scope" MemoryMax)"
    [[ $(unit_prop "$scope" MemoryLimit) == 134217728 ]] || { echo "MemoryLimit not updated"; rc=1; }
    "$rt" --systemd-cgroup delete -f "$id" || rc=1
    unit_gone "$scope" "/sys/fs/cgroup/memory/$rel" && nothing_in_v1 "$rel" || rc=1
    bundle "$WORK/$id-n" "husk-vmtest.slice:husk-vm:$id-n" "$LIMITS" "$SLEEP"
    "$rt" --systemd-cgroup run -d --bundle "$WORK/$id-n" "$id-n" || return 1
    rel=husk.slice/husk-vmtest.slice/husk-vm-$id-n.scope
    v1_limits "$rel" || rc=1
    "$rt" --systemd-cgroup delete -f "$id-n" || rc=1
    unit_gone "husk-vm-$id-n.scope" "/sys/fs/cgroup/memory/$rel" && nothing_in_v1 "$rel" || rc=1
    return $rc
}

# ctr with SystemdCgroup = true on v1: the task's memory cgroup is the scope, and --rm leaves
# no unit and no directory.
v1_ctr_systemd_cgroup() {
    local runtime=$1 id=sdctr1-$RANDOM out opts=(--runc-systemd-cgroup) rel
    if [[ $runtime != io.containerd.runc.v2 ]]; then
        echo "SystemdCgroup = true" >"$WORK/systemd-options.toml"
        opts=(--runtime-config-path "$WORK/systemd-options.toml")
    fi
    rel=system.slice/husk-vm-$id.scope
    out=$(ctr run --rm --runtime "$runtime" "${opts[@]}" --cgroup "system.slice:husk-vm:$id" \
        --env PATH=/bin --rootfs "$ROOTFS" "$id" cat /proc/self/cgroup) || { echo "ctr run failed: $out"; return 1; }
    grep -qx "[0-9]*:memory:/$rel" <<<"$out" || { echo "cgroup: $out"; return 1; }
    unit_gone "husk-vm-$id.scope" "/sys/fs/cgroup/memory/$rel" && nothing_in_v1 "$rel"
}

v1_checks() {
    local rt runtime
    check "host has v1 controllers with systemd" host_is_v1_with_systemd
    for rt in runc husk; do
        check "v1 cgroupfs driver: limits, freezer pause/resume, kill --all, delete [$rt]" v1_cgroupfs_driver "$rt"
        check "v1 systemd driver: scope with limits in the v1 dirs, update, delete leaves nothing (nested slice too) [$rt]" \
            v1_systemd_driver "$rt"
        check "v1 systemd driver: org.systemd.property annotations [$rt]" systemd_driver_annotation_lands_on_unit "$rt"
        check "v1 systemd driver: bad slice names and a failing unit refused [$rt]" systemd_driver_refuses_bad_input "$rt"
    done
    for runtime in io.containerd.runc.v2 io.containerd.husk.v2; do
        check "v1 ctr run: output and exit status [$runtime]" ctr_run_exit_status "$runtime"
        check "v1 ctr: SystemdCgroup = true puts the task in a scope [$runtime]" v1_ctr_systemd_cgroup "$runtime"
        check "v1 ctr: /tasks/oom on an OOM kill [$runtime]" ctr_publishes_oom "$runtime"
    done
    cri_checks
}
