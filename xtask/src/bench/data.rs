//! The workloads: seeded pseudo-random layers, wrapped as valid gzip members of stored
//! (uncompressed) deflate blocks, and the images and indexes that reference them.
//!
//! Why gzip: copiers that sniff layer compression (skopeo does) would otherwise compress
//! raw bytes on the way and change every digest. Stored blocks keep the data
//! incompressible and the size within 0.02 % of the payload.

use acr_import_reference::{Digest, DigestAlgorithm};
use acr_import_tests::Names;
use acr_import_testsupport::SplitMix64;
use acr_import_transfer::{Hasher, Manifest, Registry, TransferError, UploadStart, manifest};
use bytes::Bytes;

/// One mebibyte.
pub const MIB: u64 = 1024 * 1024;
/// One kibibyte.
pub const KIB: u64 = 1024;

/// Payload bytes per stored deflate block (at most 65 535; a multiple of 8 keeps the
/// generator simple).
const BLOCK: u64 = 32 * KIB;
/// Stored blocks per generated chunk (1 MiB of payload).
const BLOCKS_PER_CHUNK: usize = 32;
/// Layers up to this size are generated in memory and pushed in one `PUT`; larger ones are
/// streamed (generated twice: once for the digest, once for the upload).
const IN_MEMORY_MAX: u64 = 256 * MIB;

const LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";

/// A layer: `payload` pseudo-random bytes from `seed`, as one gzip member.
#[derive(Debug, Clone, Copy)]
pub struct LayerSpec {
    /// The PRNG seed.
    pub seed: u64,
    /// Random bytes inside the gzip member.
    pub payload: u64,
}

impl LayerSpec {
    fn blocks(&self) -> u64 {
        self.payload.div_ceil(BLOCK).max(1)
    }

    /// The blob's size: gzip header, stored blocks (5 bytes of framing each), trailer.
    pub fn size(&self) -> u64 {
        10 + self.payload + 5 * self.blocks() + 8
    }

    /// The whole blob in memory, and its diff ID.
    pub fn generate(&self) -> anyhow::Result<(Bytes, Digest)> {
        let mut chunks = self.chunks();
        let mut all = Vec::with_capacity(self.size() as usize);
        for c in chunks.by_ref() {
            all.extend_from_slice(&c);
        }
        let diff_id = chunks
            .diff_id()
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("layer generator did not finish"))?;
        Ok((Bytes::from(all), diff_id))
    }

    /// The blob, chunk by chunk.
    pub fn chunks(&self) -> LayerChunks {
        LayerChunks {
            rng: SplitMix64::new(self.seed),
            payload: self.payload,
            remaining: self.payload,
            crc: 0,
            diff_id: Some(Hasher::new(DigestAlgorithm::Sha256)),
            finished_diff_id: None,
            started: false,
            done: false,
        }
    }
}

/// The chunks of a [`LayerSpec`]'s blob; after the last one, [`LayerChunks::diff_id`] is the
/// digest of the uncompressed payload.
pub struct LayerChunks {
    rng: SplitMix64,
    payload: u64,
    remaining: u64,
    crc: u32,
    diff_id: Option<Hasher>,
    finished_diff_id: Option<Digest>,
    started: bool,
    done: bool,
}

impl LayerChunks {
    /// The digest of the uncompressed payload, once every chunk was taken.
    pub fn diff_id(&self) -> Option<&Digest> {
        self.finished_diff_id.as_ref()
    }
}

impl Iterator for LayerChunks {
    type Item = Vec<u8>;

    fn next(&mut self) -> Option<Vec<u8>> {
        if self.done {
            return None;
        }
        let mut out = Vec::with_capacity(BLOCKS_PER_CHUNK * (BLOCK as usize + 5) + 18);
        if !self.started {
            self.started = true;
            // ID1 ID2 CM=deflate FLG=0 MTIME=0 XFL=0 OS=unknown.
            out.extend_from_slice(&[0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 0xff]);
        }
        for _ in 0..BLOCKS_PER_CHUNK {
            let n = self.remaining.min(BLOCK) as usize;
            let last = self.remaining == n as u64;
            out.push(u8::from(last));
            out.extend_from_slice(&(n as u16).to_le_bytes());
            out.extend_from_slice(&(!(n as u16)).to_le_bytes());
            let start = out.len();
            let mut left = n;
            while left > 0 {
                let word = self.rng.next_u64().to_le_bytes();
                let take = left.min(8);
                out.extend_from_slice(&word[..take]);
                left -= take;
            }
            let data = &out[start..];
            self.crc = crc32_update(self.crc, data);
            if let Some(h) = self.diff_id.as_mut() {
                h.update(data);
            }
            self.remaining -= n as u64;
            if last {
                out.extend_from_slice(&self.crc.to_le_bytes());
                out.extend_from_slice(&(self.payload as u32).to_le_bytes());
                self.finished_diff_id = self.diff_id.take().map(Hasher::finish);
                self.done = true;
                break;
            }
        }
        Some(out)
    }
}

