//! Every command husk accepts, its flags and its `--help` text: runc 1.1's names, spellings,
//! defaults and order, so that clients and people who know runc find the same thing.

use super::args::{switch, value, FlagSpec};

pub struct Command {
    pub name: &'static str,
    /// The one line in `husk --help`'s command list.
    pub summary: &'static str,
    /// What follows `husk NAME [command options]` in the usage line (may run on for lines).
    pub args_usage: &'static str,
    pub description: &'static str,
    pub flags: &'static [FlagSpec],
}

pub const GLOBAL_FLAGS: &[FlagSpec] = &[
    switch(&["debug"], "enable debug logging"),
    value(
        &["log"],
        "set the log file to write husk logs to (default is '/dev/stderr')",
    ),
    value(
        &["log-format"],
        "set the log format ('text' (default), or 'json') (default: \"text\")",
    ),
    value(
        &["root"],
        "root directory for storage of container state (this should be located in tmpfs) (default: \"/run/husk\")",
    ),
    value(
        &["criu"],
        "path to the criu binary used for checkpoint and restore (default: \"criu\")",
    ),
    switch(
        &["systemd-cgroup"],
        "enable systemd cgroup support (not supported by husk)",
    ),
    value(
        &["rootless"],
        "ignore cgroup permission errors ('true', 'false', or 'auto') (default: \"auto\")",
    ),
    switch(&["trace"], "print where the start-up time goes, phase by phase"),
    switch(&["help", "h"], "show help"),
    switch(&["version", "v"], "print the version"),
];

const CONSOLE_SOCKET: FlagSpec = value(
    &["console-socket"],
    "path to an AF_UNIX socket which will receive a file descriptor referencing the master end of the console's pseudoterminal",
);
const BUNDLE: FlagSpec = value(
    &["bundle", "b"],
    "path to the root of the bundle directory, defaults to the current directory",
);
const PID_FILE: FlagSpec = value(&["pid-file"], "specify the file to write the process id to");
const NO_PIVOT: FlagSpec = switch(
    &["no-pivot"],
    "do not use pivot root to jail process inside rootfs.  This should be used whenever the rootfs is on top of a ramdisk",
);
const NO_NEW_KEYRING: FlagSpec = switch(
    &["no-new-keyring"],
    "do not create a new session keyring for the container.  This will cause the container to inherit the calling processes session key",
);
const PRESERVE_FDS: FlagSpec = value(
    &["preserve-fds"],
    "Pass N additional file descriptors to the container (stdio + $LISTEN_FDS + N in total) (default: 0)",
);
const DETACH: FlagSpec = switch(&["detach", "d"], "detach from the container's process");
const FORMAT: FlagSpec = value(&["format", "f"], "select one of: table or json (default: \"table\")");

const ID_USAGE: &str = "<container-id>

Where \"<container-id>\" is your name for the instance of the container that you
are starting. The name you provide for the container instance must be unique on
your host.";

const CREATE_DESCRIPTION: &str = "The create command creates an instance of a container for a bundle. The bundle
is a directory with a specification file named \"config.json\" and a root
filesystem.

The specification file includes an args parameter. The args parameter is used
to specify command(s) that get run when the container is started. To change the
command(s) that get executed on start, edit the args parameter of the spec. See
\"husk spec --help\" for more explanation.";

