//! seccomp: the OCI profile compiled with libseccomp and loaded last before execve.
