//! The OCI image-layout store: round trips, skopeo interoperability, atomic writes, and
//! refusal of corrupted or hostile layouts.

use std::path::{Path, PathBuf};

use acr_import_reference::{Digest, DigestAlgorithm, Tag, TagOrDigest};
use acr_import_testsupport::run_tool;
use acr_import_transfer::layout::{REF_NAME_ANNOTATION, is_not_found};
use acr_import_transfer::manifest::OCI_MANIFEST;
use acr_import_transfer::{Manifest, OciLayout, TransferError, digest_of};
use bytes::Bytes;
use futures_util::StreamExt;

/// `text` as a tag or digest; panics naming text that is neither.
fn at(text: &str) -> TagOrDigest {
    text.parse()
        .unwrap_or_else(|e| panic!("`{text}` names no manifest: {e}"))
}

/// `text` as a tag; panics naming text that is not one.
fn named(text: &str) -> Tag {
    text.parse()
        .unwrap_or_else(|e| panic!("`{text}` is not a tag: {e}"))
}

/// A tiny image: an empty tar layer, its config, and an OCI manifest.
struct Image {
    config: Bytes,
    layer: Bytes,
    manifest: Manifest,
}

fn sha256(data: &[u8]) -> Digest {
    digest_of(DigestAlgorithm::Sha256, data)
}

fn image(label: &str) -> Image {
    // Two zero blocks: an empty tar archive; a label in a third block makes layers differ.
    let mut layer = vec![0u8; 1024];
    layer.extend_from_slice(label.as_bytes());
    layer.resize(1536, 0);
    let layer = Bytes::from(layer);
    let layer_digest = sha256(&layer);
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": { "Labels": { "test": label } },
        "rootfs": { "type": "layers", "diff_ids": [layer_digest.as_str()] },
    });
    let config = Bytes::from(serde_json::to_vec(&config).unwrap());
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": sha256(&config).as_str(),
            "size": config.len(),
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": layer_digest.as_str(),
            "size": layer.len(),
        }],
    });
    let bytes = Bytes::from(serde_json::to_vec_pretty(&manifest).unwrap());
    Image {
        config,
        layer,
        manifest: Manifest {
            digest: sha256(&bytes),
            media_type: OCI_MANIFEST.to_owned(),
            bytes,
        },
    }
}

fn once(data: Bytes) -> impl futures_util::Stream<Item = Result<Bytes, TransferError>> + Send {
    futures_util::stream::iter([Ok(data)])
}

/// A stream in small chunks, to exercise incremental hashing.
fn chunked(data: Bytes) -> impl futures_util::Stream<Item = Result<Bytes, TransferError>> + Send {
    let chunks: Vec<_> = (0..data.len())
        .step_by(100)
        .map(|i| Ok(data.slice(i..(i + 100).min(data.len()))))
        .collect();
    futures_util::stream::iter(chunks)
}

async fn put_image(layout: &OciLayout, img: &Image, tag: Option<&str>) {
    for blob in [&img.config, &img.layer] {
        layout
            .put_blob(
                &sha256(blob),
                Some(blob.len() as u64),
                chunked(blob.clone()),
            )
            .await
            .unwrap();
    }
    layout
        .put_manifest(&img.manifest, tag.map(named).as_ref())
        .await
        .unwrap();
}

async fn read_blob(layout: &OciLayout, digest: &Digest) -> Result<Bytes, TransferError> {
    layout.get_blob(digest, None).await?.collect(1 << 30).await
}

fn blob_file(root: &Path, digest: &Digest) -> PathBuf {
    root.join("blobs").join("sha256").join(digest.encoded())
}

/// Everything under `blobs/` that is not `blobs/<alg>/<hex>`.
fn stray_files(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(root.join("blobs")).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.file_type().unwrap().is_dir() && (name == "sha256" || name == "sha512") {
            for blob in std::fs::read_dir(entry.path()).unwrap() {
                let blob = blob.unwrap().file_name().to_string_lossy().into_owned();
                if blob.starts_with('.') || blob.contains("tmp") {
                    out.push(format!("{name}/{blob}"));
                }
            }
        } else {
            out.push(name);
        }
    }
    out
}

