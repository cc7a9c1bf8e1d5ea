//! The start of a copy: the source resolved with a `HEAD`, the targets looked up, and the
//! pulls the plan needs set against the budget the source announced — all before a
//! manifest is read.
//!
//! Registries that count pulls count manifest `GET`s (Docker Hub: "Using GET emulates a
//! real pull and counts towards the limit. Using HEAD won't", docs.docker.com, Docker Hub
//! pull usage and limits). So the source's top manifest is known by its `HEAD` (digest,
//! media type, size), and read only when it must move: an import whose every target holds
//! that digest already reads no source manifest at all.

use acr_import_reference::{Digest, TagOrDigest};

use super::{Copier, CopyReport, Endpoint, Target};
use crate::manifest::{DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED, Manifest, is_index};
use crate::{RequestContext, TransferError};

/// The manifest a copy makes its targets hold: known by its digest, read when it must move.
#[derive(Debug, Clone)]
pub(super) struct Top {
    pub(super) digest: Digest,
    pub(super) media_type: String,
    /// The bytes, once read (a `HEAD` gives only the digest).
    pub(super) manifest: Option<Manifest>,
    /// The index `--platform` rewrote (or chose a child of) into this one: what was
    /// attached to it is looked up too.
    pub(super) rewritten_from: Option<Digest>,
}

impl Top {
    pub(super) fn read(manifest: Manifest) -> Self {
        Self {
            digest: manifest.digest.clone(),
            media_type: manifest.media_type.clone(),
            manifest: Some(manifest),
            rewritten_from: None,
        }
    }
}

/// A media type that names no manifest kind: the body must be read to know it.
fn generic(media_type: &str) -> bool {
    matches!(
        media_type,
        "" | "application/json" | "text/plain" | "application/octet-stream"
    )
}

impl Copier {
    /// The source's manifest by a `HEAD`: its digest and media type, unread. A registry that
    /// sends no `Docker-Content-Digest` or no manifest media type on `HEAD`, or a `HEAD`
    /// that finds nothing (the `GET` says why, with the registry's error), is read instead.
    /// A schema 1 manifest is refused here, before it costs a pull.
    async fn source_top(
        &self,
        src: &Endpoint,
        reference: &TagOrDigest,
    ) -> Result<Top, TransferError> {
        let head = match src {
            Endpoint::Registry { .. } => src.head(reference).await?,
            Endpoint::Layout(_) => None,
        };
        if let Some(head) = &head
            && let Some(mt) = &head.media_type
            && (mt == DOCKER_SCHEMA1 || mt == DOCKER_SCHEMA1_SIGNED)
        {
            let (registry, repository) = match src {
                Endpoint::Registry {
                    registry,
                    repository,
                } => (registry.host().to_owned(), Some(repository.to_string())),
                Endpoint::Layout(_) => (src.describe(), None),
            };
            return Err(TransferError::Schema1(RequestContext {
                operation: crate::Operation::GetManifest,
                registry,
                repository,
                reference: Some(reference.to_string()),
            }));
        }
        match head {
            Some(crate::ManifestHead {
                digest: Some(digest),
                media_type: Some(media_type),
                ..
            }) if !generic(&media_type) => Ok(Top {
                digest,
                media_type,
                manifest: None,
                rewritten_from: None,
            }),
            _ => Ok(Top::read(src.get_manifest(reference).await?)),
        }
    }

