//! The copy engine: make targets hold the same content as a source, byte for byte.
//!
//! A copy runs in this order, so that a failure at any point leaves no target tag moved:
//!
//! 1. the source's top manifest is read, a platform filter applied (rewriting an index only
//!    when several platforms are kept, and saying so before any byte moves);
//! 2. every target tag is looked up: a tag that already holds the same digest is done, a tag
//!    holding something else is a conflict unless `force` is set — checked before any byte
//!    moves;
//! 3. the manifest graph is read (child manifests concurrently, depth- and size-limited);
//! 4. blobs move, each once per target repository however many manifests share it, while
//!    the referrers of every manifest (signatures, SBOMs, attestations) are looked up: one
//!    `POST` that mounts from the source repository (same registry), from a repository this
//!    run already pushed it to, or from the target repository itself (a blob already there
//!    answers `201` at once), and otherwise opens the session that the source `GET` streams
//!    into with one `PUT`. Largest blobs first; sessions open ahead of their turn; a slot
//!    is freed when the last byte is sent, not when the target has committed the blob;
//! 5. child manifests by digest, then the top manifest by digest, then referrers — or, when
//!    nothing refers to the top manifest, it goes with its first tag (one `PUT` that stores
//!    it and moves the tag);
//! 6. tags last.

mod limiter;
mod report;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use acr_import_reference::Digest;
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt, stream};
use tokio::sync::mpsc::UnboundedSender;

use limiter::{Admission, Turn, Turns};
pub use limiter::{Limiter, Slot};
pub use report::{
    BlobAction, BlobEntry, CopyReport, ManifestAction, ManifestEntry, ManifestRole, Progress,
    TagEntry, Totals, human_bytes,
};

use crate::layout::OciLayout;
use crate::manifest::{Descriptor, Manifest, ManifestContent, OCI_INDEX, Platform, is_index};
use crate::{BlobStream, Registry, TransferError, UploadStart};

/// Where content lives: a repository of a registry, or an OCI image-layout folder.
#[derive(Debug, Clone)]
pub enum Endpoint {
    /// A repository of a registry.
    Registry {
        /// The registry.
        registry: Registry,
        /// The repository.
        repository: String,
    },
    /// An OCI image layout.
    Layout(OciLayout),
}

impl Endpoint {
    /// A registry repository.
    pub fn registry(registry: Registry, repository: impl Into<String>) -> Self {
        Endpoint::Registry {
            registry,
            repository: repository.into(),
        }
    }

    /// `host/repository` or `oci:path`.
    pub fn describe(&self) -> String {
        match self {
            Endpoint::Registry {
                registry,
                repository,
            } => format!("{}/{repository}", registry.host()),
            Endpoint::Layout(l) => format!("oci:{}", l.path().display()),
        }
    }

    /// The key of this endpoint's limiter: a registry host, or a layout's path.
    fn limiter_key(&self) -> String {
        match self {
            Endpoint::Registry { registry, .. } => registry.host().to_owned(),
            Endpoint::Layout(l) => format!("oci:{}", l.path().display()),
        }
    }

    fn same_place(&self, other: &Endpoint) -> bool {
        match (self, other) {
            (
                Endpoint::Registry {
                    registry: a,
                    repository: ra,
                },
                Endpoint::Registry {
                    registry: b,
                    repository: rb,
                },
            ) => a.host() == b.host() && ra == rb,
            (Endpoint::Layout(a), Endpoint::Layout(b)) => a.path() == b.path(),
            _ => false,
        }
    }

    async fn get_manifest(&self, reference: &str) -> Result<Manifest, TransferError> {
        match self {
            Endpoint::Registry {
                registry,
                repository,
            } => registry.get_manifest(repository, reference).await,
            Endpoint::Layout(l) => l.get_manifest(reference).await,
        }
    }

    /// The digest a tag (or digest) resolves to, `None` when absent.
    async fn resolve(&self, reference: &str) -> Result<Option<Digest>, TransferError> {
        match self {
            Endpoint::Registry {
                registry,
                repository,
            } => match registry.head_manifest(repository, reference).await? {
                None => Ok(None),
                Some(head) => match head.digest {
                    Some(d) => Ok(Some(d)),
                    // A registry that sends no Docker-Content-Digest: read the manifest.
                    None => Ok(Some(
                        registry.get_manifest(repository, reference).await?.digest,
                    )),
                },
            },
            Endpoint::Layout(l) => match l.get_manifest(reference).await {
                Ok(m) => Ok(Some(m.digest)),
                Err(e) if e.is_not_found() => Ok(None),
                Err(e) => Err(e),
            },
        }
    }

    async fn get_blob(&self, desc: &Descriptor, verify: bool) -> Result<BlobStream, TransferError> {
        match self {
            Endpoint::Registry {
                registry,
                repository,
            } => {
                registry
                    .get_blob(repository, &desc.digest, Some(desc.size), verify)
                    .await
            }
            Endpoint::Layout(l) => l.get_blob(&desc.digest, Some(desc.size)).await,
        }
    }

    async fn referrers(&self, digest: &Digest) -> Result<Vec<Descriptor>, TransferError> {
        match self {
            Endpoint::Registry {
                registry,
                repository,
            } => Ok(registry
                .referrers(repository, digest, None)
                .await?
                .descriptors),
            // A layout has no referrers index; manifests with a subject stored there are
            // copied when named, not discovered.
            Endpoint::Layout(_) => Ok(Vec::new()),
        }
    }
}

/// What to copy from.
#[derive(Debug, Clone)]
pub struct Source {
    /// Where.
    pub endpoint: Endpoint,
    /// A tag or a digest.
    pub reference: String,
}

/// What to copy to: an endpoint and a tag, or no tag (pushed by digest only).
#[derive(Debug, Clone)]
pub struct Target {
    /// Where.
    pub endpoint: Endpoint,
    /// The tag to set, or `None` for an untagged copy.
    pub tag: Option<String>,
}