pub const COMMANDS: &[Command] = &[
    Command {
        name: "create",
        summary: "create a container",
        args_usage: ID_USAGE,
        description: CREATE_DESCRIPTION,
        flags: &[BUNDLE, CONSOLE_SOCKET, PID_FILE, NO_PIVOT, NO_NEW_KEYRING, PRESERVE_FDS],
    },
    Command {
        name: "delete",
        summary: "delete any resources held by the container often used with detached container",
        args_usage: "<container-id>\n\nWhere \"<container-id>\" is the name for the instance of the container.",
        description: "",
        flags: &[switch(
            &["force", "f"],
            "Forcibly deletes the container if it is still running (uses SIGKILL)",
        )],
    },
    Command {
        name: "events",
        summary: "display container events such as OOM notifications, cpu, memory, and IO usage statistics",
        args_usage: "<container-id>\n\nWhere \"<container-id>\" is the name for the instance of the container.",
        description: "The events command displays information about the container. By default the
information is displayed once every 5 seconds.",
        flags: &[
            value(&["interval"], "set the stats collection interval (default: 5s)"),
            switch(&["stats"], "display the container's stats then exit"),
        ],
    },
    Command {
        name: "exec",
        summary: "execute new process inside the container",
        args_usage: "<container-id> <command> [command options]  || -p process.json <container-id>

Where \"<container-id>\" is the name for the instance of the container and
\"<command>\" is the command to be executed in the container.
\"<command>\" can't be empty unless a \"-p\" flag provided.",
        description: "",
        flags: &[
            CONSOLE_SOCKET,
            value(&["cwd"], "current working directory in the container"),
            value(&["env", "e"], "set environment variables"),
            switch(&["tty", "t"], "allocate a pseudo-TTY"),
            value(&["user", "u"], "UID (format: <uid>[:<gid>])"),
            value(&["additional-gids", "g"], "additional gids"),
            value(&["process", "p"], "path to the process.json"),
            DETACH,
            PID_FILE,
            value(
                &["process-label"],
                "set the asm process label for the process commonly used with selinux",
            ),
            value(&["apparmor"], "set the apparmor profile for the process"),
            switch(&["no-new-privs"], "set the no new privileges value for the process"),
            value(&["cap", "c"], "add a capability to the bounding set for the process"),
            PRESERVE_FDS,
            value(
                &["cgroup"],
                "run the process in an (existing) sub-cgroup(s). Format is [<controller>:]<cgroup>.",
            ),
            switch(&["ignore-paused"], "allow exec in a paused container"),
        ],
    },
    Command {
        name: "kill",
        summary: "kill sends the specified signal (default: SIGTERM) to the container's init process",
        args_usage: "<container-id> [signal]

Where \"<container-id>\" is the name for the instance of the container and
\"[signal]\" is the signal to be sent to the init process.",
        description: "",
        flags: &[switch(
            &["all", "a"],
            "send the specified signal to all processes inside the container",
        )],
    },
    Command {
        name: "list",
        summary: "lists containers started by husk with the given root",
        args_usage: "\n\nWhere the given root is specified via the global option \"--root\"\n(default: \"/run/husk\").",
        description: "",
        flags: &[FORMAT, switch(&["quiet", "q"], "display only container IDs")],
    },
    Command {
        name: "pause",
        summary: "pause suspends all processes inside the container",
        args_usage:
            "<container-id>\n\nWhere \"<container-id>\" is the name for the instance of the container to be\npaused. ",
        description: "The pause command suspends all processes in the instance of the container.

Use husk list to identify instances of containers and their current status.",
        flags: &[],
    },
    Command {
        name: "ps",
        summary: "ps displays the processes running inside a container",
        args_usage: "<container-id> [ps options]",
        description: "",
        flags: &[FORMAT],
    },
    Command {
        name: "resume",
        summary: "resumes all processes that have been previously paused",
        args_usage:
            "<container-id>\n\nWhere \"<container-id>\" is the name for the instance of the container to be\nresumed.",
        description: "The resume command resumes all processes in the instance of the container.

Use husk list to identify instances of containers and their current status.",
        flags: &[],
    },
    Command {
        name: "run",
        summary: "create and run a container",
        args_usage: ID_USAGE,
        description: CREATE_DESCRIPTION,
        flags: &[
            BUNDLE,
            CONSOLE_SOCKET,
            DETACH,
            switch(&["keep"], "do not delete the container after it exits"),
            PID_FILE,
            switch(
                &["no-subreaper"],
                "disable the use of the subreaper used to reap reparented processes",
            ),
            NO_PIVOT,
            NO_NEW_KEYRING,
            PRESERVE_FDS,
        ],
    },
    Command {
        name: "spec",
        summary: "create a new specification file",
        args_usage: "",
        description: "The spec command creates the new specification file named \"config.json\" for
the bundle.

The spec generated is just a starter file. Editing of the spec is required to
achieve desired results. For example, the newly generated spec includes an args
parameter that is initially set to call the \"sh\" command when the container is
started.

With --rootless, the spec is for a container started without root privileges:
a user namespace mapping the caller's uid and gid, no network namespace, and
sysfs bind-mounted from the host.",
        flags: &[
            value(&["bundle", "b"], "path to the root of the bundle directory"),
            switch(&["rootless"], "generate a configuration for a rootless container"),
        ],
    },
    Command {
        name: "start",
        summary: "executes the user defined process in a created container",
        args_usage: ID_USAGE,
        description: "The start command executes the user defined process in a created container.",
        flags: &[],
    },
    Command {
        name: "state",
        summary: "output the state of a container",
        args_usage: "<container-id>\n\nWhere \"<container-id>\" is your name for the instance of the container.",
        description: "The state command outputs current state information for the
instance of a container.",
        flags: &[],
    },
    Command {
        name: "update",
        summary: "update container resource constraints",
        args_usage: "<container-id>",
        description: "",
        flags: UPDATE_FLAGS,
    },
    Command {
        name: "features",
        summary: "show the enabled features",
        args_usage: "",
        description: "Show the enabled features.
   The result is parsable as a JSON.",
        flags: &[],
    },
    Command {
        name: "doctor",
        summary: "check whether this host can run husk, and how containerd is set up for it",
        args_usage: "",
        description: "The doctor command checks the kernel, cgroups, capabilities, security modules,
containerd (husk registered, the shim on its PATH, the CRI plugin loaded), Docker and podman,
and says what each gap means. It exits 1 when something blocks husk. (husk's own command;
runc has none.)",
        flags: DOCTOR_FLAGS,
    },
];

