#!/usr/bin/env bash
# Build husk's Debian package: static binaries of husk and containerd-shim-husk-v2 (glibc
# static-pie, libseccomp linked in), the containerd registration script, the options file,
# the RuntimeClass, the docs, the man pages and bash/zsh/fish completions. One command, on
# Debian 12 with rustup's toolchain:
#
#   bash packaging/deb/build-deb.sh [--out DIR]     # writes DIR/husk_<version>_amd64.deb (default target/deb)
#
# Why static: Debian 12's rustc is too old to build husk, so the package must not need a
# toolchain on the node, and a static binary starts without the dynamic loader or libseccomp.so
# relocations on every container start.
set -euo pipefail
cd "$(dirname "$0")/../.."

out=target/deb
while (($#)); do
    case $1 in
    --out) out=${2:?--out needs a directory}; shift 2 ;;
    -h | --help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build-deb.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done

die() {
    echo "build-deb.sh: $*" >&2
    exit 1
}

for d in "${CARGO_HOME:-$HOME/.cargo}/bin" /root/.cargo/bin; do
    [[ -d $d ]] && PATH="$d:$PATH"
done
command -v cargo >/dev/null || die "cargo not found: install a Rust toolchain (rustup)"
[[ -f /usr/lib/x86_64-linux-gnu/libseccomp.a ]] || die "libseccomp.a missing: apt-get install libseccomp-dev"
command -v dpkg-deb >/dev/null || die "dpkg-deb not found"

target=x86_64-unknown-linux-gnu
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)

echo "== building static binaries (release, $target)"
LIBSECCOMP_LINK_TYPE=static LIBSECCOMP_LIB_PATH=/usr/lib/x86_64-linux-gnu \
    RUSTFLAGS="-C target-feature=+crt-static" \
    cargo build --release --locked --target "$target" --target-dir target/static \
    -p husk-runtime -p containerd-shim-husk-v2
bin=target/static/$target/release
for b in husk containerd-shim-husk-v2; do
    # A static-pie binary has a dynamic section but no NEEDED library.
    if readelf -d "$bin/$b" | grep -q NEEDED; then
        die "$bin/$b needs shared libraries: $(readelf -d "$bin/$b" | grep NEEDED | tr -s ' ' | tr '\n' ' ')"
    fi
done

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
# shellcheck source=packaging/stage.sh
. packaging/stage.sh
# Binaries, husk-register-containerd, /usr/share/husk, man pages and completions (zsh: Debian's
# vendor-completions, which is on zsh's default fpath).
stage_husk "$bin" "$stage" /usr /usr/share/zsh/vendor-completions || die "failed to stage the package"
install -d "$stage/etc/containerd"
cat >"$stage/etc/containerd/husk-options.toml" <<'EOF'
# Options for containerd-shim-husk-v2 (runc's option keys), read through the ConfigPath that
# husk-register-containerd puts into containerd's config. Installed by the husk package.
BinaryName = "/usr/bin/husk"
EOF
install -d "$stage/usr/share/doc/husk"
cp README.md docs/*.md "$stage/usr/share/doc/husk/"
gzip -9n "$stage"/usr/share/doc/husk/*.md

installed_kb=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
install -d "$stage/DEBIAN"
cat >"$stage/DEBIAN/control" <<EOF
Package: husk
Version: $version
Architecture: amd64
Maintainer: husk developers <husk@localhost>
Installed-Size: $installed_kb
Recommends: containerd
Section: admin
Priority: optional
Homepage: https://example.invalid/husk
Description: OCI container runtime with runc's command line, and a containerd shim
 husk runs containers from OCI bundles with runc's command line (create, start, run,
 exec, kill, delete, ...), so anything that drives runc can drive it.
 containerd-shim-husk-v2 is its containerd runtime v2 shim (runtime io.containerd.husk.v2,
 CRI handler "husk"). Register it with containerd: husk-register-containerd.
 Built from commit $commit; static binaries.
EOF
echo /etc/containerd/husk-options.toml >"$stage/DEBIAN/conffiles"

mkdir -p "$out"
deb=$out/husk_${version}_amd64.deb
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null
echo "== $deb ($(du -h "$deb" | cut -f1)): husk $(du -h "$bin/husk" | cut -f1), shim $(du -h "$bin/containerd-shim-husk-v2" | cut -f1)"