impl Target {
    /// `host/repo:tag`, `host/repo@digest` or `oci:path:tag`.
    pub fn describe(&self, digest: &Digest) -> String {
        match &self.tag {
            Some(t) => format!("{}:{t}", self.endpoint.describe()),
            None => format!("{}@{digest}", self.endpoint.describe()),
        }
    }
}

/// `os/arch[/variant]`, as `--platform` takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformFilter {
    os: String,
    architecture: String,
    variant: Option<String>,
}

impl std::str::FromStr for PlatformFilter {
    type Err = TransferError;
    fn from_str(s: &str) -> Result<Self, TransferError> {
        let parts: Vec<&str> = s.split('/').collect();
        let bad = || {
            TransferError::Config(format!(
                "`{s}` is not a platform: expected os/arch[/variant], e.g. linux/arm64/v8"
            ))
        };
        if !(2..=3).contains(&parts.len()) || parts.iter().any(|p| p.is_empty()) {
            return Err(bad());
        }
        Ok(Self {
            os: parts[0].to_ascii_lowercase(),
            architecture: parts[1].to_ascii_lowercase(),
            variant: parts.get(2).map(|v| v.to_ascii_lowercase()),
        })
    }
}

impl std::fmt::Display for PlatformFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl PlatformFilter {
    /// Whether `p` is this platform (a filter without variant matches every variant).
    pub fn matches(&self, p: &Platform) -> bool {
        p.os.eq_ignore_ascii_case(&self.os)
            && p.architecture.eq_ignore_ascii_case(&self.architecture)
            && self.variant.as_ref().is_none_or(|v| {
                p.variant
                    .as_deref()
                    .is_some_and(|pv| pv.eq_ignore_ascii_case(v))
            })
    }
}

/// How to copy. Every field states its default.
#[derive(Debug, Clone)]
pub struct CopyOptions {
    /// Overwrite target tags that point at other content (`az acr import --force`).
    /// Default: off — a conflict fails before any byte moves.
    pub force: bool,
    /// Copy only these platforms of an index. Default: all.
    pub platforms: Vec<PlatformFilter>,
    /// Copy the referrers (signatures, SBOMs, attestations) of every copied manifest.
    /// Default: on.
    pub referrers: bool,
    /// Copy foreign and non-distributable layers as ordinary blobs. Default: off (they stay
    /// where their `urls` point, as registries expect).
    pub foreign_layers: bool,
    /// Blob transfers in flight at most, across platforms (adapts down on 429/503).
    /// Default: 8.
    pub jobs: usize,
    /// Bytes of blobs streaming at once to one target registry, at most; a blob counts for
    /// its size up to half of this, so two big blobs always stream together. Blobs take
    /// their slots largest first (a smaller blob waits until every blob at least twice its
    /// size has a slot) and fill what the budget leaves: the big uploads finish one after
    /// another, and a target that syncs each blob to disk before answering keeps receiving
    /// others meanwhile. Default: 128 MiB.
    pub bytes_in_flight: u64,
    /// Deepest nesting of indexes followed. Default: 8.
    pub max_depth: usize,
    /// Most manifests in one copy (ACR import allows 50 per image). Default: 1000.
    pub max_manifests: usize,
    /// Also hash blobs on this side while streaming them to a registry, so that a corrupted
    /// source is caught before the upload completes. Off, the target registry's own check
    /// of `PUT ?digest=` catches it (it refuses the upload; the blob is sent again): the
    /// same guarantee for half the client CPU. Blobs written to an OCI layout are always
    /// hashed here. Default: off.
    pub verify: bool,
    /// Report what would be done, write nothing. Default: off.
    pub dry_run: bool,
    /// Where progress events go. Default: nowhere.
    pub progress: Option<UnboundedSender<Progress>>,
}

impl Default for CopyOptions {
    fn default() -> Self {
        Self {
            force: false,
            platforms: Vec::new(),
            referrers: true,
            foreign_layers: false,
            jobs: 8,
            bytes_in_flight: 128 << 20,
            max_depth: 8,
            max_manifests: 1000,
            verify: false,
            dry_run: false,
            progress: None,
        }
    }
}

/// A manifest of the graph being copied.
#[derive(Debug, Clone)]
struct Node {
    manifest: Manifest,
    content: ManifestContent,
    role: ManifestRole,
    platform: Option<String>,
    /// Longest path to a leaf: leaves are 0, pushed first.
    height: usize,
}

/// The manifests (in push order) and the blobs (deduplicated) a copy moves.
#[derive(Debug, Default)]
struct Graph {
    nodes: Vec<Node>,
    blobs: Vec<Descriptor>,
    foreign: Vec<Descriptor>,
}

/// A referrer found for a copied manifest, with its own graph.
#[derive(Debug)]
struct FoundReferrer {
    subject: Digest,
    descriptor: Descriptor,
    graph: Graph,
}

/// Copies content between registries and OCI layouts. One `Copier` can run many copies
/// (the CLI's batch mode): blobs pushed by one are mounted by the next.
#[derive(Debug)]
pub struct Copier {
    options: CopyOptions,
    limiters: Mutex<HashMap<String, Arc<Limiter>>>,
    /// (target host, digest) → a repository of that host that holds it, from this run.
    pushed: Mutex<HashMap<(String, Digest), String>>,
}

impl Copier {
    /// A copier with these options.
    pub fn new(options: CopyOptions) -> Self {
        Self {
            options,
            limiters: Mutex::new(HashMap::new()),
            pushed: Mutex::new(HashMap::new()),
        }
    }

    /// The options.
    pub fn options(&self) -> &CopyOptions {
        &self.options
    }

    /// Records a note in the report and sends it to the progress renderer.
    fn note(&self, report: &mut CopyReport, text: String) {
        self.emit(Progress::Note(text.clone()));
        report.notes.push(text);
    }

    fn emit(&self, p: Progress) {
        if let Some(tx) = &self.options.progress {
            let _ = tx.send(p);
        }
    }

    fn limiter(&self, host: &str) -> Arc<Limiter> {
        self.limiters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(host.to_owned())
            .or_insert_with(|| {
                Arc::new(Limiter::with_budget(
                    self.options.jobs,
                    self.options.bytes_in_flight,
                ))
            })
            .clone()
    }