fn index_json(root: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(root.join("index.json")).unwrap()).unwrap()
}

#[tokio::test]
async fn round_trip_by_tag_and_digest() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("layout");
    let layout = OciLayout::create(&root).unwrap();
    assert_eq!(layout.path(), root);
    assert!(layout.tags().await.unwrap().is_empty());
    let index = index_json(&root);
    assert_eq!(index["schemaVersion"], 2);
    assert_eq!(index["manifests"], serde_json::json!([]));

    let one = image("one");
    put_image(&layout, &one, Some("v1")).await;

    let by_tag = layout.get_manifest(&at("v1")).await.unwrap();
    let by_digest = layout
        .get_manifest(&one.manifest.digest.clone().into())
        .await
        .unwrap();
    assert_eq!(by_tag, one.manifest);
    assert_eq!(by_digest, one.manifest);
    assert_eq!(layout.tags().await.unwrap(), ["v1"]);

    let layer = sha256(&one.layer);
    assert_eq!(
        layout.blob_size(&layer).await.unwrap(),
        Some(one.layer.len() as u64)
    );
    assert_eq!(read_blob(&layout, &layer).await.unwrap(), one.layer);
    let stream = layout
        .get_blob(&sha256(&one.config), Some(one.config.len() as u64))
        .await
        .unwrap();
    assert_eq!(stream.size(), Some(one.config.len() as u64));
    assert_eq!(stream.collect(1 << 20).await.unwrap(), one.config);

    // Another tag keeps the first.
    let two = image("two");
    put_image(&layout, &two, Some("v2")).await;
    assert_eq!(layout.tags().await.unwrap(), ["v1", "v2"]);
    assert_eq!(layout.get_manifest(&at("v1")).await.unwrap(), one.manifest);
    assert_eq!(layout.get_manifest(&at("v2")).await.unwrap(), two.manifest);

    // Re-tagging moves the name.
    layout
        .put_manifest(&two.manifest, Some(&named("v1")))
        .await
        .unwrap();
    assert_eq!(layout.tags().await.unwrap(), ["v1", "v2"]);
    assert_eq!(layout.get_manifest(&at("v1")).await.unwrap(), two.manifest);
    let entries = index_json(&root)["manifests"].as_array().unwrap().clone();
    assert_eq!(entries.len(), 2, "{entries:?}");
    let v1 = entries
        .iter()
        .find(|e| e["annotations"][REF_NAME_ANNOTATION] == "v1")
        .unwrap();
    assert_eq!(v1["digest"], two.manifest.digest.as_str());
    assert_eq!(v1["mediaType"], OCI_MANIFEST);
    assert_eq!(v1["size"], two.manifest.bytes.len());

    // The old manifest is still there by digest, and the layout reopens.
    let reopened = OciLayout::open(&root).unwrap();
    assert_eq!(
        reopened
            .get_manifest(&one.manifest.digest.clone().into())
            .await
            .unwrap(),
        one.manifest
    );
    let again = OciLayout::create(&root).unwrap();
    assert_eq!(again.tags().await.unwrap(), ["v1", "v2"]);
    assert!(stray_files(&root).is_empty(), "{:?}", stray_files(&root));
}

#[tokio::test]
async fn missing_things_are_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let layout = OciLayout::create(dir.path()).unwrap();
    let absent = sha256(b"absent");

    let err = layout.get_manifest(&at("nope")).await.unwrap_err();
    assert!(is_not_found(&err), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("nope") && text.contains(&dir.path().display().to_string()),
        "{text}"
    );

    let err = layout
        .get_manifest(&absent.clone().into())
        .await
        .unwrap_err();
    assert!(is_not_found(&err), "{err}");
    assert!(err.to_string().contains(absent.as_str()), "{err}");

    let err = layout.get_blob(&absent, None).await.unwrap_err();
    assert!(is_not_found(&err), "{err}");
    assert_eq!(layout.blob_size(&absent).await.unwrap(), None);

    // A bad digest cannot even be asked for: the reference grammar refuses it.
    assert!("sha256:xyz".parse::<TagOrDigest>().is_err());
}