    /// Steps 1 and 2: the source's top manifest (platform filter applied), known by its
    /// digest and read only if the filter needs it, and what each target holds now (`None`:
    /// nothing under that tag, or the digest is absent for an untagged target). A tag
    /// holding other content is a conflict unless `force` is set: it fails here, before any
    /// byte moves.
    pub(super) async fn resolve_targets(
        &self,
        src: &Endpoint,
        reference: &TagOrDigest,
        targets: &[Target],
        report: &mut CopyReport,
    ) -> Result<(Top, Vec<Option<Digest>>), TransferError> {
        // The source and the target tags are independent: ask for all at once (one round
        // trip before a re-copy knows it has nothing to do).
        let (original, tagged_before) = tokio::join!(
            self.source_top(src, reference),
            futures_util::future::try_join_all(targets.iter().map(|t| async move {
                match &t.tag {
                    Some(tag) => t.endpoint.resolve(&tag.clone().into()).await.map(Some),
                    None => Ok(None),
                }
            }))
        );
        let original = original?;
        let tagged_before = tagged_before?;
        let top = self.apply_platform_filter(src, original, report).await?;
        report.digest = top.digest.to_string();
        report.media_type = top.media_type.clone();
        let before: Vec<Option<Digest>> = futures_util::future::try_join_all(
            targets.iter().zip(tagged_before).map(|(t, tagged)| {
                let digest = TagOrDigest::from(top.digest.clone());
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
        Ok((top, before))
    }

    /// The top manifest's bytes, read by digest (so a tag moved since the `HEAD` changes
    /// nothing) when the `HEAD` did not read them — after the budget check: the top and, for
    /// an index, at least one child.
    pub(super) async fn read_top(
        &self,
        src: &Endpoint,
        top: Top,
        report: &mut CopyReport,
    ) -> Result<Manifest, TransferError> {
        if let Some(m) = top.manifest {
            return Ok(m);
        }
        if !src.has_read(&top.digest) {
            let needed = if is_index(&top.media_type) { 2 } else { 1 };
            self.check_budget(src, needed, report)?;
        }
        src.get_by_digest(&top.digest).await
    }

    /// Where the source counts pulls (it announced a budget): the children of `index` that
    /// every target already holds are read from the first target (same digest, same bytes)
    /// instead of the source — one `HEAD` per child and target, free where pulls are
    /// counted, instead of a `GET` that is.
    pub(super) async fn find_held_children(
        &self,
        src: &Endpoint,
        index: &Manifest,
        places: &[&Endpoint],
    ) {
        let Endpoint::Registry { registry, .. } = src else {
            return;
        };
        let counts_pulls = registry
            .transport()
            .rate_limit_status(registry.host())
            .is_some();
        let all_registries = places
            .iter()
            .all(|p| matches!(p, Endpoint::Registry { .. }));
        if !counts_pulls || !all_registries || places.is_empty() {
            return;
        }
        let Ok(content) = index.parse() else {
            return;
        };
        let children: Vec<&Digest> = content
            .manifests
            .iter()
            .map(|d| &d.digest)
            .filter(|d| !src.has_read(d))
            .collect();
        // A target that cannot say (an error) holds nothing here: the source is read.
        let children_again = children.clone();
        let held = futures_util::future::join_all(children.into_iter().map(|d| async move {
            let digest = TagOrDigest::from(d.clone());
            let found =
                futures_util::future::join_all(places.iter().map(|p| p.resolve(&digest))).await;
            found
                .iter()
                .all(|f| matches!(f, Ok(Some(x)) if x == d))
                .then_some(d)
        }))
        .await;
        for (d, held) in children_again.iter().zip(held) {
            match held {
                Some(d) => src.read_elsewhere(d, places[0]),
                None => src.missing_at_targets(d),
            }
        }
    }

    /// Before the children of `index` are read: the pulls they need against the budget.
    pub(super) fn check_children_budget(
        &self,
        src: &Endpoint,
        index: &Manifest,
        report: &mut CopyReport,
    ) -> Result<(), TransferError> {
        let Ok(content) = index.parse() else {
            return Ok(());
        };
        let needed = content
            .manifests
            .iter()
            .filter(|d| !src.has_read(&d.digest))
            .count() as u64;
        self.check_budget(src, needed, report)
    }

    /// Where the source announced its budget (`ratelimit-remaining`) and the plan needs more
    /// pulls than remain: said before any byte moves, then the copy stops — or, waiting for
    /// rate limits, goes on and waits when the budget runs out.
    fn check_budget(
        &self,
        src: &Endpoint,
        needed: u64,
        report: &mut CopyReport,
    ) -> Result<(), TransferError> {
        let Endpoint::Registry { registry, .. } = src else {
            return Ok(());
        };
        if needed == 0 {
            return Ok(());
        }
        let Some(stop) = registry.transport().shortfall(registry.host(), needed) else {
            return Ok(());
        };
        if !registry.transport().waits_for_rate_limits() {
            return Err(crate::ratelimit::reached(stop));
        }
        let text = stop.to_string();
        let plan = text.split("; nothing was copied").next().unwrap_or(&text);
        self.note(
            report,
            format!(
                "{plan}: going on, and waiting for the budget when it runs out (--wait-rate-limit)"
            ),
        );
        Ok(())
    }
}