    /// Copies `source` to every target. Nothing is tagged unless everything it reaches is in
    /// place; on any error no tag has moved.
    pub async fn copy(
        &self,
        source: &Source,
        targets: &[Target],
    ) -> Result<CopyReport, TransferError> {
        let started = Instant::now();
        if targets.is_empty() {
            return Err(TransferError::Config(
                "no target: name at least one image or repository".to_owned(),
            ));
        }
        let transport = std::iter::once(&source.endpoint)
            .chain(targets.iter().map(|t| &t.endpoint))
            .find_map(|e| match e {
                Endpoint::Registry { registry, .. } => Some(registry.transport().clone()),
                Endpoint::Layout(_) => None,
            });
        let stats_before = transport.as_ref().map(|t| t.stats()).unwrap_or_default();
        // The source manifest and the target tags are independent: ask for both at once (one
        // round trip instead of two before a re-copy knows it has nothing to do).
        let (original, tagged_before) = tokio::join!(
            source.endpoint.get_manifest(&source.reference),
            futures_util::future::try_join_all(targets.iter().map(|t| async move {
                match &t.tag {
                    Some(tag) => t.endpoint.resolve(tag).await.map(Some),
                    None => Ok(None),
                }
            }))
        );
        let original = original?;
        let tagged_before = tagged_before?;
        let mut report = CopyReport {
            source: format!(
                "{}{}{}",
                source.endpoint.describe(),
                if source.reference.contains(':') {
                    "@"
                } else {
                    ":"
                },
                source.reference
            ),
            digest: String::new(),
            media_type: String::new(),
            index_rewritten_from: None,
            dry_run: self.options.dry_run,
            up_to_date: false,
            tags: Vec::new(),
            manifests: Vec::new(),
            blobs: Vec::new(),
            totals: Totals::default(),
            millis: 0,
            bytes_per_second: 0,
            requests: std::collections::BTreeMap::new(),
            retried_requests: 0,
            notes: Vec::new(),
        };
        let top = self
            .apply_platform_filter(&source.endpoint, original, &mut report)
            .await?;
        report.digest = top.digest.to_string();
        report.media_type = top.media_type.clone();

        // Target tags first: a conflict fails before any byte moves, and targets that hold
        // the digest already need nothing but (maybe) referrers.
        let before: Vec<Option<Digest>> = futures_util::future::try_join_all(
            targets.iter().zip(tagged_before).map(|(t, tagged)| {
                let digest = top.digest.to_string();
                async move {
                    match (&t.tag, tagged) {
                        (Some(_), found) => Ok(found.flatten()),
                        (None, _) => t.endpoint.resolve(&digest).await,
                    }
                }
            }),
        )
        .await?;
        for (t, b) in targets.iter().zip(&before) {
            if let (Some(tag), Some(existing)) = (&t.tag, b)
                && *existing != top.digest
                && !self.options.force
            {
                return Err(TransferError::TagConflict {
                    target: format!("{}:{tag}", t.endpoint.describe()),
                    existing: existing.to_string(),
                    incoming: top.digest.to_string(),
                });
            }
        }
        let up_to_date = before.iter().all(|b| b.as_ref() == Some(&top.digest));

        let graph = if up_to_date {
            // The registry guarantees a manifest's references exist: nothing below it to check.
            let content = top
                .parse()
                .map_err(|reason| invalid(&source.endpoint, &top.digest, reason))?;
            Graph {
                nodes: vec![Node {
                    manifest: top.clone(),
                    content,
                    role: ManifestRole::Top,
                    platform: None,
                    height: 0,
                }],
                ..Graph::default()
            }
        } else {
            self.walk(&source.endpoint, top.clone(), ManifestRole::Top, None)
                .await?
        };
        report.totals.platforms = graph
            .nodes
            .iter()
            .filter(|n| n.role == ManifestRole::Child && n.platform.is_some())
            .count()
            .max(1);
        for f in &graph.foreign {
            self.note(
                &mut report,
                format!(
                    "foreign layer {} left out: the manifest keeps pointing at {}",
                    f.digest,
                    f.urls
                        .first()
                        .map(String::as_str)
                        .unwrap_or("its original location")
                ),
            );
        }

        // Each distinct target place gets the content once; tags are written at the end.
        let mut places: Vec<&Endpoint> = Vec::new();
        for t in targets {
            if !places.iter().any(|p| p.same_place(&t.endpoint)) {
                places.push(&t.endpoint);
            }
        }
        let discover = async {
            if self.options.referrers {
                self.discover_referrers(&source.endpoint, &graph).await
            } else {
                Ok(Vec::new())
            }
        };

        // Referrers are looked up while the blobs move (they do not depend on each other).
        let referrers;
        let mut deferred: Vec<&Endpoint> = Vec::new();
        if up_to_date {
            referrers = discover.await?;
            report.up_to_date = true;
            for (t, b) in targets.iter().zip(&before) {
                if let Some(tag) = &t.tag {
                    report.tags.push(TagEntry {
                        target: format!("{}:{tag}", t.endpoint.describe()),
                        before: b.as_ref().map(Digest::to_string),
                        after: top.digest.to_string(),
                    });
                }
            }
        } else {
            let planned_bytes: u64 = graph.blobs.iter().map(|b| b.size).sum();
            self.emit(Progress::Planned {
                blobs: graph.blobs.len() * places.len(),
                bytes: planned_bytes * places.len() as u64,
            });
            let (found, copied) = tokio::join!(
                discover,
                self.copy_blobs(&source.endpoint, &graph.blobs, &places, &mut report)
            );
            copied?;
            referrers = found?;
            // With nothing that names the top manifest as its subject, a registry that gets
            // the top manifest under a tag gets it that way only: one PUT stores the manifest
            // and moves the tag together, instead of a PUT by digest and another by tag.
            let subjects =
                !referrers.is_empty() || graph.nodes.iter().any(|n| n.content.subject.is_some());
            if !subjects {
                deferred = places
                    .iter()
                    .copied()
                    .filter(|p| matches!(p, Endpoint::Registry { .. }))
                    .filter(|p| {
                        targets
                            .iter()
                            .any(|t| t.tag.is_some() && t.endpoint.same_place(p))
                    })
                    .collect();
            }
            self.push_graph(&graph, &places, &deferred, &mut report)
                .await?;
        }
        for r in &referrers {
            self.copy_referrer(&source.endpoint, r, &places, &mut report)
                .await?;
        }
        // Every copied manifest with a subject must be findable from that subject on the
        // target: the discovered referrers, and manifests that carry a subject themselves (a
        // signature copied on its own). Registries without the referrers API need the
        // `<alg>-<hex>` fallback index updated by the client.
        let mut links: Vec<(Digest, Descriptor)> = referrers
            .iter()
            .map(|r| (r.subject.clone(), r.descriptor.clone()))
            .collect();
        for node in graph
            .nodes
            .iter()
            .chain(referrers.iter().flat_map(|r| r.graph.nodes.iter()))
        {
            if let Some(subject) = &node.content.subject {
                links.push((subject.digest.clone(), referrer_descriptor(node)));
            }
        }
        if !links.is_empty() {
            self.update_fallback_indexes(&links, &places).await?;
        }
        if !up_to_date {
            self.write_tags(&top, targets, &before, &deferred, &mut report)
                .await?;
        }
        if let Some(t) = &transport {
            for (host, after) in t.stats() {
                let before = stats_before.get(&host).cloned().unwrap_or_default();
                let n = after.total() - before.total();
                if n > 0 {
                    report.requests.insert(host, n);
                }
                report.retried_requests += after.retries - before.retries;
            }
        }
        report.finish(started);
        Ok(report)
    }

