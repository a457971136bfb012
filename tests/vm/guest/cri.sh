# Sourced by run-tests.sh: a Kubernetes pod through containerd's CRI plugin, driven as the
# kubelet does by husk-vm-cri (tests/src/bin/husk-vm-cri.rs), on the runtime handler husk and
# on runc (the control), both with SystemdCgroup = true as on a kubeadm node. Uses check().

CRI_SOCKET=/run/containerd/containerd.sock
CRI_CONFIG=/etc/containerd/config.toml
CRI_TABLE='plugins."io.containerd.grpc.v1.cri"'

# What an operator of a systemd node does to Debian's stock /etc/containerd/config.toml: the
# sandbox image, runc's SystemdCgroup = true (the kubelet's cgroupDriver is systemd), then
# husk's handler through packaging/containerd/register-husk.sh, with husk's options file saying
# SystemdCgroup = true too. restrict_oom_score_adj is not set: root in the VM has
# CAP_SYS_RESOURCE (the development hosts do not). Then restart containerd and import the
# images the host built; CRI must serve and know them.
cri_setup_as_an_operator() {
    local pkg=/opt/husk/packaging image
    grep -qF "[$CRI_TABLE]" "$CRI_CONFIG" || { echo "no CRI table in the stock $CRI_CONFIG:"; cat "$CRI_CONFIG"; return 1; }
    sed -i "/^ *\[${CRI_TABLE//./\\.}\]\$/a\\    sandbox_image = \"registry.k8s.io/pause:husk\"" "$CRI_CONFIG"
    cat >>"$CRI_CONFIG" <<TOML
[$CRI_TABLE.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[$CRI_TABLE.containerd.runtimes.runc.options]
  SystemdCgroup = true
TOML
    sed 's/^SystemdCgroup = false$/SystemdCgroup = true/' "$pkg/husk-options.toml" >/etc/containerd/husk-options.toml
    grep -qx 'SystemdCgroup = true' /etc/containerd/husk-options.toml || { echo "husk-options.toml has no SystemdCgroup"; return 1; }
    bash "$pkg/register-husk.sh" --options /etc/containerd/husk-options.toml || return 1
    cat "$CRI_CONFIG"
    systemctl restart containerd || { journalctl -u containerd --no-pager | tail -20; return 1; }
    for image in pause busybox; do
        timeout 120 ctr -n k8s.io images import "/opt/husk/images/$image.oci.tar" || return 1
    done
}

# husk-vm-cri pod|oom <handler>: the kubelet's pod with cgroupParent
# kubepods-besteffort-pod<uid>.slice, or the OOM-killed container.
# On a failure, what containerd and the shims logged about OOM and cgroups.
cri_pod() {
    local since
    since=$(date '+%Y-%m-%d %H:%M:%S')
    timeout -k 5 300 husk-vm-cri "$1" "$2" --socket "$CRI_SOCKET" && return
    journalctl -u containerd --since "$since" --no-pager | grep -i 'oom\|cgroup\|level=error' | tail -8
    return 1
}

cri_checks() {
    local handler start=$SECONDS
    check "CRI: containerd configured as an operator would (runc and husk handlers, SystemdCgroup = true)" \
        cri_setup_as_an_operator || return
    for handler in runc husk; do
        check "CRI pod under kubepods-besteffort-pod<uid>.slice: scopes, two containers, ExecSync, ContainerStats, UpdateContainerResources (file and unit), removal leaves no scope or cgroup [$handler]" \
            cri_pod pod "$handler"
        check "CRI: a container OOM-killed past its memory limit has reason OOMKilled [$handler]" cri_pod oom "$handler"
    done
    CRI_SECONDS=$((SECONDS - start))
}