#[tokio::test]
async fn untagged_manifests_are_listed_once_and_children_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let layout = OciLayout::create(dir.path()).unwrap();
    let img = image("untagged");
    put_image(&layout, &img, None).await;
    layout.put_manifest(&img.manifest, None).await.unwrap();
    let entries = index_json(dir.path())["manifests"].clone();
    assert_eq!(
        entries,
        serde_json::json!([{
            "mediaType": OCI_MANIFEST,
            "digest": img.manifest.digest.as_str(),
            "size": img.manifest.bytes.len(),
        }])
    );
    assert!(layout.tags().await.unwrap().is_empty());
    assert_eq!(
        layout
            .get_manifest(&img.manifest.digest.clone().into())
            .await
            .unwrap(),
        img.manifest
    );

    // Tagging it later turns the untagged entry into the tagged one.
    layout
        .put_manifest(&img.manifest, Some(&named("now")))
        .await
        .unwrap();
    let entries = index_json(dir.path())["manifests"].clone();
    assert_eq!(entries.as_array().unwrap().len(), 1, "{entries}");
    assert_eq!(entries[0]["annotations"][REF_NAME_ANNOTATION], "now");

    // A child manifest written as a blob is readable by digest and not listed.
    let child = image("child");
    layout.put_manifest_blob(&child.manifest).await.unwrap();
    assert_eq!(
        index_json(dir.path())["manifests"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let got = layout
        .get_manifest(&child.manifest.digest.clone().into())
        .await
        .unwrap();
    assert_eq!(got, child.manifest, "media type from the body");
}

#[tokio::test]
async fn unknown_index_fields_and_entries_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let layout = OciLayout::create(dir.path()).unwrap();
    let foreign = serde_json::json!({
        "schemaVersion": 2,
        "annotations": { "made.by": "someone else" },
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": sha256(b"not here").as_str(),
            "size": 8,
            "platform": { "os": "linux", "architecture": "arm64" },
            "annotations": { "org.opencontainers.image.ref.name": "theirs", "x": "y" },
        }],
        "x-extension": [1, 2, 3],
    });
    std::fs::write(
        dir.path().join("index.json"),
        serde_json::to_vec(&foreign).unwrap(),
    )
    .unwrap();
    let img = image("kept");
    put_image(&layout, &img, Some("ours")).await;
    let index = index_json(dir.path());
    assert_eq!(index["annotations"]["made.by"], "someone else");
    assert_eq!(index["x-extension"], serde_json::json!([1, 2, 3]));
    assert_eq!(index["manifests"][0], foreign["manifests"][0]);
    assert_eq!(layout.tags().await.unwrap(), ["ours", "theirs"]);
    // Their entry points at a missing blob: not found, not a crash.
    let err = layout.get_manifest(&at("theirs")).await.unwrap_err();
    assert!(is_not_found(&err), "{err}");
}

/// What `skopeo inspect --raw` reads as the manifest tagged `tag` in the layout at `dir`.
fn inspect_raw(skopeo: &std::path::Path, dir: &std::path::Path, tag: &str) -> Vec<u8> {
    run_tool(
        skopeo,
        ["inspect", "--raw", &format!("oci:{}:{tag}", dir.display())],
    )
}