    /// Applies `--platform`: one platform kept ⇒ that platform's manifest; several ⇒ a new
    /// index of those children (and their attestations), announced as rewritten.
    async fn apply_platform_filter(
        &self,
        src: &Endpoint,
        top: Manifest,
        report: &mut CopyReport,
    ) -> Result<Manifest, TransferError> {
        if self.options.platforms.is_empty() || !top.is_index() {
            if !self.options.platforms.is_empty() {
                self.note(
                    report,
                    "the source is a single-platform manifest: --platform ignored".to_owned(),
                );
            }
            return Ok(top);
        }
        let content = top
            .parse()
            .map_err(|reason| invalid(src, &top.digest, reason))?;
        let kept: Vec<&Descriptor> = content
            .manifests
            .iter()
            .filter(|d| {
                d.platform
                    .as_ref()
                    .is_some_and(|p| self.options.platforms.iter().any(|f| f.matches(p)))
            })
            .collect();
        if kept.is_empty() {
            let available: Vec<String> = content
                .manifests
                .iter()
                .filter_map(|d| d.platform.as_ref().map(Platform::to_string))
                .collect();
            return Err(TransferError::NoMatchingPlatform {
                requested: self
                    .options
                    .platforms
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
                available: available.join(", "),
            });
        }
        if kept.len() == 1 {
            let child = src.get_manifest(kept[0].digest.as_str()).await?;
            let note = format!(
                "platform {} selected: the target points at that platform's manifest {} instead of the index {}",
                kept[0]
                    .platform
                    .as_ref()
                    .map(Platform::to_string)
                    .unwrap_or_default(),
                child.digest,
                top.digest
            );
            self.note(report, note);
            report.index_rewritten_from = Some(top.digest.to_string());
            return Ok(child);
        }
        let kept_digests: HashSet<String> = kept.iter().map(|d| d.digest.to_string()).collect();
        let mut value: serde_json::Value = serde_json::from_slice(&top.bytes)
            .map_err(|e| invalid(src, &top.digest, e.to_string()))?;
        if let Some(list) = value.get_mut("manifests").and_then(|m| m.as_array_mut()) {
            list.retain(|entry| {
                let digest = entry
                    .get("digest")
                    .and_then(|d| d.as_str())
                    .unwrap_or_default();
                let attests = entry
                    .pointer("/annotations/vnd.docker.reference.digest")
                    .and_then(|d| d.as_str())
                    .is_some_and(|d| kept_digests.contains(d));
                kept_digests.contains(digest) || attests
            });
        }
        let bytes = Bytes::from(
            serde_json::to_vec(&value).map_err(|e| invalid(src, &top.digest, e.to_string()))?,
        );
        let rewritten = Manifest {
            digest: crate::digest_of(top.digest.algorithm(), &bytes),
            bytes,
            media_type: top.media_type.clone(),
        };
        let note = format!(
            "index rewritten: {} → {} ({} of {} platforms kept)",
            top.digest,
            rewritten.digest,
            kept.len(),
            content
                .manifests
                .iter()
                .filter(|d| d.platform.is_some())
                .count()
        );
        self.note(report, note);
        report.index_rewritten_from = Some(top.digest.to_string());
        Ok(rewritten)
    }

