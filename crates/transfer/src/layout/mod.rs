//! OCI image layouts on disk: a folder that holds images the way a registry would.
//!
//! The [OCI image-layout specification] defines the folder:
//!
//! - `oci-layout`: `{"imageLayoutVersion":"1.0.0"}`, which marks the folder as a layout;
//! - `index.json`: an OCI image index whose `manifests` name the images the layout holds; an
//!   image's name (its "tag") is the `org.opencontainers.image.ref.name` annotation of its
//!   entry ([`REF_NAME_ANNOTATION`]);
//! - `blobs/<alg>/<hex>`: every blob and manifest, stored under its digest.
//!
//! [`OciLayout`] reads and writes such a folder, with the same types the registry code uses:
//! manifests come back as a [`Manifest`] (exact bytes, media type, digest), blobs as a
//! [`BlobStream`] that verifies size and digest as it goes. Layouts written here are read by
//! `skopeo` (`oci:<dir>:<tag>`), and layouts written by `skopeo` are read here.
//!
//! # Referrers and digest tags
//!
//! A layout has no referrers API, so tools record a manifest's referrers (signatures, SBOMs,
//! attestations) in `index.json`, one way or both:
//!
//! - the OCI referrers tag schema, as regclient (`regctl`) writes it: an image index tagged
//!   `<alg>-<hex>` (the subject's digest: the fallback tag) whose `manifests` list the
//!   referrers, each referrer also an untagged entry;
//! - an untagged entry for each referrer manifest, found by the manifest's own `subject`, as
//!   oras writes it (the entry carries the `artifactType` and annotations a referrers listing
//!   shows) and as buildx leaves attestations.
//!
//! [`OciLayout::scan`] reads both (each manifest of `index.json` once) and the tags, among
//! them cosign's digest tags (`sha256-<hex>.sig`, `.att`, `.sbom`);
//! [`OciLayout::put_referrers`] writes both ways, so that every tool finds them; a digest tag
//! is an entry named by its tag, as any other.
//!
//! # Atomicity
//!
//! - A blob is written to a temporary file inside the layout (`blobs/.tmp-…`), hashed while it
//!   is written, checked against its digest and size, flushed to disk (`fsync`) and only then
//!   renamed to `blobs/<alg>/<hex>`. On any failure — a stream error, a digest or size
//!   mismatch, the future being dropped — the temporary file is removed: a blob path either
//!   does not exist or holds the verified content.
//! - `index.json` is rewritten as a whole, through a temporary file and a rename, so readers
//!   see the old or the new index, never a torn one. Updates are serialized by a lock shared
//!   by every [`OciLayout`] of the same folder in this process, so concurrent
//!   [`put_manifest`](OciLayout::put_manifest) calls do not lose each other's entries. Other
//!   processes writing the same layout at the same time are not coordinated with (skopeo
//!   does not lock layouts either).
//! - Entries and top-level fields of `index.json` that this code did not write are kept.
//!
//! # What is refused
//!
//! A layout may come from anywhere, so its content is not trusted:
//!
//! - Blob paths are built only from a validated [`Digest`] (`sha256` or `sha512`, lowercase hex
//!   of the right length), never from text found in `index.json`; an entry whose digest is
//!   not valid is an [`TransferError::InvalidManifest`] naming `index.json` when it is used.
//! - Symbolic links are refused for `oci-layout`, `index.json`, `blobs`, `blobs/<alg>` and
//!   every blob file, so a layout cannot make us read or write outside its folder. (The
//!   layout folder itself is the user's choice and is not checked.)
//! - `index.json` larger than [`MAX_INDEX_BYTES`], or not a JSON object with a `manifests`
//!   array, is an error naming the file; manifests larger than
//!   [`MAX_MANIFEST_BYTES`] are refused before they are
//!   read.
//! - Content that does not hash to its digest, or whose size differs from its descriptor, is
//!   a [`TransferError::DigestMismatch`] or [`TransferError::SizeMismatch`].
//!
//! A missing manifest or blob is a [`TransferError::Io`] of kind
//! [`std::io::ErrorKind::NotFound`]; [`is_not_found`] recognises it (and a registry's 404).
//!
//! [OCI image-layout specification]: https://github.com/opencontainers/image-spec/blob/main/image-layout.md