const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// CRC-32 (IEEE), as the gzip trailer wants it.
fn crc32_update(crc: u32, data: &[u8]) -> u32 {
    let mut c = !crc;
    for &b in data {
        c = CRC_TABLE[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}

/// A blob of a workload.
#[derive(Debug, Clone)]
pub struct BlobInfo {
    /// Its digest.
    pub digest: Digest,
    /// Its size.
    pub size: u64,
}

/// A seeded image (or index) in the source registry.
#[derive(Debug, Clone)]
pub struct Workload {
    /// `A`, `B`, `big`.
    pub key: &'static str,
    /// What it is, for the report.
    pub title: String,
    /// Its repository in the source registry.
    pub repo: String,
    /// Its tag.
    pub tag: String,
    /// Every blob (configs and layers), each once.
    pub blobs: Vec<BlobInfo>,
    /// The manifests an index names (empty for a single image).
    pub children: Vec<Manifest>,
    /// The tagged manifest.
    pub top: Manifest,
}

impl Workload {
    /// Bytes of all blobs.
    pub fn bytes(&self) -> u64 {
        self.blobs.iter().map(|b| b.size).sum()
    }
}

fn manifest_of(value: &serde_json::Value, media_type: &str) -> anyhow::Result<Manifest> {
    let bytes = Bytes::from(serde_json::to_vec(value)?);
    Ok(Manifest {
        digest: acr_import_transfer::digest_of(DigestAlgorithm::Sha256, &bytes),
        bytes,
        media_type: media_type.to_owned(),
    })
}

/// Generates `layer` and pushes it; returns its digest and diff ID.
async fn push_layer(
    reg: &Registry,
    repo: &str,
    layer: LayerSpec,
) -> anyhow::Result<(Digest, Digest)> {
    if layer.size() <= IN_MEMORY_MAX {
        let (all, diff_id) = layer.generate()?;
        let digest = acr_import_transfer::digest_of(DigestAlgorithm::Sha256, &all);
        reg.push_blob(&repo.repo(), &digest, all, u64::MAX).await?;
        return Ok((digest, diff_id));
    }
    let mut hasher = Hasher::new(DigestAlgorithm::Sha256);
    let mut chunks = layer.chunks();
    for c in chunks.by_ref() {
        hasher.update(&c);
    }
    let diff_id = chunks
        .diff_id()
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("layer generator did not finish"))?;
    let digest = hasher.finish();
    if let UploadStart::Session(session) = reg.start_upload(&repo.repo(), None).await? {
        let stream = futures_util::stream::iter(
            layer
                .chunks()
                .map(|c| Ok::<Bytes, TransferError>(Bytes::from(c))),
        );
        reg.put_blob(session, &digest, layer.size(), stream).await?;
    }
    Ok((digest, diff_id))
}

/// Pushes a config and `layers`, then the image manifest (by digest).
async fn push_image(
    reg: &Registry,
    repo: &str,
    arch: &str,
    layers: &[LayerSpec],
    blobs: &mut Vec<BlobInfo>,
) -> anyhow::Result<Manifest> {
    let mut layer_descs = Vec::new();
    let mut diff_ids = Vec::new();
    for l in layers {
        let (digest, diff_id) = push_layer(reg, repo, *l).await?;
        layer_descs.push(serde_json::json!({
            "mediaType": LAYER_MEDIA_TYPE, "digest": digest.to_string(), "size": l.size()
        }));
        diff_ids.push(diff_id.to_string());
        blobs.push(BlobInfo {
            digest,
            size: l.size(),
        });
    }
    let config = Bytes::from(serde_json::to_vec(&serde_json::json!({
        "architecture": arch,
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))?);
    let config_digest = acr_import_transfer::digest_of(DigestAlgorithm::Sha256, &config);
    let config_size = config.len() as u64;
    reg.push_blob(&repo.repo(), &config_digest, config, u64::MAX)
        .await?;
    blobs.push(BlobInfo {
        digest: config_digest.clone(),
        size: config_size,
    });
    let m = manifest_of(
        &serde_json::json!({
            "schemaVersion": 2,
            "mediaType": manifest::OCI_MANIFEST,
            "config": {"mediaType": CONFIG_MEDIA_TYPE, "digest": config_digest.to_string(), "size": config_size},
            "layers": layer_descs,
        }),
        manifest::OCI_MANIFEST,
    )?;
    reg.put_manifest(&repo.repo(), &m.digest.clone().into(), &m)
        .await?;
    Ok(m)
}

/// Workload A: a 3-platform OCI index, 4 distinct layers per platform (`sizes`).
pub async fn seed_index(
    reg: &Registry,
    repo: &str,
    tag: &str,
    sizes: &[u64],
) -> anyhow::Result<Workload> {
    let mut blobs = Vec::new();
    let mut children = Vec::new();
    let arches = ["amd64", "arm64", "ppc64le"];
    for (p, arch) in arches.iter().enumerate() {
        let layers: Vec<LayerSpec> = sizes
            .iter()
            .enumerate()
            .map(|(i, &payload)| LayerSpec {
                seed: 1000 + 10 * p as u64 + i as u64,
                payload,
            })
            .collect();
        children.push(push_image(reg, repo, arch, &layers, &mut blobs).await?);
    }
    let entries: Vec<serde_json::Value> = children
        .iter()
        .zip(arches)
        .map(|(m, arch)| {
            serde_json::json!({
                "mediaType": m.media_type, "digest": m.digest.to_string(), "size": m.bytes.len(),
                "platform": {"os": "linux", "architecture": arch},
            })
        })
        .collect();
    let top = manifest_of(
        &serde_json::json!({"schemaVersion": 2, "mediaType": manifest::OCI_INDEX, "manifests": entries}),
        manifest::OCI_INDEX,
    )?;
    reg.put_manifest(&repo.repo(), &tag.at(), &top).await?;
    let per_platform: u64 = sizes.iter().sum();
    Ok(Workload {
        key: "A",
        title: format!(
            "3-platform OCI index, 4 layers per platform ({}), {} in all",
            sizes
                .iter()
                .map(|s| human(*s))
                .collect::<Vec<_>>()
                .join(", "),
            human(3 * per_platform)
        ),
        repo: repo.to_owned(),
        tag: tag.to_owned(),
        blobs,
        children,
        top,
    })
}

/// Workload B (and the big one): one image of `count` layers of `size` bytes.
pub async fn seed_image(
    key: &'static str,
    reg: &Registry,
    repo: &str,
    tag: &str,
    count: usize,
    size: u64,
    seed: u64,
) -> anyhow::Result<Workload> {
    let mut blobs = Vec::new();
    let layers: Vec<LayerSpec> = (0..count)
        .map(|i| LayerSpec {
            seed: seed + i as u64,
            payload: size,
        })
        .collect();
    let top = push_image(reg, repo, "amd64", &layers, &mut blobs).await?;
    reg.put_manifest(&repo.repo(), &tag.at(), &top).await?;
    Ok(Workload {
        key,
        title: format!(
            "one-platform image, {count} × {} layers, {} in all",
            human(size),
            human(count as u64 * size)
        ),
        repo: repo.to_owned(),
        tag: tag.to_owned(),
        blobs,
        children: Vec::new(),
        top,
    })
}

/// `64 MiB`, `256 KiB`, `1 GiB`.
pub fn human(n: u64) -> String {
    if n >= 1024 * MIB && n.is_multiple_of(1024 * MIB) {
        format!("{} GiB", n / (1024 * MIB))
    } else if n >= MIB && n.is_multiple_of(MIB) {
        format!("{} MiB", n / MIB)
    } else if n >= MIB {
        format!("{:.1} MiB", n as f64 / MIB as f64)
    } else if n >= KIB && n.is_multiple_of(KIB) {
        format!("{} KiB", n / KIB)
    } else {
        format!("{n} B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_matches_the_check_value() {
        assert_eq!(crc32_update(0, b"123456789"), 0xCBF4_3926);
        // Incremental equals one-shot.
        assert_eq!(
            crc32_update(crc32_update(0, b"12345"), b"6789"),
            0xCBF4_3926
        );
    }

    #[test]
    fn layer_size_matches_the_bytes() {
        for payload in [0, 1, 7, 8, BLOCK - 1, BLOCK, BLOCK + 3, 3 * MIB + 5] {
            let l = LayerSpec { seed: 9, payload };
            let n: u64 = l.chunks().map(|c| c.len() as u64).sum();
            assert_eq!(n, l.size(), "payload {payload}");
        }
    }

    /// `gzip -dc` accepts the blob and yields the payload the diff ID names.
    #[test]
    fn layers_are_valid_gzip() {
        use std::io::Write as _;
        let l = LayerSpec {
            seed: 5,
            payload: 3 * BLOCK + 11,
        };
        let mut chunks = l.chunks();
        let blob: Vec<u8> = chunks.by_ref().flatten().collect();
        let Ok(mut gz) = std::process::Command::new("gzip")
            .arg("-dc")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
        else {
            return; // no gzip here
        };
        gz.stdin.take().unwrap().write_all(&blob).unwrap();
        let out = gz.wait_with_output().unwrap();
        assert!(out.status.success());
        assert_eq!(out.stdout.len() as u64, l.payload);
        assert_eq!(
            Some(&acr_import_transfer::digest_of(
                DigestAlgorithm::Sha256,
                &out.stdout
            )),
            chunks.diff_id()
        );
    }
}