#[tokio::test]
async fn skopeo_reads_our_layouts_and_we_read_its() {
    let skopeo = acr_import_testsupport::skopeo();
    let dir = tempfile::tempdir().unwrap();
    let ours = dir.path().join("ours");
    let theirs = dir.path().join("theirs");
    let layout = OciLayout::create(&ours).unwrap();
    let img = image("skopeo");
    put_image(&layout, &img, Some("v1")).await;

    let raw = inspect_raw(&skopeo, &ours, "v1");
    assert_eq!(raw, img.manifest.bytes);

    run_tool(
        &skopeo,
        [
            "--insecure-policy",
            "copy",
            "--quiet",
            "--preserve-digests",
            // skopeo compresses uncompressed layers for `oci:` unless told not to.
            "--dest-oci-accept-uncompressed-layers",
            &format!("oci:{}:v1", ours.display()),
            &format!("oci:{}:v2", theirs.display()),
        ],
    );
    let copied = OciLayout::open(&theirs).unwrap();
    assert_eq!(copied.tags().await.unwrap(), ["v2"]);
    let got = copied.get_manifest(&at("v2")).await.unwrap();
    assert_eq!(got.bytes, img.manifest.bytes);
    assert_eq!(got.digest, img.manifest.digest);
    assert_eq!(got.media_type, OCI_MANIFEST);
    for blob in [&img.layer, &img.config] {
        assert_eq!(&read_blob(&copied, &sha256(blob)).await.unwrap(), blob);
    }

    // And we can add to skopeo's layout, and skopeo still reads it.
    let other = image("added");
    put_image(&copied, &other, Some("v3")).await;
    let raw = inspect_raw(&skopeo, &theirs, "v3");
    assert_eq!(raw, other.manifest.bytes);
    assert_eq!(copied.tags().await.unwrap(), ["v2", "v3"]);
}

#[tokio::test]
async fn put_blob_verifies_and_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let layout = OciLayout::create(dir.path()).unwrap();
    let data = Bytes::from_static(b"some blob content");
    let right = sha256(&data);
    let wrong = sha256(b"something else");

    let err = layout
        .put_blob(&wrong, None, chunked(data.clone()))
        .await
        .unwrap_err();
    assert!(matches!(err, TransferError::DigestMismatch { .. }), "{err}");
    assert_eq!(layout.blob_size(&wrong).await.unwrap(), None);
    assert!(!blob_file(dir.path(), &wrong).exists());

    let err = layout
        .put_blob(&right, Some(data.len() as u64 + 1), once(data.clone()))
        .await
        .unwrap_err();
    assert!(matches!(err, TransferError::SizeMismatch { .. }), "{err}");
    let err = layout
        .put_blob(&right, Some(3), chunked(data.clone()))
        .await
        .unwrap_err();
    assert!(
        matches!(err, TransferError::SizeMismatch { expected: 3, .. }),
        "{err}"
    );
    assert_eq!(layout.blob_size(&right).await.unwrap(), None);

    // A stream that breaks: its error comes back, nothing is left.
    let broken = futures_util::stream::iter([
        Ok(Bytes::from_static(b"some ")),
        Err(TransferError::Config("the source broke".to_owned())),
    ]);
    let err = layout.put_blob(&right, None, broken).await.unwrap_err();
    assert!(err.to_string().contains("the source broke"), "{err}");
    assert!(
        stray_files(dir.path()).is_empty(),
        "{:?}",
        stray_files(dir.path())
    );

    // A write that is dropped half-way leaves nothing either.
    let pending = futures_util::stream::iter([Ok(Bytes::from_static(b"some "))])
        .chain(futures_util::stream::pending());
    let dropped = tokio::time::timeout(
        std::time::Duration::from_millis(200),
        layout.put_blob(&right, None, pending),
    )
    .await;
    assert!(dropped.is_err());
    assert!(
        stray_files(dir.path()).is_empty(),
        "{:?}",
        stray_files(dir.path())
    );

    // The right content goes in; writing it again reads nothing.
    layout
        .put_blob(&right, Some(data.len() as u64), chunked(data.clone()))
        .await
        .unwrap();
    assert_eq!(std::fs::read(blob_file(dir.path(), &right)).unwrap(), data);
    let must_not_be_read = futures_util::stream::poll_fn(
        |_| -> std::task::Poll<Option<Result<Bytes, TransferError>>> {
            panic!("an existing blob's stream was read")
        },
    );
    layout
        .put_blob(&right, Some(data.len() as u64), must_not_be_read)
        .await
        .unwrap();
    layout
        .put_blob(&right, None, futures_util::stream::empty())
        .await
        .unwrap();
    assert!(
        stray_files(dir.path()).is_empty(),
        "{:?}",
        stray_files(dir.path())
    );

    // A manifest whose bytes do not match its digest is refused.
    let mut bad = image("bad").manifest;
    bad.digest = wrong.clone();
    let err = layout
        .put_manifest(&bad, Some(&named("bad")))
        .await
        .unwrap_err();
    assert!(matches!(err, TransferError::DigestMismatch { .. }), "{err}");
    assert!(layout.tags().await.unwrap().is_empty());

    // A tag that is not a tag cannot be named.
    for bad in ["a:b", ""] {
        assert!(bad.parse::<Tag>().is_err(), "`{bad}`");
    }
}