    /// Reads the manifest graph below `top`: children concurrently, level by level; then
    /// orders it leaves first.
    async fn walk(
        &self,
        src: &Endpoint,
        top: Manifest,
        role: ManifestRole,
        platform: Option<String>,
    ) -> Result<Graph, TransferError> {
        let mut nodes: HashMap<Digest, Node> = HashMap::new();
        let mut edges: HashMap<Digest, Vec<Digest>> = HashMap::new();
        let top_digest = top.digest.clone();
        let content = top
            .parse()
            .map_err(|reason| invalid(src, &top.digest, reason))?;
        let mut frontier = vec![(top, content, role, platform)];
        let mut depth = 0;
        while !frontier.is_empty() {
            depth += 1;
            if depth > self.options.max_depth + 1 {
                return Err(TransferError::GraphTooDeep {
                    limit: self.options.max_depth,
                });
            }
            let mut wanted: Vec<Descriptor> = Vec::new();
            for (manifest, content, role, platform) in frontier.drain(..) {
                let children: Vec<Digest> =
                    if is_index(&manifest.media_type) || !content.manifests.is_empty() {
                        content.manifests.iter().map(|d| d.digest.clone()).collect()
                    } else {
                        Vec::new()
                    };
                if children.contains(&manifest.digest) {
                    return Err(invalid(
                        src,
                        &manifest.digest,
                        "the index lists itself".to_owned(),
                    ));
                }
                for d in &content.manifests {
                    if !nodes.contains_key(&d.digest)
                        && !wanted.iter().any(|w| w.digest == d.digest)
                    {
                        wanted.push(d.clone());
                    }
                }
                edges.insert(manifest.digest.clone(), children);
                nodes.insert(
                    manifest.digest.clone(),
                    Node {
                        manifest,
                        content,
                        role,
                        platform,
                        height: 0,
                    },
                );
                if nodes.len() + wanted.len() > self.options.max_manifests {
                    return Err(TransferError::TooManyManifests {
                        limit: self.options.max_manifests,
                    });
                }
            }
            wanted.retain(|d| !nodes.contains_key(&d.digest));
            let fetched: Vec<(Manifest, Descriptor)> =
                stream::iter(wanted.into_iter().map(|d| async move {
                    let m = src.get_manifest(d.digest.as_str()).await?;
                    if m.bytes.len() as u64 != d.size {
                        return Err(TransferError::SizeMismatch {
                            what: format!("manifest {} (the index's descriptor)", d.digest),
                            expected: d.size,
                            actual: m.bytes.len() as u64,
                        });
                    }
                    Ok((m, d))
                }))
                .buffer_unordered(self.options.jobs.max(1))
                .try_collect()
                .await?;
            for (m, d) in fetched {
                let content = m
                    .parse()
                    .map_err(|reason| invalid(src, &m.digest, reason))?;
                let child_role = if role == ManifestRole::Referrer {
                    ManifestRole::Referrer
                } else {
                    ManifestRole::Child
                };
                frontier.push((
                    m,
                    content,
                    child_role,
                    d.platform.as_ref().map(Platform::to_string),
                ));
            }
        }
        // Post-order from the top: children before parents, each once.
        let mut order: Vec<Digest> = Vec::new();
        let mut heights: HashMap<Digest, usize> = HashMap::new();
        fn visit(
            d: &Digest,
            edges: &HashMap<Digest, Vec<Digest>>,
            heights: &mut HashMap<Digest, usize>,
            order: &mut Vec<Digest>,
            stack: &mut Vec<Digest>,
        ) -> Result<usize, String> {
            if let Some(h) = heights.get(d) {
                return Ok(*h);
            }
            if stack.contains(d) {
                return Err(format!("the manifest graph loops through {d}"));
            }
            stack.push(d.clone());
            let mut h = 0;
            for c in edges.get(d).map(Vec::as_slice).unwrap_or_default() {
                h = h.max(visit(c, edges, heights, order, stack)? + 1);
            }
            stack.pop();
            heights.insert(d.clone(), h);
            order.push(d.clone());
            Ok(h)
        }
        visit(
            &top_digest,
            &edges,
            &mut heights,
            &mut order,
            &mut Vec::new(),
        )
        .map_err(|reason| invalid(src, &top_digest, reason))?;
        let mut graph = Graph::default();
        let mut seen_blobs: HashSet<Digest> = HashSet::new();
        for d in order {
            let mut node = nodes.remove(&d).expect("every ordered digest was fetched");
            node.height = heights[&d];
            if !is_index(&node.manifest.media_type) && node.content.manifests.is_empty() {
                for b in node.content.config.iter().chain(node.content.layers.iter()) {
                    if b.is_foreign() && !self.options.foreign_layers {
                        if !graph.foreign.iter().any(|f| f.digest == b.digest) {
                            graph.foreign.push(b.clone());
                        }
                        continue;
                    }
                    if seen_blobs.insert(b.digest.clone()) {
                        graph.blobs.push(b.clone());
                    }
                }
            }
            graph.nodes.push(node);
        }
        Ok(graph)
    }

    /// The referrers of every manifest in `graph`, each with its own graph, recursively
    /// (referrers of referrers), breadth first.
    async fn discover_referrers(
        &self,
        src: &Endpoint,
        graph: &Graph,
    ) -> Result<Vec<FoundReferrer>, TransferError> {
        let mut found: Vec<FoundReferrer> = Vec::new();
        let mut known: HashSet<Digest> = graph
            .nodes
            .iter()
            .map(|n| n.manifest.digest.clone())
            .collect();
        let mut subjects: Vec<Digest> = graph
            .nodes
            .iter()
            .map(|n| n.manifest.digest.clone())
            .collect();
        for _ in 0..self.options.max_depth {
            if subjects.is_empty() {
                break;
            }
            let lists: Vec<(Digest, Vec<Descriptor>)> =
                stream::iter(subjects.drain(..).map(|s| async move {
                    let list = src.referrers(&s).await?;
                    Ok::<_, TransferError>((s, list))
                }))
                .buffer_unordered(self.options.jobs.max(1))
                .try_collect()
                .await?;
            for (subject, list) in lists {
                for descriptor in list {
                    if !known.insert(descriptor.digest.clone()) {
                        continue;
                    }
                    let manifest = src.get_manifest(descriptor.digest.as_str()).await?;
                    let graph = self
                        .walk(src, manifest, ManifestRole::Referrer, None)
                        .await?;
                    subjects.extend(graph.nodes.iter().map(|n| n.manifest.digest.clone()));
                    found.push(FoundReferrer {
                        subject: subject.clone(),
                        descriptor,
                        graph,
                    });
                    if found.len() > self.options.max_manifests {
                        return Err(TransferError::TooManyManifests {
                            limit: self.options.max_manifests,
                        });
                    }
                }
            }
        }
        Ok(found)
    }