const DOCTOR_FLAGS: &[FlagSpec] = &[
    switch(&["json"], "print the report as JSON"),
    value(
        &["containerd-config"],
        "containerd's config file (default: \"/etc/containerd/config.toml\")",
    ),
    value(
        &["containerd-address"],
        "containerd's grpc socket (default: the address in its config)",
    ),
    value(
        &["containerd-path"],
        "the PATH containerd finds shims on (default: systemd's PATH for services)",
    ),
];

/// runc's update flags in its order; `kernel-memory*` are accepted and ignored, as runc does.
pub const UPDATE_FLAGS: &[FlagSpec] = &[
    value(
        &["resources", "r"],
        "path to the file containing the resources to update or '-' to read from the standard input

The accepted format is as follow (unchanged values can be omitted):

{
  \"memory\": {
    \"limit\": 0,
    \"reservation\": 0,
    \"swap\": 0
  },
  \"cpu\": {
    \"shares\": 0,
    \"quota\": 0,
    \"period\": 0,
    \"realtimeRuntime\": 0,
    \"realtimePeriod\": 0,
    \"cpus\": \"\",
    \"mems\": \"\"
  },
  \"blockIO\": {
    \"weight\": 0
  }
}

Note: if data is to be read from a file or the standard input, all
other options are ignored.",
    ),
    value(
        &["blkio-weight"],
        "Specifies per cgroup weight, range is from 10 to 1000 (default: 0)",
    ),
    value(
        &["cpu-period"],
        "CPU CFS period to be used for hardcapping (in usecs). 0 to use system default",
    ),
    value(
        &["cpu-quota"],
        "CPU CFS hardcap limit (in usecs). Allowed cpu time in a given period",
    ),
    value(
        &["cpu-share", "cpu-shares"],
        "CPU shares (relative weight vs. other containers)",
    ),
    value(
        &["cpu-rt-period"],
        "CPU realtime period to be used for hardcapping (in usecs). 0 to use system default",
    ),
    value(
        &["cpu-rt-runtime"],
        "CPU realtime hardcap limit (in usecs). Allowed cpu time in a given period",
    ),
    value(&["cpuset-cpus"], "CPU(s) to use"),
    value(&["cpuset-mems"], "Memory node(s) to use"),
    value(&["kernel-memory"], ""),
    value(&["kernel-memory-tcp"], ""),
    value(&["memory"], "Memory limit (in bytes)"),
    value(&["memory-reservation"], "Memory reservation or soft_limit (in bytes)"),
    value(
        &["memory-swap"],
        "Total memory usage (memory + swap); set '-1' to enable unlimited swap",
    ),
    value(
        &["pids-limit"],
        "Maximum number of pids allowed in the container (default: 0)",
    ),
    value(&["l3-cache-schema"], "The string of Intel RDT/CAT L3 cache schema"),
    value(
        &["mem-bw-schema"],
        "The string of Intel RDT/MBA memory bandwidth schema",
    ),
];

pub fn find(name: &str) -> Option<&'static Command> {
    COMMANDS.iter().find(|c| c.name == name)
}