#[tokio::test]
async fn sha512_blobs_work() {
    let dir = tempfile::tempdir().unwrap();
    let layout = OciLayout::create(dir.path()).unwrap();
    let data = Bytes::from_static(b"sha512 content");
    let digest = digest_of(DigestAlgorithm::Sha512, &data);
    layout
        .put_blob(&digest, None, once(data.clone()))
        .await
        .unwrap();
    assert!(
        dir.path()
            .join("blobs/sha512")
            .join(digest.encoded())
            .is_file()
    );
    assert_eq!(read_blob(&layout, &digest).await.unwrap(), data);
}

#[tokio::test]
async fn corrupted_content_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let layout = OciLayout::create(dir.path()).unwrap();
    let img = image("corrupt");
    put_image(&layout, &img, Some("v1")).await;

    // A blob flipped on disk, same length.
    let layer = sha256(&img.layer);
    let mut bytes = img.layer.to_vec();
    bytes[10] ^= 0xff;
    std::fs::write(blob_file(dir.path(), &layer), &bytes).unwrap();
    let mut stream = layout.get_blob(&layer, None).await.unwrap();
    let mut last = None;
    while let Some(item) = stream.next().await {
        last = Some(item);
    }
    let err = last.unwrap().unwrap_err();
    assert!(matches!(err, TransferError::DigestMismatch { .. }), "{err}");

    // A blob of another length than expected.
    let config = sha256(&img.config);
    let err = layout
        .get_blob(&config, Some(img.config.len() as u64 + 5))
        .await
        .unwrap()
        .collect(1 << 20)
        .await
        .unwrap_err();
    assert!(matches!(err, TransferError::SizeMismatch { .. }), "{err}");
    let err = layout
        .get_blob(&config, Some(3))
        .await
        .unwrap()
        .collect(1 << 20)
        .await
        .unwrap_err();
    assert!(matches!(err, TransferError::SizeMismatch { .. }), "{err}");

    // A manifest flipped on disk.
    let mut bytes = img.manifest.bytes.to_vec();
    let pos = bytes.iter().position(|b| *b == b'6').unwrap_or(5);
    bytes[pos] = if bytes[pos] == b'6' { b'7' } else { b' ' };
    std::fs::write(blob_file(dir.path(), &img.manifest.digest), &bytes).unwrap();
    for reference in ["v1", img.manifest.digest.as_str()] {
        let err = layout.get_manifest(&at(reference)).await.unwrap_err();
        assert!(matches!(err, TransferError::DigestMismatch { .. }), "{err}");
    }
}