mod fs;
mod index;
mod referrers;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use acr_import_reference::{Digest, Tag, TagOrDigest};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::body::{BlobStream, Hasher, digest_of};
use crate::error::{Operation, RequestContext, TransferError};
use crate::manifest::{
    DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED, MAX_MANIFEST_BYTES, Manifest, ManifestContent,
    ManifestError, OCI_INDEX,
};

use fs::{
    ReadState, check_oci_layout_file, create_temp, io_err, io_error, not_regular,
    read_file_capped_sync, refuse_link, same_file, shared_lock, symlink_metadata_opt, sync_dir,
    write_atomic_sync,
};
use index::{parse_index, ref_name, resolve_media_type, update_entries};
pub use referrers::LayoutScan;

/// The `imageLayoutVersion` this code reads and writes.
pub const OCI_LAYOUT_VERSION: &str = "1.0.0";

/// The annotation that names an image in `index.json`.
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";

/// The largest `index.json` read (16 MiB).
pub const MAX_INDEX_BYTES: u64 = 16 * 1024 * 1024;

/// The size of the chunks [`OciLayout::get_blob`] reads (256 KiB).
pub const BLOB_CHUNK_SIZE: usize = 256 * 1024;

/// The largest `oci-layout` file read.
const MAX_OCI_LAYOUT_BYTES: u64 = 64 * 1024;

/// Whether `error` means that the thing asked for does not exist: a manifest or blob missing
/// from an OCI layout ([`TransferError::Io`] of kind [`io::ErrorKind::NotFound`]) or a
/// registry's 404 ([`TransferError::NotFound`]).
pub fn is_not_found(error: &TransferError) -> bool {
    match error {
        TransferError::Io { source, .. } => source.kind() == io::ErrorKind::NotFound,
        other => other.is_not_found(),
    }
}

/// An OCI image layout folder (see the [module documentation](self)).
///
/// Cheap to clone: clones share the folder's write lock.
///
/// ```
/// use acr_import_reference::{DigestAlgorithm, TagOrDigest};
/// use acr_import_transfer::{Manifest, OciLayout, digest_of};
/// use bytes::Bytes;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let layout = OciLayout::create(dir.path())?;
/// // An artifact with no layers, its config the empty descriptor's `{}`.
/// let config = Bytes::from_static(b"{}");
/// let config_digest = digest_of(DigestAlgorithm::Sha256, &config);
/// let chunks = futures_util::stream::iter([Ok::<_, acr_import_transfer::TransferError>(config)]);
/// layout.put_blob(&config_digest, Some(2), chunks).await?;
/// let bytes = Bytes::from(format!(
///     r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/example","config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{config_digest}","size":2}},"layers":[]}}"#
/// ));
/// let manifest = Manifest {
///     digest: digest_of(DigestAlgorithm::Sha256, &bytes),
///     media_type: "application/vnd.oci.image.manifest.v1+json".to_owned(),
///     bytes,
/// };
/// layout.put_manifest(&manifest, Some(&"v1".parse()?)).await?;
///
/// // Read back by tag or by digest: the same bytes.
/// assert_eq!(layout.tags().await?, ["v1"]);
/// let by_tag = layout.get_manifest(&"v1".parse()?).await?;
/// let by_digest = layout
///     .get_manifest(&TagOrDigest::Digest(manifest.digest.clone()))
///     .await?;
/// assert_eq!(by_tag, manifest);
/// assert_eq!(by_digest, manifest);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct OciLayout {
    inner: Arc<Inner>,
}

struct Inner {
    root: PathBuf,
    /// Serializes rewrites of `index.json`; shared by every `OciLayout` of this folder.
    index_lock: Arc<tokio::sync::Mutex<()>>,
}

impl std::fmt::Debug for OciLayout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OciLayout")
            .field("root", &self.inner.root)
            .finish_non_exhaustive()
    }
}

