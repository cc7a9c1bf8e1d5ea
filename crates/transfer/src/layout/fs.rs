//! File-system helpers of the layout: atomic writes, temporary files, link-refusing reads.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};

use acr_import_reference::Digest;
use bytes::{Bytes, BytesMut};
use serde_json::Value;
use tokio::io::AsyncReadExt;

use super::{BLOB_CHUNK_SIZE, MAX_OCI_LAYOUT_BYTES, OCI_LAYOUT_VERSION};
use crate::body::Hasher;
use crate::error::TransferError;

/// The lock of a layout folder, shared by every `OciLayout` of it in this process.
pub(super) fn shared_lock(key: PathBuf) -> Arc<tokio::sync::Mutex<()>> {
    type Locks = std::sync::Mutex<HashMap<PathBuf, Weak<tokio::sync::Mutex<()>>>>;
    static LOCKS: OnceLock<Locks> = OnceLock::new();
    let mut locks = LOCKS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(lock) = locks.get(&key).and_then(Weak::upgrade) {
        return lock;
    }
    locks.retain(|_, w| w.strong_count() > 0);
    let lock = Arc::new(tokio::sync::Mutex::new(()));
    locks.insert(key, Arc::downgrade(&lock));
    lock
}

/// Checks `<root>/oci-layout`.
pub(super) fn check_oci_layout_file(root: &Path) -> Result<(), TransferError> {
    let path = root.join("oci-layout");
    let not_layout = |why: String| {
        io_error(
            &path,
            io::ErrorKind::InvalidData,
            format!("not an OCI image layout: {} {why}", root.display()),
        )
    };
    match symlink_metadata_opt(&path)? {
        None => return Err(not_layout("has no oci-layout file".to_owned())),
        Some(m) if m.file_type().is_symlink() => return Err(refuse_link(&path)),
        Some(m) if !m.is_file() => return Err(not_regular(&path)),
        Some(_) => {}
    }
    let bytes = read_file_capped_sync(&path, MAX_OCI_LAYOUT_BYTES)?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
        not_layout(format!(
            "has an oci-layout file that is not valid JSON: {e}"
        ))
    })?;
    match value.get("imageLayoutVersion").and_then(Value::as_str) {
        Some(OCI_LAYOUT_VERSION) => Ok(()),
        Some(other) => Err(not_layout(format!(
            "has imageLayoutVersion `{}`; only `{OCI_LAYOUT_VERSION}` is supported",
            other.escape_debug()
        ))),
        None => Err(not_layout(
            "has an oci-layout file without imageLayoutVersion".to_owned(),
        )),
    }
}

/// Reads a small file, refusing symbolic links, non-files, and anything over `limit`.
pub(super) fn read_file_capped_sync(path: &Path, limit: u64) -> Result<Vec<u8>, TransferError> {
    use std::io::Read;
    let before = std::fs::symlink_metadata(path).map_err(|e| io_err(path, e))?;
    if before.file_type().is_symlink() {
        return Err(refuse_link(path));
    }
    if !before.is_file() {
        return Err(not_regular(path));
    }
    let too_large = || {
        io_error(
            path,
            io::ErrorKind::InvalidData,
            format!("larger than {limit} bytes; refusing to read it"),
        )
    };
    if before.len() > limit {
        return Err(too_large());
    }
    let file = std::fs::File::open(path).map_err(|e| io_err(path, e))?;
    let opened = file.metadata().map_err(|e| io_err(path, e))?;
    if !opened.is_file() || !same_file(&before, &opened) {
        return Err(refuse_link(path));
    }
    let mut buf = Vec::with_capacity(before.len() as usize);
    file.take(limit + 1)
        .read_to_end(&mut buf)
        .map_err(|e| io_err(path, e))?;
    if buf.len() as u64 > limit {
        return Err(too_large());
    }
    Ok(buf)
}

/// Writes `<dir>/<name>` through a synced temporary file and a rename.
pub(super) fn write_atomic_sync(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), TransferError> {
    use std::io::Write;
    let target = dir.join(name);
    if let Some(m) = symlink_metadata_opt(&target)?
        && m.file_type().is_symlink()
    {
        return Err(refuse_link(&target));
    }
    let (mut file, mut guard) = create_temp_sync(dir, name)?;
    let temp = guard.path().to_path_buf();
    file.write_all(bytes).map_err(|e| io_err(&temp, e))?;
    file.sync_all().map_err(|e| io_err(&temp, e))?;
    drop(file);
    std::fs::rename(&temp, &target).map_err(|e| io_err(&target, e))?;
    guard.disarm();
    sync_dir_sync(dir);
    Ok(())
}