#[cfg(unix)]
#[tokio::test]
async fn symbolic_links_are_refused() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("layout");
    let layout = OciLayout::create(&root).unwrap();
    let img = image("links");
    put_image(&layout, &img, Some("v1")).await;

    // A blob that is a link to a file outside the layout (with the right content, even).
    let outside = dir.path().join("outside");
    std::fs::write(&outside, &img.layer).unwrap();
    let layer = sha256(&img.layer);
    std::fs::remove_file(blob_file(&root, &layer)).unwrap();
    symlink(&outside, blob_file(&root, &layer)).unwrap();
    let err = layout.get_blob(&layer, None).await.unwrap_err();
    assert!(err.to_string().contains("symbolic link"), "{err}");
    assert!(!is_not_found(&err));
    assert!(layout.blob_size(&layer).await.is_err());

    // A manifest that is a link.
    let outside_manifest = dir.path().join("manifest");
    std::fs::write(&outside_manifest, &img.manifest.bytes).unwrap();
    std::fs::remove_file(blob_file(&root, &img.manifest.digest)).unwrap();
    symlink(&outside_manifest, blob_file(&root, &img.manifest.digest)).unwrap();
    let err = layout.get_manifest(&at("v1")).await.unwrap_err();
    assert!(err.to_string().contains("symbolic link"), "{err}");

    // blobs/sha256 as a link to a folder outside: refused for reads and writes.
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::fs::rename(root.join("blobs/sha256"), dir.path().join("moved")).unwrap();
    symlink(&elsewhere, root.join("blobs/sha256")).unwrap();
    let config = sha256(&img.config);
    assert!(layout.get_blob(&config, None).await.is_err());
    let data = Bytes::from_static(b"new");
    let err = layout
        .put_blob(&sha256(&data), None, once(data.clone()))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("symbolic link"), "{err}");
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);

    // index.json as a link.
    let other = dir.path().join("other");
    OciLayout::create(&other).unwrap();
    std::fs::rename(
        other.join("index.json"),
        dir.path().join("index-outside.json"),
    )
    .unwrap();
    symlink(
        dir.path().join("index-outside.json"),
        other.join("index.json"),
    )
    .unwrap();
    let err = OciLayout::open(&other).unwrap_err();
    assert!(err.to_string().contains("symbolic link"), "{err}");
}

#[tokio::test]
async fn malformed_index_json_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let layout = OciLayout::create(dir.path()).unwrap();
    for bad in [&b"{\"manifests\": ["[..], b"[]", br#"{"manifests": 5}"#] {
        std::fs::write(dir.path().join("index.json"), bad).unwrap();
        let err = layout.tags().await.unwrap_err();
        assert!(err.to_string().contains("index.json"), "{err}");
        let err = layout.get_manifest(&at("v1")).await.unwrap_err();
        assert!(err.to_string().contains("index.json"), "{err}");
        let err = OciLayout::open(dir.path()).unwrap_err();
        assert!(err.to_string().contains("index.json"), "{err}");
        let err = layout
            .put_manifest(&image("x").manifest, Some(&named("x")))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("index.json"), "{err}");
    }
}

#[tokio::test]
async fn oversized_index_json_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let layout = OciLayout::create(dir.path()).unwrap();
    let mut big = br#"{"schemaVersion":2,"manifests":[],"padding":""#.to_vec();
    big.resize(17 * 1024 * 1024, b'a');
    big.extend_from_slice(b"\"}");
    std::fs::write(dir.path().join("index.json"), &big).unwrap();
    let err = layout.tags().await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("index.json") && text.contains("larger"),
        "{text}"
    );
}

