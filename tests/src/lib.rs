//! Helpers for end-to-end tests: bundles, images, a private containerd.
