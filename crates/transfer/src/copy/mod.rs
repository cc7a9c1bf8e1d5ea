//! The copy engine: make targets hold the same content as a source, byte for byte.
//!
//! A copy runs in this order, so that a failure at any point leaves no target tag moved:
//!
//! 1. the source's top manifest is resolved with a `HEAD` (digest and media type; a pull on
//!    registries that count manifest `GET`s is not spent), a platform filter applied
//!    (reading the index, rewriting it only when several platforms are kept, and saying so
//!    before any byte moves);
//! 2. every target tag is looked up: a tag that already holds the same digest is done, a tag
//!    holding something else is a conflict unless `force` is set — checked before any byte
//!    moves; when every target holds the digest, no source manifest is read at all;
//! 3. the manifest graph is read (child manifests concurrently, depth- and size-limited),
//!    each manifest once per copier (a cache shared by the copies of a batch), after the
//!    pulls it needs are set against the budget the source announced;
//! 4. blobs move, each once per target repository however many manifests share it, while
//!    what is attached to every manifest (signatures, SBOMs, attestations: OCI referrers and
//!    digest tags, see [`followers`]) is looked up: one
//!    `POST` that mounts from the source repository (same registry), from a repository this
//!    run already pushed it to, or from the target repository itself (a blob already there
//!    answers `201` at once), and otherwise opens the session that the source `GET` streams
//!    into with one `PUT`. Copies running at once on one [`Copier`] share this: a blob goes
//!    into a repository once, and into a registry from the source once (the others wait for
//!    that upload and mount from it), so no repository gets a blob again while another copy's
//!    manifest `PUT` is being checked against it. Largest blobs first; sessions open ahead of their turn; a slot
//!    is freed when the last byte is sent, not when the target has committed the blob;
//! 5. child manifests by digest, then the top manifest by digest, then referrers and digest
//!    tags (each tagged manifest under its tag, once the image it names is in place) — or,
//!    when nothing is attached to the image, the top manifest goes with its first tag (one
//!    `PUT` that stores it and moves the tag);
//! 6. tags last.
//!
//! An attached artifact a target refuses (its media type, say), or whose digest tag the
//! target holds with other content (unless `force`), stays behind with a note; the report
//! counts what followed ([`CopyReport::followers`]).

mod blobs;
mod digest_tags;
mod endpoint;
pub mod followers;
mod graph;
mod limiter;
mod options;
mod platform;
mod push;
mod referrers;
mod report;
mod resolve;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use acr_import_reference::{Digest, Repository, TagOrDigest};

pub use endpoint::{Endpoint, Source, Target};
use followers::Followers;
pub use followers::SMALL_REPOSITORY;
use graph::{Graph, Node};
use limiter::Limiter;
pub use options::{CopyOptions, PlatformFilter};
pub use report::{
    BlobAction, BlobEntry, CopyReport, FollowedTotals, FollowerAction, FollowerEntry, FollowerKind,
    FollowerLink, ManifestAction, ManifestEntry, ManifestRole, Progress, ProgressSink, TagEntry,
    Totals, human_bytes,
};

use crate::TransferError;
use crate::manifest::Manifest;
use crate::registry::cache::{ManifestCache, Reads};

/// Copies content between registries and OCI layouts. One `Copier` can run many copies at
/// once (a batch): a blob goes into each target repository once however many copies need it
/// there, and into a registry from the source once — the first copy that needs it uploads it
/// while the others wait, then mount it from there; a source manifest read by one copy is not
/// fetched again by another.
#[derive(Debug)]
pub struct Copier {
    options: CopyOptions,
    shared: Arc<Shared>,
}

/// What copiers made with [`Copier::with_options`] share: the limits per registry, the
/// blobs in flight and the source manifests read.
#[derive(Debug, Default)]
struct Shared {
    limiters: Mutex<HashMap<String, Arc<Limiter>>>,
    /// Source manifests read by the copies, by registry, repository and digest.
    manifests: Arc<ManifestCache>,
    /// (target host, digest) → a repository of that host that holds it, from this run; locked
    /// while the first upload of the blob to that host runs.
    holders: Cells<(String, Digest), Option<Repository>>,
    /// (target host, repository, digest) → whether this run put the blob there; locked while
    /// it is being put there.
    placed: Cells<(String, Repository, Digest), bool>,
}

/// The state of one blob at one place, held across the `await`s of the copy that moves it.
type BlobCell<T> = Arc<tokio::sync::Mutex<T>>;
/// Blob cells by place.
type Cells<K, T> = Mutex<HashMap<K, BlobCell<T>>>;

impl Copier {
    /// A copier with these options.
    pub fn new(options: CopyOptions) -> Self {
        Self {
            options,
            shared: Arc::default(),
        }
    }

