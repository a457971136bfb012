#!/usr/bin/env bash
# Register husk as a containerd runtime (CRI handler "husk") in the operator's existing
# config.toml, keeping everything that config already says working.
#
#   sudo bash packaging/containerd/register-husk.sh [--config FILE] [--options FILE]
#        [--husk-binary PATH] [--containerd BIN] [--dry-run]
#
# Why not an `imports` drop-in: containerd 1.6/1.7 merge imported files plugin by plugin, so a
# drop-in that declares anything under the CRI plugin replaces the operator's whole CRI table
# (Debian's stock CNI bin_dir = /usr/lib/cni falls back to /opt/cni/bin), and declaring any
# runtime drops the implicit `runc` one, so default_runtime_name = "runc" names nothing and
# the CRI plugin fails to load. See docs/kubernetes.md.
#
# What it does: asks containerd for the effective config (`config dump`), appends the husk
# runtime tables to the operator's file (plus an explicit runc table when runc was only
# implicit), asks containerd to read the result, and checks that the new effective config
# only adds lines to the old one. Only then is the file replaced (the old one is kept as
# FILE.husk-backup). Running it again changes nothing.
set -euo pipefail

config=/etc/containerd/config.toml
options=/etc/containerd/husk-options.toml
husk_binary=
containerd_bin=containerd
dry_run=0

die() {
    echo "register-husk: $*" >&2
    exit 1
}

usage() { sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; }

while (($#)); do
    case $1 in
    --config) config=${2:?--config needs a file}; shift 2 ;;
    --options) options=${2:?--options needs a file}; shift 2 ;;
    --husk-binary) husk_binary=${2:?--husk-binary needs a path}; shift 2 ;;
    --containerd) containerd_bin=${2:?--containerd needs a binary}; shift 2 ;;
    --dry-run) dry_run=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
    esac
done

command -v "$containerd_bin" >/dev/null || die "containerd not found ($containerd_bin): install it first"

# An absent config means containerd's defaults (version 2 for 1.x).
base=$(mktemp)
trap 'rm -f "$base" "$base.new"' EXIT
if [[ -e $config ]]; then
    cat "$config" >"$base"
else
    printf 'version = 2\n' >"$base"
fi

before=$("$containerd_bin" --config "$base" config dump 2>&1) ||
    die "containerd cannot read $config, fix it first: $(tail -1 <<<"$before")"

version=$(sed -n 's/^version = \([0-9]*\)$/\1/p' <<<"$before" | head -1)
case $version in
2) plugin=io.containerd.grpc.v1.cri ;;
3) plugin=io.containerd.cri.v1.runtime ;;
*) die "unsupported containerd config version '${version:-none}' in $config" ;;
esac
runtimes="plugins.\"$plugin\".containerd.runtimes"

if grep -qF "[$runtimes.husk]" <<<"$before"; then
    echo "register-husk: husk is already registered in $config; nothing to do"
    exit 0
fi

# The [..runtimes.runc] and [..runtimes.runc.options] tables of a dump, as they stand.
implicit_runc_tables() {
    awk -v head="[$runtimes.runc" '
        /^ *\[/ { t = $0; sub(/^ */, "", t); inside = (index(t, head "]") == 1 || index(t, head ".") == 1) }
        inside { print }'
}

# Lines of a dump that name the dumped file itself, not a setting.
settings() { grep -v '^imports = ' || true; }

{
    cat "$base"
    printf '\n# Added by husk'\''s register-husk.sh: the CRI runtime handler "husk".\n'
    # Declaring a runtime drops the implicit runc: declare it exactly as the dump shows it.
    if grep -qF "[$runtimes.runc]" <<<"$before" && ! grep -qF "[$runtimes.runc]" "$base"; then
        implicit_runc_tables <<<"$before"
    fi
    printf '[%s.husk]\n  runtime_type = "io.containerd.husk.v2"\n' "$runtimes"
    printf '[%s.husk.options]\n  ConfigPath = "%s"\n' "$runtimes" "$options"
} >"$base.new"

after=$("$containerd_bin" --config "$base.new" config dump 2>&1) ||
    die "containerd refuses the merged config, $config left as it was: $(tail -1 <<<"$after")"
grep -qF "[$runtimes.husk]" <<<"$after" ||
    die "husk is missing from the merged config (an imported file replaces the CRI table?); $config left as it was"
removed=$(diff <(settings <<<"$before") <(settings <<<"$after") | grep '^<' || true)
[[ -z $removed ]] || die "registering husk would change existing settings, $config left as it was:
$removed"

if ((dry_run)); then
    diff -u "$base" "$base.new" || true
    exit 0
fi

if [[ ! -e $options ]]; then
    binary=${husk_binary:-$(command -v husk || echo /usr/local/bin/husk)}
    mkdir -p "$(dirname "$options")"
    printf '# Options for containerd-shim-husk-v2 (runc'\''s option keys), named by ConfigPath.\nBinaryName = "%s"\n' \
        "$binary" >"$options"
    echo "register-husk: wrote $options (BinaryName = $binary)"
fi
mkdir -p "$(dirname "$config")"
[[ -e $config ]] && cp -p "$config" "$config.husk-backup"
cat "$base.new" >"$config"
echo "register-husk: husk registered in $config${version:+ (config version $version)}; restart containerd to load it"