    /// Moves every blob to every place: to the first place of each registry first, so the
    /// others mount from it.
    async fn copy_blobs(
        &self,
        src: &Endpoint,
        blobs: &[Descriptor],
        places: &[&Endpoint],
        report: &mut CopyReport,
    ) -> Result<(), TransferError> {
        let mut rounds: Vec<Vec<&Endpoint>> = Vec::new();
        let mut seen_hosts: HashSet<String> = HashSet::new();
        let (mut first, mut rest) = (Vec::new(), Vec::new());
        for p in places {
            if seen_hosts.insert(p.limiter_key()) {
                first.push(*p);
            } else {
                rest.push(*p);
            }
        }
        rounds.push(first);
        if !rest.is_empty() {
            rounds.push(rest);
        }
        for round in rounds {
            let mut jobs: Vec<(&Descriptor, &Endpoint)> = blobs
                .iter()
                .flat_map(|b| round.iter().map(move |p| (b, *p)))
                .collect();
            // Largest first: the big uploads finish (and the target syncs them to disk) while
            // small ones still stream, instead of all finishing together at the end.
            jobs.sort_by_key(|j| std::cmp::Reverse(j.0.size));
            // And in that order they take their slots, whichever upload session opens first.
            let mut turns: HashMap<String, Arc<Turns>> = HashMap::new();
            let entries: Vec<BlobEntry> = stream::iter(jobs.into_iter().map(|(b, p)| {
                let turn = turns.entry(p.limiter_key()).or_default().by_size(b.size);
                self.transfer_blob(src, b, p, turn)
            }))
            // Four times the slots: blobs waiting for a slot have their upload session
            // open already, and an upload whose bytes are all sent gives its slot to
            // the next blob while the target commits it (syncs it to disk, links it).
            .buffer_unordered(self.options.jobs.max(1) * 4)
            .try_collect()
            .await?;
            report.blobs.extend(entries);
        }
        Ok(())
    }

    async fn transfer_blob(
        &self,
        src: &Endpoint,
        desc: &Descriptor,
        target: &Endpoint,
        turn: Turn,
    ) -> Result<BlobEntry, TransferError> {
        let started = Instant::now();
        let mut entry = BlobEntry {
            digest: desc.digest.to_string(),
            size: desc.size,
            media_type: desc.media_type.clone(),
            target: target.describe(),
            action: BlobAction::Skipped,
            mounted_from: None,
            millis: 0,
            retries: 0,
        };
        match target {
            Endpoint::Layout(layout) => {
                if layout.blob_size(&desc.digest).await?.is_some() {
                    entry.action = BlobAction::Skipped;
                } else if self.options.dry_run {
                    entry.action = BlobAction::WouldCopy;
                } else {
                    self.emit(Progress::BlobStarted {
                        digest: entry.digest.clone(),
                        size: desc.size,
                    });
                    let limiter = self.limiter(&target.limiter_key());
                    let _slot = limiter.acquire().await;
                    let mut attempt = 0;
                    loop {
                        let (stream, failure) = self.source_stream(src, desc, false, None).await?;
                        match layout.put_blob(&desc.digest, Some(desc.size), stream).await {
                            Ok(()) => break,
                            Err(e) => {
                                let e = failure
                                    .lock()
                                    .unwrap_or_else(|p| p.into_inner())
                                    .take()
                                    .unwrap_or(e);
                                if !blob_retryable(&e) || attempt >= 3 {
                                    return Err(e);
                                }
                                attempt += 1;
                                entry.retries += 1;
                                self.emit(Progress::BlobRetried {
                                    digest: entry.digest.clone(),
                                    error: e.to_string(),
                                });
                            }
                        }
                    }
                    entry.action = BlobAction::Copied;
                }
            }
            Endpoint::Registry {
                registry,
                repository,
            } => {
                let host = registry.host().to_owned();
                let known = self
                    .pushed
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(&(host.clone(), desc.digest.clone()))
                    .cloned();
                if known.as_deref() == Some(repository.as_str()) {
                    entry.action = BlobAction::Skipped;
                    entry.millis = started.elapsed().as_millis() as u64;
                    return Ok(entry);
                }
                // Mount from the source repository (same registry), from where this run put
                // the blob, or from the target repository itself: a blob it already holds
                // answers 201 at once, a missing one opens the upload session.
                let from = match src {
                    Endpoint::Registry {
                        registry: s,
                        repository: r,
                    } if s.host() == host => r.clone(),
                    _ => known.clone().unwrap_or_else(|| repository.clone()),
                };
                if self.options.dry_run {
                    entry.action = if registry
                        .head_blob(repository, &desc.digest)
                        .await?
                        .is_some()
                    {
                        BlobAction::Skipped
                    } else if from != *repository {
                        entry.mounted_from = Some(from);
                        BlobAction::WouldMount
                    } else {
                        BlobAction::WouldCopy
                    };
                    return Ok(entry);
                }
                let mut admission = Admission {
                    limiter: self.limiter(&host),
                    turn,
                };
                let mut attempt = 0;
                loop {
                    match self
                        .push_one(src, desc, registry, repository, &from, &mut admission)
                        .await
                    {
                        Ok(action) => {
                            admission.limiter.succeeded();
                            entry.action = action;
                            if action == BlobAction::Mounted {
                                entry.mounted_from = Some(from.clone());
                            }
                            break;
                        }
                        Err(e) => {
                            // A retry goes without waiting for its turn again; those after it
                            // do not wait for it either.
                            admission.turn.done();
                            if matches!(e.status(), Some(429 | 503)) {
                                admission.limiter.back_off();
                            }
                            if !blob_retryable(&e) || attempt >= 3 {
                                return Err(e);
                            }
                            attempt += 1;
                            entry.retries += 1;
                            self.emit(Progress::BlobRetried {
                                digest: entry.digest.clone(),
                                error: e.to_string(),
                            });
                        }
                    }
                }
                self.pushed
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .entry((host, desc.digest.clone()))
                    .or_insert_with(|| repository.clone());
            }
        }
        self.emit(Progress::BlobDone {
            digest: entry.digest.clone(),
            action: entry.action,
        });
        entry.millis = started.elapsed().as_millis() as u64;
        Ok(entry)
    }

