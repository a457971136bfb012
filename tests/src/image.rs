//! OCI image-layout archives for `ctr images import`: the busybox rootfs, or any few files
//! ([`image_archive`], e.g. the static pause binary a CRI sandbox runs).
//!
//! Built in memory and deterministic: the same busybox gives byte-identical blobs, so the
//! digests are stable between runs. The layer is an uncompressed tar (a valid OCI layer
//! media type that containerd unpacks without a decompressor).

use std::io;
use std::path::Path;
use std::sync::OnceLock;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::rootfs::{layout, Entry};

const MT_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const MT_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const MT_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const MT_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";

/// Write the archive to `path`. `reference` is the full name containerd gives the image,
/// e.g. "docker.io/library/busybox:latest" (set as `io.containerd.image.name`; its tag
/// becomes `org.opencontainers.image.ref.name`).
pub fn busybox_image_archive(path: &Path, reference: &str) -> io::Result<()> {
    std::fs::write(path, busybox_image_bytes(reference)?)
}

/// The archive's bytes; built once per reference and process.
pub fn busybox_image_bytes(reference: &str) -> io::Result<Vec<u8>> {
    /// (reference, archive) pairs built so far.
    type Cache = std::sync::Mutex<Vec<(String, Vec<u8>)>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut cache = cache.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, bytes)) = cache.iter().find(|(r, _)| r == reference) {
        return Ok(bytes.clone());
    }
    let bytes = build_archive(reference)?;
    cache.push((reference.to_string(), bytes.clone()));
    Ok(bytes)
}

/// A regular file in an image made by [`image_archive`]; its parent directories are made
/// by the unpacker.
#[derive(Debug, Clone, Copy)]
pub struct ImageFile<'a> {
    /// Relative to the image root, e.g. "pause".
    pub path: &'a str,
    pub mode: u32,
    pub data: &'a [u8],
}

/// Write a one-layer image archive holding only `files` to `path`, named `reference` (as
/// [`busybox_image_archive`] names it) and running `entrypoint`.
pub fn image_archive(path: &Path, reference: &str, files: &[ImageFile<'_>], entrypoint: &[&str]) -> io::Result<()> {
    let mut layer = tar::Builder::new(Vec::new());
    for f in files {
        append_file(&mut layer, f.path, f.data, f.mode)?;
    }
    let layer = layer.into_inner()?;
    let config = json!({
        "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        "Entrypoint": entrypoint,
    });
    std::fs::write(
        path,
        archive_of_layer(reference, layer, config, "husk-e2e image_archive")?,
    )
}

fn build_archive(reference: &str) -> io::Result<Vec<u8>> {
    let config = json!({
        "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        "Cmd": ["sh"],
    });
    archive_of_layer(reference, layer_tar()?, config, "husk-e2e busybox_rootfs")
}

/// The image-layout tar of one layer and its runtime `config` (the image config's "config").
fn archive_of_layer(reference: &str, layer: Vec<u8>, config: Value, created_by: &str) -> io::Result<Vec<u8>> {
    let diff_id = digest(&layer);
    let config = to_bytes(&image_config(&diff_id, config, created_by));
    let manifest = to_bytes(&json!({
        "schemaVersion": 2,
        "mediaType": MT_MANIFEST,
        "config": descriptor(MT_CONFIG, &config),
        "layers": [descriptor(MT_LAYER, &layer)],
    }));
    let tag = reference
        .rsplit_once(':')
        .filter(|(_, t)| !t.contains('/'))
        .map_or("latest", |(_, t)| t);
    let mut manifest_desc = descriptor(MT_MANIFEST, &manifest);
    manifest_desc["annotations"] = json!({
        "io.containerd.image.name": reference,
        "org.opencontainers.image.ref.name": tag,
    });
    let index = to_bytes(&json!({ "schemaVersion": 2, "mediaType": MT_INDEX, "manifests": [manifest_desc] }));

    let mut out = tar::Builder::new(Vec::new());
    append_file(&mut out, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#, 0o644)?;
    append_file(&mut out, "index.json", &index, 0o644)?;
    append_dir(&mut out, "blobs/")?;
    append_dir(&mut out, "blobs/sha256/")?;
    for blob in [&layer, &config, &manifest] {
        let name = format!("blobs/sha256/{}", hex(&Sha256::digest(blob)));
        append_file(&mut out, &name, blob, 0o644)?;
    }
    out.into_inner()
}

fn image_config(diff_id: &str, config: Value, created_by: &str) -> Value {
    json!({
        "architecture": go_arch(),
        "os": "linux",
        "config": config,
        "rootfs": { "type": "layers", "diff_ids": [diff_id] },
        "history": [{ "created_by": created_by }],
    })
}

/// The rootfs as a layer tar: root-owned, mtime 0, in the layout's fixed order.
fn layer_tar() -> io::Result<Vec<u8>> {
    let mut out = tar::Builder::new(Vec::new());
    for entry in layout()? {
        match entry {
            Entry::Dir { path, .. } if path == "tmp" => append_dir_mode(&mut out, "tmp/", 0o1777)?,
            Entry::Dir { path, mode } => append_dir_mode(&mut out, &format!("{path}/"), *mode)?,
            Entry::File { path, mode, data } => append_file(&mut out, path, data, *mode)?,
            Entry::Symlink { path, target } => {
                let mut h = header(tar::EntryType::Symlink, 0o777, 0);
                out.append_link(&mut h, path, target)?;
            }
        }
    }
    out.into_inner()
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h
}

fn append_file(out: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8], mode: u32) -> io::Result<()> {
    let mut h = header(tar::EntryType::Regular, mode, data.len() as u64);
    out.append_data(&mut h, path, data)
}

fn append_dir(out: &mut tar::Builder<Vec<u8>>, path: &str) -> io::Result<()> {
    append_dir_mode(out, path, 0o755)
}

fn append_dir_mode(out: &mut tar::Builder<Vec<u8>>, path: &str, mode: u32) -> io::Result<()> {
    let mut h = header(tar::EntryType::Directory, mode, 0);
    out.append_data(&mut h, path, io::empty())
}

fn descriptor(media_type: &str, blob: &[u8]) -> Value {
    json!({ "mediaType": media_type, "digest": digest(blob), "size": blob.len() })
}

fn digest(blob: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(blob)))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn to_bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).expect("a serde_json::Value serializes")
}

/// GOARCH names, which image configs use.
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_is_deterministic() {
        let a = build_archive("docker.io/library/busybox:latest").expect("builds");
        let b = build_archive("docker.io/library/busybox:latest").expect("builds");
        assert_eq!(digest(&a), digest(&b));
    }
}