/// One usable entry of `index.json`.
#[derive(Debug, Clone)]
struct IndexEntry {
    digest: Digest,
    media_type: Option<String>,
    size: Option<u64>,
}

impl OciLayout {
    /// Opens an existing layout: the folder must hold an `oci-layout` file with
    /// `imageLayoutVersion` `1.0.0` and a valid `index.json`.
    ///
    /// Blocks briefly on file-system calls (it reads two small files).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, TransferError> {
        let root = path.as_ref().to_path_buf();
        match std::fs::metadata(&root) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(io_error(
                    &root,
                    io::ErrorKind::InvalidInput,
                    "not an OCI image layout: not a directory".to_owned(),
                ));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(io_error(
                    &root,
                    io::ErrorKind::NotFound,
                    "no such OCI image layout (the directory does not exist)".to_owned(),
                ));
            }
            Err(e) => return Err(io_err(&root, e)),
        }
        check_oci_layout_file(&root)?;
        let index = root.join("index.json");
        match std::fs::symlink_metadata(&index) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(io_error(
                    &index,
                    io::ErrorKind::InvalidData,
                    format!(
                        "not an OCI image layout: {} has no index.json file",
                        root.display()
                    ),
                ));
            }
            Err(e) => return Err(io_err(&index, e)),
            Ok(_) => {}
        }
        let layout = Self::at(root)?;
        let bytes = read_file_capped_sync(&index, MAX_INDEX_BYTES)?;
        parse_index(&bytes)
            .map_err(|reason| layout.bad_index(layout.ctx(Operation::Other, None), &reason))?;
        if let Some(m) = symlink_metadata_opt(&layout.blobs_dir())?
            && (m.file_type().is_symlink() || !m.is_dir())
        {
            return Err(refuse_link(&layout.blobs_dir()));
        }
        Ok(layout)
    }

    /// Opens a layout, creating what is missing: the folder, `oci-layout`, `blobs/`, and an
    /// empty `index.json` (`schemaVersion` 2, the OCI index media type, no manifests).
    /// Existing files are kept; an existing `oci-layout` of another version is an error.
    ///
    /// Blocks briefly on file-system calls.
    pub fn create(path: impl AsRef<Path>) -> Result<Self, TransferError> {
        let root = path.as_ref().to_path_buf();
        std::fs::create_dir_all(&root).map_err(|e| io_err(&root, e))?;
        let marker = root.join("oci-layout");
        if symlink_metadata_opt(&marker)?.is_none() {
            let body = serde_json::json!({ "imageLayoutVersion": OCI_LAYOUT_VERSION });
            write_atomic_sync(
                &root,
                "oci-layout",
                &serde_json::to_vec(&body).unwrap_or_default(),
            )?;
        }
        let blobs = root.join("blobs");
        match symlink_metadata_opt(&blobs)? {
            None => std::fs::create_dir_all(&blobs).map_err(|e| io_err(&blobs, e))?,
            Some(m) if m.file_type().is_symlink() || !m.is_dir() => {
                return Err(refuse_link(&blobs));
            }
            Some(_) => {}
        }
        if symlink_metadata_opt(&root.join("index.json"))?.is_none() {
            let body = serde_json::json!({
                "schemaVersion": 2,
                "mediaType": OCI_INDEX,
                "manifests": [],
            });
            write_atomic_sync(
                &root,
                "index.json",
                &serde_json::to_vec(&body).unwrap_or_default(),
            )?;
        }
        Self::open(root)
    }

    fn at(root: PathBuf) -> Result<Self, TransferError> {
        let key = std::fs::canonicalize(&root).map_err(|e| io_err(&root, e))?;
        Ok(Self {
            inner: Arc::new(Inner {
                index_lock: shared_lock(key),
                root,
            }),
        })
    }

    /// The layout folder, as given to [`open`](Self::open) or [`create`](Self::create).
    pub fn path(&self) -> &Path {
        &self.inner.root
    }

    /// Finds a manifest and returns its exact bytes, media type and digest.
    ///
    /// By digest: any manifest blob of the layout, listed in `index.json` or not (the
    /// children of an index are not). By tag: the `org.opencontainers.image.ref.name` of an
    /// `index.json` entry. The manifest is read
    /// (refused over [`MAX_MANIFEST_BYTES`]), its digest verified, and its size checked
    /// against the `index.json` entry when there is one. The media type is the entry's
    /// `mediaType` when there is one, else the body's `mediaType`, else OCI manifest or
    /// index by shape — as for a registry that serves no `Content-Type`.
    ///
    /// A missing tag or blob is a [`TransferError::Io`] of kind `NotFound` (see
    /// [`is_not_found`]) whose path is `oci:<folder>:<tag>` or `oci:<folder>@<digest>`.
    pub async fn get_manifest(&self, reference: &TagOrDigest) -> Result<Manifest, TransferError> {
        let ctx = self.ctx(Operation::GetManifest, Some(reference.as_str()));
        let entries = self.read_index(&ctx).await?;
        let (digest, entry) = match reference {
            TagOrDigest::Digest(digest) => {
                let entry =
                    match entries.iter().enumerate().find(|(_, e)| {
                        e.get("digest").and_then(Value::as_str) == Some(digest.as_str())
                    }) {
                        Some((i, e)) => Some(self.entry(&ctx, i, e)?),
                        None => None,
                    };
                (digest.clone(), entry)
            }
            TagOrDigest::Tag(tag) => {
                let mut found: Option<IndexEntry> = None;
                for (i, e) in entries.iter().enumerate() {
                    if ref_name(e) != Some(tag.as_str()) {
                        continue;
                    }
                    let entry = self.entry(&ctx, i, e)?;
                    if let Some(prev) = &found
                        && prev.digest != entry.digest
                    {
                        return Err(self.bad_index(
                            ctx,
                            &format!(
                                "more than one image is named `{reference}` ({} and {})",
                                prev.digest, entry.digest
                            ),
                        ));
                    }
                    found = Some(entry);
                }
                let Some(entry) = found else {
                    return Err(io_error(
                        &PathBuf::from(format!("oci:{}:{reference}", self.path().display())),
                        io::ErrorKind::NotFound,
                        format!("no image named `{reference}` in the OCI layout's index.json"),
                    ));
                };
                (entry.digest.clone(), Some(entry))
            }
        };
        self.read_manifest(ctx, reference.as_str(), digest, entry)
            .await
    }

    /// Reads and checks the manifest blob `digest`, found as `reference` (through its
    /// `index.json` entry when it has one): the size limit, the digest, the entry's size,
    /// schema 1, and the media type.
    async fn read_manifest(
        &self,
        ctx: RequestContext,
        reference: &str,
        digest: Digest,
        entry: Option<IndexEntry>,
    ) -> Result<Manifest, TransferError> {
        let what = format!(
            "manifest {reference} in OCI layout {}",
            self.path().display()
        );
        let path = self.blob_path(&digest);
        let Some((mut file, len)) = self.open_blob(&digest).await? else {
            return Err(io_error(
                &PathBuf::from(format!("oci:{}@{digest}", self.path().display())),
                io::ErrorKind::NotFound,
                "the manifest blob is not in the OCI layout".to_owned(),
            ));
        };
        if len > MAX_MANIFEST_BYTES {
            return Err(TransferError::ManifestTooLarge {
                context: ctx,
                limit: MAX_MANIFEST_BYTES,
            });
        }
        let mut buf = Vec::with_capacity(len as usize);
        (&mut file)
            .take(MAX_MANIFEST_BYTES + 1)
            .read_to_end(&mut buf)
            .await
            .map_err(|e| io_err(&path, e))?;
        if buf.len() as u64 > MAX_MANIFEST_BYTES {
            return Err(TransferError::ManifestTooLarge {
                context: ctx,
                limit: MAX_MANIFEST_BYTES,
            });
        }
        let bytes = Bytes::from(buf);
        let actual = digest_of(digest.algorithm(), &bytes);
        if actual != digest {
            return Err(TransferError::DigestMismatch {
                what,
                expected: digest.to_string(),
                actual: actual.to_string(),
            });
        }
        if let Some(size) = entry.as_ref().and_then(|e| e.size)
            && size != bytes.len() as u64
        {
            return Err(TransferError::SizeMismatch {
                what: format!("{what} (its index.json entry)"),
                expected: size,
                actual: bytes.len() as u64,
            });
        }
        let declared = entry.and_then(|e| e.media_type);
        if declared
            .as_deref()
            .is_some_and(|m| m == DOCKER_SCHEMA1 || m == DOCKER_SCHEMA1_SIGNED)
        {
            return Err(TransferError::Schema1(ctx));
        }
        let content =
            ManifestContent::parse(&bytes).map_err(|e| TransferError::manifest(ctx.clone(), e))?;
        let media_type = resolve_media_type(declared.as_deref(), &content)
            .map_err(|e| TransferError::manifest(ctx, e))?;
        Ok(Manifest {
            bytes,
            media_type,
            digest,
        })
    }

    /// The size of a blob (or manifest) of the layout, or `None` when it is not there.
    pub async fn blob_size(&self, digest: &Digest) -> Result<Option<u64>, TransferError> {
        self.check_blob_dirs(digest).await?;
        let path = self.blob_path(digest);
        match tokio::fs::symlink_metadata(&path).await {
            Ok(m) if m.file_type().is_symlink() => Err(refuse_link(&path)),
            Ok(m) if !m.is_file() => Err(not_regular(&path)),
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(&path, e)),
        }
    }

    /// Streams a blob in chunks of [`BLOB_CHUNK_SIZE`] with a running hash. The stream ends
    /// with a [`TransferError::DigestMismatch`] when the content does not hash to `digest`,
    /// and with a [`TransferError::SizeMismatch`] when `expected_size` is given and the
    /// content is longer (as soon as it is) or shorter. The stream's
    /// [`size`](BlobStream::size) is the file's size on disk.
    ///
    /// A missing blob is a [`TransferError::Io`] of kind `NotFound` (see [`is_not_found`]).
    pub async fn get_blob(
        &self,
        digest: &Digest,
        expected_size: Option<u64>,
    ) -> Result<BlobStream, TransferError> {
        let path = self.blob_path(digest);
        let Some((file, len)) = self.open_blob(digest).await? else {
            return Err(io_error(
                &path,
                io::ErrorKind::NotFound,
                format!("blob {digest} is not in the OCI layout"),
            ));
        };
        let state = ReadState {
            file,
            hasher: Some(Hasher::new(digest.algorithm())),
            what: format!("blob {digest} in OCI layout {}", self.path().display()),
            digest: digest.clone(),
            path,
            expected: expected_size,
            received: 0,
            done: false,
        };
        let stream = futures_util::stream::unfold(state, |mut st| async move {
            let item = st.next().await?;
            Some((item, st))
        });
        Ok(BlobStream::from_stream(stream, Some(len)))
    }

    /// Writes a blob atomically (see the [module documentation](self#atomicity)): the data is
    /// hashed while it is written to a temporary file, checked against `digest` and, when
    /// given, `size` ([`TransferError::DigestMismatch`], [`TransferError::SizeMismatch`]; an
    /// overlong stream fails as soon as it passes `size`), synced, and renamed into place.
    /// On any error nothing appears and the temporary file is removed; an error of the
    /// stream itself is returned as it is.
    ///
    /// When the blob is already there (with the given size, if any) nothing is read from
    /// `data` and the call succeeds; callers that can avoid producing the stream should ask
    /// [`blob_size`](Self::blob_size) first. A blob on disk with another size than `size`
    /// is corrupt and is replaced.
    ///
    /// `data` needs no `Unpin` or `'static`; the returned future is `Send`, as `data` is.
    pub async fn put_blob<S>(
        &self,
        digest: &Digest,
        size: Option<u64>,
        data: S,
    ) -> Result<(), TransferError>
    where
        S: Stream<Item = Result<Bytes, TransferError>> + Send,
    {
        if let Some(existing) = self.blob_size(digest).await?
            && size.is_none_or(|s| s == existing)
        {
            return Ok(());
        }
        let alg_dir = self.blobs_dir().join(digest.algorithm().as_str());
        tokio::fs::create_dir_all(&alg_dir)
            .await
            .map_err(|e| io_err(&alg_dir, e))?;
        self.check_blob_dirs(digest).await?;
        let what = format!(
            "blob {digest} written to OCI layout {}",
            self.path().display()
        );
        let (file, mut guard) = create_temp(&self.blobs_dir()).await?;
        let mut file = tokio::io::BufWriter::with_capacity(BLOB_CHUNK_SIZE, file);
        let mut hasher = Hasher::new(digest.algorithm());
        let mut written: u64 = 0;
        let temp = guard.path().to_path_buf();
        let mut data = std::pin::pin!(data);
        while let Some(chunk) = data.next().await {
            let chunk = chunk?;
            written += chunk.len() as u64;
            if let Some(expected) = size
                && written > expected
            {
                return Err(TransferError::SizeMismatch {
                    what,
                    expected,
                    actual: written,
                });
            }
            hasher.update(&chunk);
            file.write_all(&chunk).await.map_err(|e| io_err(&temp, e))?;
        }
        if let Some(expected) = size
            && written != expected
        {
            return Err(TransferError::SizeMismatch {
                what,
                expected,
                actual: written,
            });
        }
        let actual = hasher.finish();
        if actual != *digest {
            return Err(TransferError::DigestMismatch {
                what,
                expected: digest.to_string(),
                actual: actual.to_string(),
            });
        }
        file.flush().await.map_err(|e| io_err(&temp, e))?;
        let file = file.into_inner();
        file.sync_all().await.map_err(|e| io_err(&temp, e))?;
        drop(file);
        let target = self.blob_path(digest);
        tokio::fs::rename(&temp, &target)
            .await
            .map_err(|e| io_err(&target, e))?;
        guard.disarm();
        sync_dir(alg_dir).await;
        Ok(())
    }

    /// Writes a manifest's bytes as a blob, after checking they hash to its digest
    /// ([`TransferError::DigestMismatch`]), without touching `index.json`. For the children
    /// of an index, which are reachable through it.
    pub async fn put_manifest_blob(&self, manifest: &Manifest) -> Result<(), TransferError> {
        let actual = digest_of(manifest.digest.algorithm(), &manifest.bytes);
        if actual != manifest.digest {
            return Err(TransferError::DigestMismatch {
                what: format!(
                    "manifest {} written to OCI layout {}",
                    manifest.digest,
                    self.path().display()
                ),
                expected: manifest.digest.to_string(),
                actual: actual.to_string(),
            });
        }
        let bytes = manifest.bytes.clone();
        let len = bytes.len() as u64;
        self.put_blob(
            &manifest.digest,
            Some(len),
            futures_util::stream::iter([Ok(bytes)]),
        )
        .await
    }

    /// Writes a manifest's bytes as a blob (as [`put_manifest_blob`](Self::put_manifest_blob)
    /// does) and records it in `index.json`, with the descriptor
    /// `{"mediaType", "digest", "size", "annotations"}`:
    ///
    /// - with a `tag`, under the annotation `org.opencontainers.image.ref.name: <tag>`. Entries with the same name
    ///   are removed first (re-tagging moves the name); an untagged entry of the same digest
    ///   becomes the tagged one, keeping its other fields — as `skopeo copy` to `oci:dir:tag`
    ///   does. Nothing is rewritten when the tag already names this digest.
    /// - without a tag, as an untagged entry, unless some entry already has this digest, so
    ///   that an image copied without a name is still reachable from `index.json` (as with
    ///   `skopeo copy` to `oci:dir`). Use [`put_manifest_blob`](Self::put_manifest_blob) for
    ///   the children of an index.
    ///
    /// The media type written is `manifest.media_type` (or, when empty, the body's own
    /// `mediaType`, else OCI manifest or index by shape). `index.json` is rewritten
    /// atomically, and concurrent calls on the same folder in this process are serialized,
    /// so none loses another's entry.
    pub async fn put_manifest(
        &self,
        manifest: &Manifest,
        tag: Option<&Tag>,
    ) -> Result<(), TransferError> {
        let tag = tag.map(Tag::as_str);
        let ctx = self.ctx(Operation::PutManifest, tag);
        let media_type = if manifest.media_type.is_empty() {
            let content = ManifestContent::parse(&manifest.bytes)
                .map_err(|e| TransferError::manifest(ctx.clone(), e))?;
            resolve_media_type(None, &content)
                .map_err(|e| TransferError::manifest(ctx.clone(), e))?
        } else {
            manifest.media_type.clone()
        };
        self.put_manifest_blob(manifest).await?;

        let _lock = self.inner.index_lock.lock().await;
        let mut index = self.read_index_value(&ctx).await?;
        let changed = update_entries(
            entries_mut(&mut index),
            &media_type,
            &manifest.digest,
            manifest.bytes.len() as u64,
            tag,
        );
        if !changed {
            return Ok(());
        }
        self.write_index(&index).await
    }

    /// The tags of the layout: the `org.opencontainers.image.ref.name` annotations of the
    /// entries of `index.json`, sorted, without duplicates.
    pub async fn tags(&self) -> Result<Vec<String>, TransferError> {
        let ctx = self.ctx(Operation::ListTags, None);
        let entries = self.read_index(&ctx).await?;
        let mut tags: Vec<String> = entries
            .iter()
            .filter_map(|e| ref_name(e).map(str::to_owned))
            .collect();
        tags.sort();
        tags.dedup();
        Ok(tags)
    }

    // ----- internals -----

    fn blobs_dir(&self) -> PathBuf {
        self.inner.root.join("blobs")
    }

    fn index_path(&self) -> PathBuf {
        self.inner.root.join("index.json")
    }

    /// `blobs/<alg>/<hex>`, from a validated digest only.
    fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.blobs_dir()
            .join(digest.algorithm().as_str())
            .join(digest.encoded())
    }

    fn ctx(&self, operation: Operation, reference: Option<&str>) -> RequestContext {
        RequestContext {
            operation,
            registry: format!("OCI layout {}", self.path().display()),
            repository: None,
            reference: reference.map(str::to_owned),
        }
    }

    fn bad_index(&self, context: RequestContext, reason: &str) -> TransferError {
        TransferError::manifest(
            context,
            ManifestError::LayoutIndex {
                path: self.index_path(),
                reason: reason.to_owned(),
            },
        )
    }

    /// Refuses `blobs` and `blobs/<alg>` when they are symbolic links or not directories.
    async fn check_blob_dirs(&self, digest: &Digest) -> Result<(), TransferError> {
        let blobs = self.blobs_dir();
        let alg = blobs.join(digest.algorithm().as_str());
        for dir in [blobs, alg] {
            match tokio::fs::symlink_metadata(&dir).await {
                Ok(m) if m.file_type().is_symlink() => return Err(refuse_link(&dir)),
                Ok(m) if !m.is_dir() => {
                    return Err(io_error(
                        &dir,
                        io::ErrorKind::InvalidData,
                        "not a directory".to_owned(),
                    ));
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(io_err(&dir, e)),
            }
        }
        Ok(())
    }

    /// Opens a blob file for reading, refusing symbolic links and anything but a regular
    /// file; `None` when it does not exist.
    async fn open_blob(
        &self,
        digest: &Digest,
    ) -> Result<Option<(tokio::fs::File, u64)>, TransferError> {
        self.check_blob_dirs(digest).await?;
        let path = self.blob_path(digest);
        let before = match tokio::fs::symlink_metadata(&path).await {
            Ok(m) if m.file_type().is_symlink() => return Err(refuse_link(&path)),
            Ok(m) if !m.is_file() => return Err(not_regular(&path)),
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&path, e)),
        };
        let file = match tokio::fs::File::open(&path).await {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&path, e)),
        };
        let opened = file.metadata().await.map_err(|e| io_err(&path, e))?;
        if !opened.is_file() || !same_file(&before, &opened) {
            // Swapped for something else between the check and the open.
            return Err(refuse_link(&path));
        }
        Ok(Some((file, opened.len())))
    }

    async fn read_index_bytes(&self) -> Result<Vec<u8>, TransferError> {
        let path = self.index_path();
        tokio::task::spawn_blocking(move || read_file_capped_sync(&path, MAX_INDEX_BYTES))
            .await
            .map_err(|e| io_error(&self.index_path(), io::ErrorKind::Other, e.to_string()))?
    }

    /// `index.json` as JSON, checked to be an object whose `manifests` is an array (added
    /// when missing), for a rewrite; the caller holds the index lock.
    async fn read_index_value(&self, ctx: &RequestContext) -> Result<Value, TransferError> {
        let bytes = self.read_index_bytes().await?;
        let mut index: Value = serde_json::from_slice(&bytes)
            .map_err(|e| self.bad_index(ctx.clone(), &format!("not valid JSON: {e}")))?;
        let Some(object) = index.as_object_mut() else {
            return Err(self.bad_index(ctx.clone(), "not a JSON object"));
        };
        let manifests = object
            .entry("manifests")
            .or_insert_with(|| Value::Array(Vec::new()));
        if !manifests.is_array() {
            return Err(self.bad_index(ctx.clone(), "`manifests` is not an array"));
        }
        Ok(index)
    }

    /// Rewrites `index.json` atomically; the caller holds the index lock.
    async fn write_index(&self, index: &Value) -> Result<(), TransferError> {
        let index_path = self.index_path();
        let out = serde_json::to_vec(index)
            .map_err(|e| io_error(&index_path, io::ErrorKind::InvalidData, e.to_string()))?;
        let root = self.path().to_path_buf();
        tokio::task::spawn_blocking(move || write_atomic_sync(&root, "index.json", &out))
            .await
            .map_err(|e| io_error(&index_path, io::ErrorKind::Other, e.to_string()))?
    }

    /// The `manifests` entries of `index.json`.
    async fn read_index(&self, ctx: &RequestContext) -> Result<Vec<Value>, TransferError> {
        let bytes = self.read_index_bytes().await?;
        parse_index(&bytes).map_err(|reason| self.bad_index(ctx.clone(), &reason))
    }

    /// Validates entry `i` of `index.json`.
    fn entry(
        &self,
        ctx: &RequestContext,
        i: usize,
        value: &Value,
    ) -> Result<IndexEntry, TransferError> {
        let bad =
            |reason: String| self.bad_index(ctx.clone(), &format!("manifests[{i}]: {reason}"));
        let Some(obj) = value.as_object() else {
            return Err(bad("not a JSON object".to_owned()));
        };
        let digest = match obj.get("digest") {
            Some(Value::String(s)) => s
                .parse::<Digest>()
                .map_err(|e| bad(format!("invalid digest `{}`: {e}", s.escape_debug())))?,
            _ => return Err(bad("no digest".to_owned())),
        };
        let media_type = match obj.get("mediaType") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.is_empty() => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(bad("`mediaType` is not a string".to_owned())),
        };
        let size = match obj.get("size") {
            None | Some(Value::Null) => None,
            Some(v) => Some(v.as_u64().ok_or_else(|| bad(format!("invalid size {v}")))?),
        };
        Ok(IndexEntry {
            digest,
            media_type,
            size,
        })
    }
}

/// The `manifests` array of an index read by [`OciLayout::read_index_value`].
fn entries_mut(index: &mut Value) -> &mut Vec<Value> {
    index
        .get_mut("manifests")
        .and_then(Value::as_array_mut)
        .expect("read_index_value checked that `manifests` is an array")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_covers_layout_and_registry_misses() {
        let e = io_error(Path::new("x"), io::ErrorKind::NotFound, "gone".to_owned());
        assert!(is_not_found(&e));
        assert!(!is_not_found(&refuse_link(Path::new("x"))));
    }
}