    /// One attempt: mount-or-start, then stream the source into the session. The `POST`
    /// goes without a slot (sessions open ahead of their turn); the slot is taken once the
    /// session is open and every larger blob has taken its own (the blob's turn), and held
    /// until the last byte is handed to the upload, not while the target commits the blob:
    /// a registry that syncs each blob to disk before answering then keeps receiving other
    /// blobs meanwhile.
    async fn push_one(
        &self,
        src: &Endpoint,
        desc: &Descriptor,
        registry: &Registry,
        repository: &str,
        from: &str,
        admission: &mut Admission,
    ) -> Result<BlobAction, TransferError> {
        match registry
            .start_upload(repository, Some((&desc.digest, from)))
            .await?
        {
            UploadStart::Mounted => Ok(if from == repository {
                BlobAction::Skipped
            } else {
                BlobAction::Mounted
            }),
            UploadStart::Session(session) => {
                // A blob weighs its size, up to half the budget: two big blobs stream at once
                // however big, smaller ones fill what the budget leaves once their turn comes.
                let weight = desc.size.min(self.options.bytes_in_flight / 2);
                let slot = admission.slot(weight).await;
                self.emit(Progress::BlobStarted {
                    digest: desc.digest.to_string(),
                    size: desc.size,
                });
                let (stream, failure) = match self
                    .source_stream(src, desc, self.options.verify, Some(slot))
                    .await
                {
                    Ok(s) => s,
                    Err(e) => {
                        registry.cancel_upload(&session).await;
                        return Err(e);
                    }
                };
                match registry
                    .put_blob(session, &desc.digest, desc.size, stream)
                    .await
                {
                    Ok(()) => Ok(BlobAction::Copied),
                    // A failure of the source side explains the failed upload better.
                    Err(e) => Err(failure
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .take()
                        .unwrap_or(e)),
                }
            }
        }
    }

    /// The source blob as a stream that reports progress and keeps its own error, so that a
    /// failed upload can say what really went wrong. `permit` is released once the stream has
    /// yielded the blob's last byte (or failed).
    async fn source_stream(
        &self,
        src: &Endpoint,
        desc: &Descriptor,
        verify: bool,
        mut permit: Option<Slot>,
    ) -> Result<
        (
            impl futures_util::Stream<Item = Result<Bytes, TransferError>> + Send + Unpin + 'static,
            Arc<Mutex<Option<TransferError>>>,
        ),
        TransferError,
    > {
        let blob = src.get_blob(desc, verify).await?;
        let failure: Arc<Mutex<Option<TransferError>>> = Arc::new(Mutex::new(None));
        let slot = failure.clone();
        let progress = self.options.progress.clone();
        let digest = desc.digest.to_string();
        let (size, mut sent) = (desc.size, 0u64);
        let stream = blob.map(move |item| match item {
            Ok(bytes) => {
                sent += bytes.len() as u64;
                if sent >= size {
                    permit.take();
                }
                if let Some(tx) = &progress {
                    let _ = tx.send(Progress::BlobBytes {
                        digest: digest.clone(),
                        bytes: bytes.len() as u64,
                    });
                }
                Ok(bytes)
            }
            Err(e) => {
                permit.take();
                let shown = TransferError::Connection {
                    url: "the source".to_owned(),
                    message: e.to_string(),
                    retries: 0,
                    source: None,
                };
                *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                Err(shown)
            }
        });
        Ok((stream, failure))
    }

    /// Pushes the graph's manifests by digest to every place, leaves first; manifests of one
    /// height go concurrently.
    /// The top manifest is not pushed by digest to the `deferred` places: their first tag
    /// write stores it.
    async fn push_graph(
        &self,
        graph: &Graph,
        places: &[&Endpoint],
        deferred: &[&Endpoint],
        report: &mut CopyReport,
    ) -> Result<(), TransferError> {
        let max_height = graph.nodes.iter().map(|n| n.height).max().unwrap_or(0);
        for h in 0..=max_height {
            let level: Vec<&Node> = graph.nodes.iter().filter(|n| n.height == h).collect();
            let jobs = level
                .iter()
                .flat_map(|n| places.iter().map(move |p| (*n, *p)));
            let entries: Vec<ManifestEntry> = stream::iter(jobs.map(|(n, p)| {
                let later = n.role == ManifestRole::Top && deferred.iter().any(|d| d.same_place(p));
                self.push_manifest(n, p, later)
            }))
            .buffer_unordered(self.options.jobs.max(1))
            .try_collect()
            .await?;
            report.manifests.extend(entries);
        }
        Ok(())
    }

    /// Pushes one manifest by digest; `with_tag`: it goes with the tag write instead (the
    /// entry is reported now, the copy fails as a whole if that write does).
    async fn push_manifest(
        &self,
        node: &Node,
        place: &Endpoint,
        with_tag: bool,
    ) -> Result<ManifestEntry, TransferError> {
        let entry = ManifestEntry {
            digest: node.manifest.digest.to_string(),
            media_type: node.manifest.media_type.clone(),
            size: node.manifest.bytes.len() as u64,
            platform: node.platform.clone(),
            artifact_type: node.content.artifact_type.clone(),
            role: node.role,
            target: place.describe(),
            action: if self.options.dry_run {
                ManifestAction::WouldPush
            } else {
                ManifestAction::Pushed
            },
        };
        if self.options.dry_run || with_tag {
            return Ok(entry);
        }
        match place {
            Endpoint::Registry {
                registry,
                repository,
            } => {
                registry
                    .push_manifest(repository, node.manifest.digest.as_str(), &node.manifest)
                    .await?;
            }
            // Only the top manifest gets an index.json entry (its tag, or an untagged entry
            // for an untagged copy); children and referrers are blobs, as skopeo writes them.
            Endpoint::Layout(l) if node.role == ManifestRole::Top => {
                l.put_manifest(&node.manifest, None).await?
            }
            Endpoint::Layout(l) => l.put_manifest_blob(&node.manifest).await?,
        }
        self.emit(Progress::ManifestPushed {
            digest: entry.digest.clone(),
            target: entry.target.clone(),
        });
        Ok(entry)
    }

    async fn copy_referrer(
        &self,
        src: &Endpoint,
        found: &FoundReferrer,
        places: &[&Endpoint],
        report: &mut CopyReport,
    ) -> Result<(), TransferError> {
        self.copy_blobs(src, &found.graph.blobs, places, report)
            .await?;
        self.push_graph(&found.graph, places, &[], report).await?;
        self.note(
            report,
            format!(
                "referrer {} ({}) of {} copied",
                found.descriptor.digest,
                found
                    .descriptor
                    .artifact_type
                    .as_deref()
                    .unwrap_or("no artifactType"),
                found.subject
            ),
        );
        Ok(())
    }