#[tokio::test]
async fn open_refuses_what_is_not_a_layout() {
    let dir = tempfile::tempdir().unwrap();
    let err = OciLayout::open(dir.path()).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("not an OCI image layout")
            && text.contains("has no oci-layout file")
            && text.contains(&dir.path().display().to_string()),
        "{text}"
    );

    std::fs::write(
        dir.path().join("oci-layout"),
        br#"{"imageLayoutVersion":"2.0.0"}"#,
    )
    .unwrap();
    std::fs::write(dir.path().join("index.json"), br#"{"manifests":[]}"#).unwrap();
    let err = OciLayout::open(dir.path()).unwrap_err();
    assert!(err.to_string().contains("2.0.0"), "{err}");
    assert!(OciLayout::create(dir.path()).is_err());

    std::fs::write(dir.path().join("oci-layout"), b"garbage").unwrap();
    assert!(OciLayout::open(dir.path()).is_err());

    std::fs::write(
        dir.path().join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    std::fs::remove_file(dir.path().join("index.json")).unwrap();
    let err = OciLayout::open(dir.path()).unwrap_err();
    assert!(err.to_string().contains("index.json"), "{err}");

    let err = OciLayout::open(dir.path().join("does-not-exist")).unwrap_err();
    assert!(err.to_string().contains("does-not-exist"), "{err}");
}

#[tokio::test]
async fn hostile_index_entries_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("layout");
    let layout = OciLayout::create(&root).unwrap();
    // A file the traversal would reach if paths were built from index.json text.
    std::fs::write(
        dir.path().join("secret"),
        b"{\"schemaVersion\":2,\"layers\":[]}",
    )
    .unwrap();
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": "sha256:../../../secret", "size": 30,
             "annotations": {"org.opencontainers.image.ref.name": "evil"}},
            {"mediaType": OCI_MANIFEST, "digest": "sha256:../../etc/passwd", "size": 30,
             "annotations": {"org.opencontainers.image.ref.name": "passwd"}},
            {"mediaType": OCI_MANIFEST, "digest": 7, "size": 1,
             "annotations": {"org.opencontainers.image.ref.name": "number"}},
            {"mediaType": OCI_MANIFEST, "digest": sha256(b"x").as_str(), "size": -1,
             "annotations": {"org.opencontainers.image.ref.name": "negative"}},
        ],
    });
    std::fs::write(root.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    for tag in ["evil", "passwd", "number", "negative"] {
        let err = layout.get_manifest(&at(tag)).await.unwrap_err();
        assert!(
            matches!(err, TransferError::InvalidManifest { .. }),
            "{tag}: {err}"
        );
        assert!(err.to_string().contains("index.json"), "{err}");
        assert!(!is_not_found(&err));
    }
    // A digest that would build a path outside the layout cannot even be named.
    for reference in [
        "sha256:../../../secret",
        "sha256:../../etc/passwd",
        "md5:abc",
    ] {
        assert!(reference.parse::<TagOrDigest>().is_err(), "{reference}");
    }
    // The rest of the layout still works.
    let img = image("fine");
    put_image(&layout, &img, Some("fine")).await;
    assert_eq!(
        layout.get_manifest(&at("fine")).await.unwrap(),
        img.manifest
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_tagging_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let layout = OciLayout::create(dir.path()).unwrap();
    // A second handle on the same folder shares the lock.
    let second = OciLayout::open(dir.path()).unwrap();
    let mut tasks = Vec::new();
    for i in 0..20 {
        let layout = if i % 2 == 0 {
            layout.clone()
        } else {
            second.clone()
        };
        tasks.push(tokio::spawn(async move {
            let img = image(&format!("concurrent-{i}"));
            put_image(&layout, &img, Some(&format!("t{i:02}"))).await;
            img.manifest
        }));
    }
    let mut manifests = Vec::new();
    for t in tasks {
        manifests.push(t.await.unwrap());
    }
    let expected: Vec<String> = (0..20).map(|i| format!("t{i:02}")).collect();
    assert_eq!(layout.tags().await.unwrap(), expected);
    for (i, m) in manifests.iter().enumerate() {
        assert_eq!(
            &layout.get_manifest(&at(&format!("t{i:02}"))).await.unwrap(),
            m
        );
    }
    assert_eq!(
        index_json(dir.path())["manifests"]
            .as_array()
            .unwrap()
            .len(),
        20
    );
    assert!(stray_files(dir.path()).is_empty());
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