/// Creates a new temporary file in `dir` (`.tmp-<pid>-<time>-<n>`).
pub(super) async fn create_temp(dir: &Path) -> Result<(tokio::fs::File, TempGuard), TransferError> {
    let owned = dir.to_owned();
    let (file, guard) = tokio::task::spawn_blocking(move || create_temp_sync(&owned, ".tmp"))
        .await
        .map_err(|e| io_error(dir, io::ErrorKind::Other, e.to_string()))??;
    Ok((tokio::fs::File::from_std(file), guard))
}

/// Creates a new file `<dir>/<prefix>-<pid>-<time>-<n>`, with a guard that removes it.
fn create_temp_sync(dir: &Path, prefix: &str) -> Result<(std::fs::File, TempGuard), TransferError> {
    for _ in 0..8 {
        let temp = dir.join(format!("{prefix}{}", temp_suffix()));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)
        {
            Ok(f) => return Ok((f, TempGuard::new(temp))),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io_err(&temp, e)),
        }
    }
    Err(io_error(
        dir,
        io::ErrorKind::AlreadyExists,
        "cannot create a temporary file".to_owned(),
    ))
}

/// `-<pid>-<nanoseconds>-<counter>`: unique in this process, unlikely to collide across.
pub(super) fn temp_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("-{}-{nanos:x}-{n}", std::process::id())
}

/// Removes a temporary file when dropped, unless disarmed (after the rename).
pub(super) struct TempGuard {
    path: PathBuf,
    armed: bool,
}

impl TempGuard {
    pub(super) fn new(path: PathBuf) -> Self {
        Self { path, armed: true }
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    pub(super) fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for TempGuard {
    fn drop(&mut self) {
        if self.armed {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Syncs a directory so a rename in it is durable (best effort; Unix only).
pub(super) async fn sync_dir(dir: PathBuf) {
    let _ = tokio::task::spawn_blocking(move || sync_dir_sync(&dir)).await;
}

pub(super) fn sync_dir_sync(dir: &Path) {
    #[cfg(unix)]
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

/// Whether two metadata describe the same file (device and inode on Unix).
pub(super) fn same_file(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        a.dev() == b.dev() && a.ino() == b.ino()
    }
    #[cfg(not(unix))]
    {
        a.len() == b.len()
    }
}

pub(super) fn symlink_metadata_opt(
    path: &Path,
) -> Result<Option<std::fs::Metadata>, TransferError> {
    match std::fs::symlink_metadata(path) {
        Ok(m) => Ok(Some(m)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(path, e)),
    }
}

/// A blob read from a layout file.
pub(super) struct ReadState {
    pub(super) file: tokio::fs::File,
    pub(super) hasher: Option<Hasher>,
    pub(super) digest: Digest,
    pub(super) what: String,
    pub(super) path: PathBuf,
    pub(super) expected: Option<u64>,
    pub(super) received: u64,
    pub(super) done: bool,
}

impl ReadState {
    pub(super) async fn next(&mut self) -> Option<Result<Bytes, TransferError>> {
        if self.done {
            return None;
        }
        let mut buf = BytesMut::with_capacity(BLOB_CHUNK_SIZE);
        let n = match self.file.read_buf(&mut buf).await {
            Ok(n) => n,
            Err(e) => {
                self.done = true;
                return Some(Err(io_err(&self.path, e)));
            }
        };
        if n == 0 {
            self.done = true;
            return self.finish().err().map(Err);
        }
        self.received += n as u64;
        if let Some(expected) = self.expected
            && self.received > expected
        {
            self.done = true;
            return Some(Err(TransferError::SizeMismatch {
                what: self.what.clone(),
                expected,
                actual: self.received,
            }));
        }
        if let Some(h) = &mut self.hasher {
            h.update(&buf);
        }
        Some(Ok(buf.freeze()))
    }

    pub(super) fn finish(&mut self) -> Result<(), TransferError> {
        crate::body::check_received(
            &self.what,
            self.expected,
            self.received,
            self.hasher.take(),
            &self.digest,
        )
    }
}

pub(super) fn io_err(path: &Path, source: io::Error) -> TransferError {
    TransferError::Io {
        path: path.display().to_string(),
        source,
    }
}

pub(super) fn io_error(path: &Path, kind: io::ErrorKind, message: String) -> TransferError {
    io_err(path, io::Error::new(kind, message))
}

pub(super) fn refuse_link(path: &Path) -> TransferError {
    io_error(
        path,
        io::ErrorKind::InvalidData,
        "refusing a symbolic link in an OCI layout (it could point outside the layout)".to_owned(),
    )
}

pub(super) fn not_regular(path: &Path) -> TransferError {
    io_error(
        path,
        io::ErrorKind::InvalidData,
        "not a regular file; refusing to use it in an OCI layout".to_owned(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_are_unique() {
        assert_ne!(temp_suffix(), temp_suffix());
    }
}