    /// On registries without the referrers API, records the copied referrers in the
    /// `<alg>-<hex>` fallback index of each subject (merged with what is there).
    async fn update_fallback_indexes(
        &self,
        links: &[(Digest, Descriptor)],
        places: &[&Endpoint],
    ) -> Result<(), TransferError> {
        if self.options.dry_run {
            return Ok(());
        }
        let mut by_subject: BTreeMap<String, (Digest, Vec<&Descriptor>)> = BTreeMap::new();
        for (subject, descriptor) in links {
            let entry = by_subject
                .entry(subject.to_string())
                .or_insert_with(|| (subject.clone(), Vec::new()));
            if !entry.1.iter().any(|d| d.digest == descriptor.digest) {
                entry.1.push(descriptor);
            }
        }
        for place in places {
            let Endpoint::Registry {
                registry,
                repository,
            } = place
            else {
                continue;
            };
            for (subject, descriptors) in by_subject.values() {
                let current = registry.referrers(repository, subject, None).await?;
                if current.source == crate::ReferrersSource::Api {
                    continue;
                }
                let mut entries: Vec<serde_json::Value> = match &current.fallback_index {
                    Some(index) => serde_json::from_slice::<serde_json::Value>(&index.bytes)
                        .ok()
                        .and_then(|v| v.get("manifests").and_then(|m| m.as_array()).cloned())
                        .unwrap_or_default(),
                    None => Vec::new(),
                };
                let mut changed = false;
                for d in descriptors {
                    if current.descriptors.iter().any(|c| c.digest == d.digest) {
                        continue;
                    }
                    entries.push(descriptor_json(d));
                    changed = true;
                }
                if !changed {
                    continue;
                }
                let index = serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries});
                let bytes = Bytes::from(
                    serde_json::to_vec(&index).map_err(|e| TransferError::Config(e.to_string()))?,
                );
                let manifest = Manifest {
                    digest: crate::digest_of(subject.algorithm(), &bytes),
                    bytes,
                    media_type: OCI_INDEX.to_owned(),
                };
                registry
                    .push_manifest(repository, subject.referrers_tag().as_str(), &manifest)
                    .await?;
            }
        }
        Ok(())
    }

    /// Writes the tags; on a `deferred` place, the first tag write is also how the top
    /// manifest arrives there, so it is written even where the tag already holds it.
    async fn write_tags(
        &self,
        top: &Manifest,
        targets: &[Target],
        before: &[Option<Digest>],
        deferred: &[&Endpoint],
        report: &mut CopyReport,
    ) -> Result<(), TransferError> {
        let mut stored: Vec<&Endpoint> = Vec::new();
        for (t, b) in targets.iter().zip(before) {
            let Some(tag) = &t.tag else { continue };
            let name = format!("{}:{tag}", t.endpoint.describe());
            let first_on_deferred = deferred.iter().any(|d| d.same_place(&t.endpoint))
                && !stored.iter().any(|s| s.same_place(&t.endpoint));
            if first_on_deferred {
                stored.push(&t.endpoint);
            }
            if !self.options.dry_run && (b.as_ref() != Some(&top.digest) || first_on_deferred) {
                match &t.endpoint {
                    Endpoint::Registry {
                        registry,
                        repository,
                    } => {
                        registry.push_manifest(repository, tag, top).await?;
                    }
                    Endpoint::Layout(l) => l.put_manifest(top, Some(tag)).await?,
                }
                if first_on_deferred {
                    self.emit(Progress::ManifestPushed {
                        digest: top.digest.to_string(),
                        target: t.endpoint.describe(),
                    });
                }
                self.emit(Progress::TagWritten {
                    target: name.clone(),
                });
            }
            report.tags.push(TagEntry {
                target: name,
                before: b.as_ref().map(Digest::to_string),
                after: top.digest.to_string(),
            });
        }
        Ok(())
    }
}

/// A blob transfer worth another attempt: transient trouble, or content the target found not
/// to match its digest (corrupted on the way).
fn blob_retryable(e: &TransferError) -> bool {
    e.is_retryable() || e.details().and_then(|d| d.code()) == Some("DIGEST_INVALID")
}

fn invalid(src: &Endpoint, digest: &Digest, reason: String) -> TransferError {
    TransferError::InvalidManifest {
        context: crate::RequestContext {
            operation: crate::Operation::GetManifest,
            registry: src.describe(),
            repository: None,
            reference: Some(digest.to_string()),
        },
        reason,
    }
}

/// The descriptor a referrers index lists for a manifest: its media type, digest and size,
/// its `artifactType` (or, as the spec says, its config's media type) and its annotations.
fn referrer_descriptor(node: &Node) -> Descriptor {
    let annotations = serde_json::from_slice::<serde_json::Value>(&node.manifest.bytes)
        .ok()
        .and_then(|v| v.get("annotations").cloned())
        .and_then(|a| serde_json::from_value(a).ok())
        .unwrap_or_default();
    Descriptor {
        media_type: node.manifest.media_type.clone(),
        digest: node.manifest.digest.clone(),
        size: node.manifest.bytes.len() as u64,
        urls: Vec::new(),
        platform: None,
        artifact_type: node
            .content
            .artifact_type
            .clone()
            .or_else(|| node.content.config.as_ref().map(|c| c.media_type.clone())),
        annotations,
    }
}

fn descriptor_json(d: &Descriptor) -> serde_json::Value {
    let mut v = serde_json::json!({
        "mediaType": d.media_type,
        "digest": d.digest.to_string(),
        "size": d.size,
    });
    if let Some(t) = &d.artifact_type {
        v["artifactType"] = serde_json::Value::String(t.clone());
    }
    if !d.annotations.is_empty() {
        v["annotations"] = serde_json::to_value(&d.annotations).unwrap_or_default();
    }
    v
}
