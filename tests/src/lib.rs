//! Helpers for end-to-end tests: bundles, images, a private containerd.
//!
//! Everything here works offline and cleans up on `Drop`, also when a test panics:
//! temp dirs unmount what is left below them before they are removed, bundles remove
//! their cgroup, a [`Containerd`] kills its tasks, shims and cgroups before it goes.
//! Helpers panic with a message instead of returning errors where a test could do
//! nothing else with the error; that keeps the tests short.

mod bundle;
mod cmd;
mod containerd;
mod containerd_cleanup;
mod containerd_config;
mod containerd_events;
mod cri;
mod cri_containerd;
mod docker;
mod ids;
mod image;
mod leftovers;
mod paths;
mod pause;
mod rootfs;
mod runtime;
mod spec;
mod tempdir;

pub use bundle::Bundle;
pub use cmd::{output_text, run_with_input, run_with_timeout};
pub use containerd::{Containerd, ContainerdBuilder, BUSYBOX_REF, HUSK_RUNTIME};
pub use containerd_cleanup::ClientFifos;
pub use containerd_events::EventWatch;
pub use cri::{
    bytes_field, decode, task_pid_in, uint64_value, varint_field, CriClient, ExecOutput, Field, Proto,
    CONTAINER_EXITED, NAMESPACE_MODE_NODE,
};
pub use cri_containerd::K8S_NS;
pub use docker::{docker_archive, docker_available, Dockerd, DOCKER_BUSYBOX};
pub use ids::unique_id;
pub use image::{busybox_image_archive, busybox_image_bytes, image_archive, ImageFile};
pub use leftovers::{
    assert_no_cgroup, assert_no_leftovers, assert_no_mounts_under, assert_no_processes_mentioning, cgroup_dirs,
    mounts_under, processes_mentioning, remove_cgroup, wait_until,
};
pub use paths::{husk_bin, shim_bin, target_dir};
pub use pause::{build_pause, pause_image_archive, pause_source, PAUSE_REF};
pub use rootfs::busybox_rootfs;
pub use runtime::Runtime;
pub use spec::default_spec;
pub use tempdir::{unmount_all_under, TempDir};
