//! `containerd-shim-husk-v2(8)`. The shim's flags are parsed by the containerd-shim crate
//! (Go's flag package rules: one dash, `-flag value`), not by husk's table, so they are listed
//! here; tests/tests/operate_docs.rs holds this list to the shim binary's parser and to the
//! flags containerd's Go shim prints, so a flag the crate adds or drops fails a test.

use super::args::{switch, value, FlagSpec};
use super::manpage::{escape, escape_line, header, paragraphs, see_also};

pub const NAME: &str = "containerd-shim-husk-v2";

/// Every flag the shim accepts, in the Go shim's order (its `-h`), then the crate's own two.
pub const SHIM_FLAGS: &[FlagSpec] = &[
    value(&["address"], "grpc address back to main containerd"),
    value(&["bundle"], "path to the bundle if not workdir"),
    switch(&["debug"], "enable debug output in logs"),
    value(&["id"], "id of the task"),
    value(&["namespace"], "namespace that owns the shim"),
    value(
        &["publish-binary"],
        "path to publish binary (used for publishing events) (default \"containerd\")",
    ),
    value(&["socket"], "socket path to serve"),
    switch(&["v"], "show the shim version and exit"),
    switch(&["version"], "the same as -v (not in containerd 1.6's Go shim)"),
    switch(
        &["info"],
        "read runtime options from standard input, print the runtime's information (a protobuf) and exit (containerd 2.x asks for it; not in containerd 1.6's Go shim)",
    ),
];

const DESCRIPTION: &str = "The containerd runtime v2 shim for the runtime type io.containerd.husk.v2 (CRI runtime
handler \"husk\" once registered with husk-register-containerd). containerd finds it on its PATH
and starts it; operators do not run it by hand. One shim serves one container, or every
container of a pod. It holds the containers' standard streams, reaps their processes, and runs
husk (or the runc-compatible binary named by the BinaryName option) for each operation.

With the action start, it starts the long-lived shim and prints its socket address for
containerd. With delete, it cleans up after a shim that died: it deletes the container with the
runtime and prints the exit status. With no action, it is the shim itself, serving containerd's
task API on the -socket address until its last container is deleted.";

const TAIL: &str = ".SH OPTIONS FILE
Runtime options use the keys of containerd's runc options: \\fBBinaryName\\fR, \\fBRoot\\fR,
\\fBSystemdCgroup\\fR, \\fBNoPivotRoot\\fR, \\fBNoNewKeyring\\fR, \\fBIoUid\\fR, \\fBIoGid\\fR,
\\fBShimCgroup\\fR. With containerd 1.6 they come from the TOML file named by the runtime's
\\fBConfigPath\\fR option (the package installs \\fI/etc/containerd/husk\\-options.toml\\fR).
The runtime binary is \\fBBinaryName\\fR, else \\fBhusk\\fR beside the shim, else \\fBhusk\\fR on PATH.
.SH LOGS
The shim logs into the \\fIlog\\fR fifo containerd creates in the bundle, so its lines appear in
containerd's own log (\\fBjournalctl \\-u containerd\\fR under systemd), tagged
\\fBruntime=io.containerd.husk.v2\\fR; at debug level when containerd runs with debug logging.
Each husk command it runs writes its json log to \\fI<bundle>/log.json\\fR; a failed command's
message is also the error containerd returns.
.SH ENVIRONMENT
.TP
.B TTRPC_ADDRESS
containerd's ttrpc socket, for publishing events (set by containerd).
";

pub fn page() -> String {
    let mut page = header(NAME, "containerd runtime v2 shim for husk");
    page.push_str(&format!(
        ".SH SYNOPSIS\n.B {name}\n[\\fIoptions\\fR] [\\fBstart\\fR | \\fBdelete\\fR]\n.br\n.B {name}\n\\-v\n",
        name = escape(NAME)
    ));
    page.push_str(".SH DESCRIPTION\n");
    page.push_str(&paragraphs(DESCRIPTION, ".PP"));
    page.push_str(".SH OPTIONS\nOne dash, as Go's flag package: \\fB\\-namespace k8s.io\\fR.\n");
    for flag in SHIM_FLAGS {
        let value = if flag.takes_value { " \\fIvalue\\fR" } else { "" };
        page.push_str(&format!(
            ".TP\n\\fB\\-{}\\fR{value}\n{}\n",
            escape(flag.names[0]),
            escape_line(flag.help)
        ));
    }
    page.push_str(TAIL);
    page.push_str(&see_also([
        "husk".to_string(),
        "containerd".to_string(),
        "ctr".to_string(),
    ]));
    page
}