    /// A copier with other options (per-entry `force`, platforms or referrers of a batch) that
    /// shares this one's limits per registry, its blobs in flight and the source manifests it
    /// read: copies running on both still move a blob into a repository once.
    pub fn with_options(&self, options: CopyOptions) -> Copier {
        Copier {
            options,
            shared: self.shared.clone(),
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
        if let Some(sink) = &self.options.progress {
            sink.event(p);
        }
    }

    fn limiter(&self, host: &str) -> Arc<Limiter> {
        self.shared
            .limiters
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
        let mut report = self.new_report(source);
        if !self.options.referrers {
            self.note(
                &mut report,
                "--no-referrers: signatures, attestations and SBOMs (referrers and digest tags) \
                 were not looked up and stay behind"
                    .to_owned(),
            );
        }
        // The source reads manifests through this copier's cache and counts its pulls.
        let pulls = Arc::new(AtomicU64::new(0));
        let src = source
            .endpoint
            .reading_through(Reads::new(self.shared.manifests.clone(), pulls.clone()));
        let result = self
            .copy_from(&src, &source.reference, targets, &mut report)
            .await;
        report.source_pulls = pulls.load(Ordering::Relaxed);
        result?;
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

    /// Steps 1 to 6, from `src` (the source endpoint reading through this copier's cache).
    async fn copy_from(
        &self,
        src: &Endpoint,
        reference: &TagOrDigest,
        targets: &[Target],
        report: &mut CopyReport,
    ) -> Result<(), TransferError> {
        // Each distinct target place gets the content once; tags are written at the end.
        let mut places: Vec<&Endpoint> = Vec::new();
        for t in targets {
            if !places.iter().any(|p| p.same_place(&t.endpoint)) {
                places.push(&t.endpoint);
            }
        }
        src.ask_first(&places);
        let (top, before) = self
            .resolve_targets(src, reference, targets, report)
            .await?;
        let rewritten = top.rewritten_from.clone();
        let up_to_date = before.iter().all(|b| b.as_ref() == Some(&top.digest));
        if up_to_date {
            report.up_to_date = true;
            report.totals.platforms = 1;
            // The top's bytes are read (from a target) only for its referrers; they also tell
            // the platforms and, for one platform, the blobs already in place. Without
            // referrers a no-op import sends only its HEADs.
            let graph = if self.options.referrers {
                let graph = self.held_top(src, &top, &places, report).await?;
                already_there(&graph, &places, report);
                Some(graph)
            } else {
                None
            };
            for (t, b) in targets.iter().zip(&before) {
                if let Some(tag) = &t.tag {
                    report.tags.push(TagEntry {
                        target: format!("{}:{tag}", t.endpoint.describe()),
                        before: b.as_ref().map(Digest::to_string),
                        after: top.digest.to_string(),
                    });
                }
            }
            return match &graph {
                Some(graph) => {
                    self.refresh_followers(src, graph, &places, rewritten.as_ref(), report)
                        .await
                }
                None => Ok(()),
            };
        }
        let top = self.read_top(src, top, report).await?;
        let graph = self.read_graph(src, &top, &places, report).await?;
        let (followers, deferred) = self
            .move_content(src, &graph, targets, &places, rewritten.as_ref(), report)
            .await?;
        self.copy_followers(src, &graph, followers, &places, report)
            .await?;
        self.write_tags(&top, targets, &before, &deferred, report)
            .await
    }

    /// An up-to-date copy's top manifest, as a graph of its own: read from the first target,
    /// which holds the same digest, so the source is not asked for a manifest it would count
    /// as a pull (a target that will not serve it — a push-only credential — leaves it to the
    /// source). Its index names the platforms; its blobs, for a single-platform manifest, are
    /// known to be in place.
    async fn held_top(
        &self,
        src: &Endpoint,
        top: &resolve::Top,
        places: &[&Endpoint],
        report: &mut CopyReport,
    ) -> Result<Graph, TransferError> {
        let manifest = match &top.manifest {
            Some(m) => m.clone(),
            None => match places[0].get_by_digest(&top.digest).await {
                Ok(m) => m,
                Err(_) => src.get_by_digest(&top.digest).await?,
            },
        };
        let graph = self.single_node_graph(src, manifest)?;
        report.totals.platforms = graph.nodes[0]
            .content
            .manifests
            .iter()
            .filter(|d| d.platform.as_ref().is_some_and(|p| p.os != "unknown"))
            .count()
            .max(1);
        Ok(graph)
    }

    /// An up-to-date copy: nothing of the image moves, but what was attached to it on the
    /// source since (new signatures: referrers, digest tags) is copied.
    async fn refresh_followers(
        &self,
        src: &Endpoint,
        graph: &Graph,
        places: &[&Endpoint],
        rewritten: Option<&Digest>,
        report: &mut CopyReport,
    ) -> Result<(), TransferError> {
        let followers = self.find_followers(src, graph, places, rewritten).await?;
        self.copy_followers(src, graph, followers, places, report)
            .await
    }

    fn new_report(&self, source: &Source) -> CopyReport {
        let separator = match source.reference {
            TagOrDigest::Digest(_) => "@",
            TagOrDigest::Tag(_) => ":",
        };
        CopyReport {
            source: format!(
                "{}{separator}{}",
                source.endpoint.describe(),
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
            followers: Vec::new(),
            followers_off: !self.options.referrers,
            totals: Totals::default(),
            millis: 0,
            bytes_per_second: 0,
            requests: std::collections::BTreeMap::new(),
            retried_requests: 0,
            source_pulls: 0,
            notes: Vec::new(),
        }
    }

    /// Step 3: the manifest graph below `top`, after the pulls its children need are set
    /// against the budget the source announced.
    async fn read_graph(
        &self,
        src: &Endpoint,
        top: &Manifest,
        places: &[&Endpoint],
        report: &mut CopyReport,
    ) -> Result<Graph, TransferError> {
        self.find_held_children(src, top, places).await;
        self.check_children_budget(src, top, report)?;
        let graph = self.walk(src, top.clone(), ManifestRole::Top, None).await?;
        report.totals.platforms = graph
            .nodes
            .iter()
            .filter(|n| n.role == ManifestRole::Child && n.platform.is_some())
            .count()
            .max(1);
        for f in &graph.foreign {
            self.note(
                report,
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
        Ok(graph)
    }

    /// A graph of `top` alone (the registry guarantees a stored manifest's references exist).
    fn single_node_graph(&self, src: &Endpoint, top: Manifest) -> Result<Graph, TransferError> {
        let content = top
            .parse()
            .map_err(|reason| invalid(src, &top.digest, reason))?;
        Ok(Graph {
            nodes: vec![Node {
                manifest: top,
                content,
                role: ManifestRole::Top,
                platform: None,
                height: 0,
            }],
            ..Graph::default()
        })
    }

    /// Steps 4 and 5: blobs to every place while the referrers are looked up (they do not
    /// depend on each other), then the graph's manifests. Returns the referrers found and the
    /// places where the top manifest goes with its first tag instead of by digest.
    async fn move_content<'p>(
        &self,
        src: &Endpoint,
        graph: &Graph,
        targets: &[Target],
        places: &[&'p Endpoint],
        rewritten: Option<&Digest>,
        report: &mut CopyReport,
    ) -> Result<(Followers, Vec<&'p Endpoint>), TransferError> {
        let planned_bytes: u64 = graph.blobs.iter().map(|b| b.size).sum();
        self.emit(Progress::Planned {
            blobs: graph.blobs.len() * places.len(),
            bytes: planned_bytes * places.len() as u64,
        });
        let (found, copied) = tokio::join!(
            self.find_followers(src, graph, places, rewritten),
            self.copy_blobs(src, &graph.blobs, places, report)
        );
        copied?;
        let followers = found?;
        // With nothing that names the top manifest as its subject, a registry that gets the
        // top manifest under a tag gets it that way only: one PUT stores the manifest and
        // moves the tag together, instead of a PUT by digest and another by tag.
        let subjects =
            !followers.is_empty() || graph.nodes.iter().any(|n| n.content.subject.is_some());
        let mut deferred = Vec::new();
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
        self.push_graph(graph, places, &deferred, report).await?;
        Ok((followers, deferred))
    }
}

/// An up-to-date copy reads no child manifest, so only the blobs of a single-platform top
/// manifest are known: each is reported as already in every target place.
fn already_there(graph: &Graph, places: &[&Endpoint], report: &mut CopyReport) {
    let top = &graph.nodes[0].content;
    for place in places {
        for d in top.config.iter().chain(&top.layers) {
            report.blobs.push(BlobEntry {
                digest: d.digest.to_string(),
                size: d.size,
                media_type: d.media_type.clone(),
                target: place.describe(),
                action: BlobAction::Skipped,
                mounted_from: None,
                millis: 0,
                retries: 0,
            });
        }
    }
}

fn invalid(src: &Endpoint, digest: &Digest, source: crate::ManifestError) -> TransferError {
    TransferError::manifest(
        crate::RequestContext {
            operation: crate::Operation::GetManifest,
            registry: src.describe(),
            repository: None,
            reference: Some(digest.to_string()),
        },
        source,
    )
}
