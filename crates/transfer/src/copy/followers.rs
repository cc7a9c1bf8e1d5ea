//! Followers: the signatures, attestations, SBOMs and other artifacts attached to the copied
//! manifests, found on the source, copied after the image, and counted in the report.
//!
//! Two attachments are followed, for every manifest of the copied graph (the top one and each
//! child of an index), recursively for referrers:
//!
//! - OCI referrers: manifests whose `subject` names a copied manifest, from a registry's
//!   referrers API or fallback tag, or from an OCI layout's `index.json` (see
//!   [`crate::layout`]);
//! - digest tags: `<alg>-<hex>.<suffix>` tags of the source repository (cosign's `.sig`,
//!   `.att`, `.sbom`; regclient's `.meta` and others when the whole tag list is known).
//!
//! How digest tags are found on a registry: one request for the first page of tags (up to
//! [`SMALL_REPOSITORY`] tags); when that is the whole list, every `<alg>-<hex>.<suffix>` tag of a
//! copied manifest is taken from it; when the repository has more tags, `.sig`, `.att` and
//! `.sbom` are asked for with one `HEAD` each per manifest of the image. A layout's tags are
//! all in its `index.json`.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use acr_import_reference::{Digest, Tag, TagOrDigest};
use futures_util::{StreamExt, TryStreamExt, stream};

use super::referrers::FoundReferrer;
use super::{
    Copier, CopyReport, Endpoint, FollowerAction, FollowerEntry, FollowerKind, FollowerLink, Graph,
    ManifestRole,
};
use crate::TransferError;
use crate::layout::LayoutScan;
use crate::manifest::{Descriptor, Manifest};

/// Repositories with at most this many tags are listed in one request; larger ones are asked
/// for cosign's three digest tags with `HEAD` instead (see the module documentation).
///
/// Measured (`cargo xtask bench --digest-tags`): one page of 1000 tags is 9 KB and takes no
/// longer than one round of `HEAD`s (3 requests for a single image, 15 for a 3-platform
/// index); paging further is one more round trip per page, after the previous one, which
/// the `HEAD`s, sent together, beat.
pub const SMALL_REPOSITORY: usize = 1000;

/// cosign's digest tag suffixes, asked for with `HEAD` when the tag list is not read whole.
const COSIGN_SUFFIXES: [&str; 3] = ["sig", "att", "sbom"];

/// What a target holds under a digest tag before the copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum TagState {
    /// Nothing.
    Missing,
    /// The same manifest.
    Present,
    /// Another manifest.
    Other(Digest),
}

/// A manifest found under a digest tag of a copied manifest.
#[derive(Debug)]
pub(super) struct FoundDigestTag {
    pub(super) subject: Digest,
    pub(super) tag: Tag,
    pub(super) digest: Digest,
    /// What each place holds under the tag, in the order of the copy's places.
    pub(super) states: Vec<TagState>,
}

/// Everything attached to the copied manifests.
#[derive(Debug, Default)]
pub(super) struct Followers {
    pub(super) referrers: Vec<FoundReferrer>,
    pub(super) digest_tags: Vec<FoundDigestTag>,
    /// Attached to the original of an index that `--platform` rewrote: left behind.
    pub(super) left_behind: Vec<FollowerEntry>,
    /// What the lookup could not read or decided, for the report's notes.
    pub(super) notes: Vec<String>,
}

impl Followers {
    /// Whether anything is attached to the copied manifests.
    pub(super) fn is_empty(&self) -> bool {
        self.referrers.is_empty() && self.digest_tags.is_empty()
    }
}

/// What one lookup found for a subject: its referrers, and its digest tags with the
/// manifest each names.
type Attached = (Digest, Vec<Descriptor>, Vec<(Tag, Digest)>);

/// The source's record of what is attached to its manifests, read once per copy.
enum Lookup<'a> {
    Registry {
        src: &'a Endpoint,
        /// Every tag of the repository: as the caller listed them, or, when one page holds
        /// them all, read by the first digest-tag lookup while the first referrer lookups run.
        tags: tokio::sync::OnceCell<Option<Arc<[String]>>>,
    },
    Layout {
        src: &'a Endpoint,
        scan: LayoutScan,
    },
}

impl<'a> Lookup<'a> {
    async fn open(
        src: &'a Endpoint,
        listed: Option<&Arc<[String]>>,
        notes: &mut Vec<String>,
    ) -> Result<Self, TransferError> {
        match src {
            Endpoint::Registry { .. } => Ok(Lookup::Registry {
                src,
                tags: match listed {
                    Some(tags) => tokio::sync::OnceCell::new_with(Some(Some(tags.clone()))),
                    None => tokio::sync::OnceCell::new(),
                },
            }),
            Endpoint::Layout(layout) => {
                let scan = layout.scan().await?;
                for why in scan.unreadable() {
                    notes.push(format!(
                        "{why}: whatever that entry refers to or signs is not known and was not copied"
                    ));
                }
                Ok(Lookup::Layout { src, scan })
            }
        }
    }

    async fn referrers(&self, subject: &Digest) -> Result<Vec<Descriptor>, TransferError> {
        match self {
            Lookup::Registry { src, .. } => src.referrers(subject).await,
            Lookup::Layout { scan, .. } => Ok(scan.referrers_of(subject)),
        }
    }

    /// The digest tags of `subject` with the digest each names. From the whole tag list when
    /// it is known; otherwise, when `probe`, cosign's three with one `HEAD` each.
    async fn digest_tags(
        &self,
        subject: &Digest,
        probe: bool,
    ) -> Result<Vec<(Tag, Digest)>, TransferError> {
        let prefix = format!("{}-{}.", subject.algorithm(), subject.encoded());
        let named = |tag: &str| tag.len() > prefix.len() && tag.starts_with(&prefix);
        match self {
            Lookup::Layout { scan, src } => scan
                .tags()
                .iter()
                .filter(|(t, _)| named(t))
                .map(|(t, d)| Ok((listed_tag(src, t)?, d.clone())))
                .collect(),
            Lookup::Registry { src, tags } => {
                let tags = tags.get_or_init(|| whole_tag_list(src)).await;
                let wanted: Vec<Tag> = match tags {
                    Some(all) => all
                        .iter()
                        .filter(|t| named(t))
                        .map(|t| listed_tag(src, t))
                        .collect::<Result<_, _>>()?,
                    None if probe => COSIGN_SUFFIXES
                        .iter()
                        .filter_map(|s| format!("{prefix}{s}").parse().ok())
                        .collect(),
                    None => Vec::new(),
                };
                let found =
                    futures_util::future::try_join_all(wanted.into_iter().map(|tag| async move {
                        let reference = TagOrDigest::Tag(tag.clone());
                        Ok::<_, TransferError>(src.resolve(&reference).await?.map(|d| (tag, d)))
                    }))
                    .await?;
                Ok(found.into_iter().flatten().collect())
            }
        }
    }

    async fn manifest(&self, digest: &Digest) -> Result<Manifest, TransferError> {
        match self {
            Lookup::Layout { scan, .. } if scan.manifest(digest).is_some() => {
                Ok(scan.manifest(digest).cloned().expect("checked"))
            }
            Lookup::Layout { src, .. } | Lookup::Registry { src, .. } => {
                src.get_by_digest(digest).await
            }
        }
    }
}

/// A digest tag `src` lists (in its tag list, or its `index.json`), as a tag a copy can write
/// under: a listed name that is no tag is an error naming it, never a signature skipped.
fn listed_tag(src: &Endpoint, name: &str) -> Result<Tag, TransferError> {
    name.parse().map_err(|e| TransferError::Protocol {
        context: crate::RequestContext {
            operation: crate::Operation::ListTags,
            registry: src.describe(),
            repository: None,
            reference: Some(name.to_owned()),
        },
        reason: format!("it lists `{name}` as a digest tag, which is not a tag: {e}"),
    })
}

/// Every tag of a registry repository when one page holds them all; `None` when it has
/// more, or the list cannot be read (digest tags are then asked for with `HEAD`).
async fn whole_tag_list(src: &Endpoint) -> Option<Arc<[String]>> {
    let Endpoint::Registry {
        registry,
        repository,
    } = src
    else {
        return None;
    };
    match registry.tags_page(repository, SMALL_REPOSITORY).await {
        Ok(page) if !page.more => Some(page.tags.into()),
        Ok(_) => None,
        Err(e) => {
            tracing::debug!(error = %e, "tag list unreadable: digest tags probed with HEAD");
            None
        }
    }
}

/// The kind of a digest tag, from its suffix.
pub(super) fn kind_of_tag(tag: &str) -> FollowerKind {
    match tag.rsplit_once('.').map(|(_, s)| s) {
        Some("sig") => FollowerKind::Signature,
        Some("att") => FollowerKind::Attestation,
        Some("sbom") => FollowerKind::Sbom,
        _ => FollowerKind::Other,
    }
}

/// The kind of a referrer, from its `artifactType` (or config media type) and annotations.
pub(super) fn kind_of_artifact(
    artifact_type: Option<&str>,
    annotations: &BTreeMap<String, String>,
) -> FollowerKind {
    let t = artifact_type.unwrap_or_default().to_ascii_lowercase();
    if t.contains("sigstore.bundle") {
        // A Sigstore bundle holds a signature, or an attestation of the predicate it names.
        return match annotations.get("dev.sigstore.bundle.predicateType") {
            Some(p) if p != "https://sigstore.dev/cosign/sign/v1" => FollowerKind::Attestation,
            _ => FollowerKind::Signature,
        };
    }
    let any = |words: &[&str]| words.iter().any(|w| t.contains(w));
    if any(&["signature", "simplesigning", "artifact.sig"]) {
        FollowerKind::Signature
    } else if any(&[
        "in-toto",
        "dsse",
        "attestation",
        "provenance",
        "artifact.att",
    ]) {
        FollowerKind::Attestation
    } else if any(&["spdx", "cyclonedx", "sbom", "syft"]) {
        FollowerKind::Sbom
    } else {
        FollowerKind::Other
    }
}

impl Copier {
    /// Finds what is attached to the manifests of `graph` (and to the children its indexes
    /// name), recursively for referrers, and what each place holds under each digest tag;
    /// nothing when referrers are off. `rewritten`: the original of an index `--platform`
    /// rewrote, whose attachments are listed as left behind.
    pub(super) async fn find_followers(
        &self,
        src: &Endpoint,
        graph: &Graph,
        places: &[&Endpoint],
        rewritten: Option<&Digest>,
    ) -> Result<Followers, TransferError> {
        let mut out = Followers::default();
        if !self.options.referrers {
            return Ok(out);
        }
        let listed = self.options.source_tags.as_ref();
        let lookup = Lookup::open(src, listed, &mut out.notes).await?;
        let mut main: Vec<Digest> = Vec::new();
        for n in &graph.nodes {
            let children = n.content.manifests.iter().map(|d| &d.digest);
            for d in std::iter::once(&n.manifest.digest).chain(children) {
                if !main.contains(d) {
                    main.push(d.clone());
                }
            }
        }
        let mut known: HashSet<Digest> = main.iter().cloned().collect();
        let mut frontier = main.clone();
        for _ in 0..=self.options.max_depth {
            if frontier.is_empty() {
                break;
            }
            let found: Vec<Attached> = stream::iter(frontier.drain(..).map(|s| {
                let (lookup, probe) = (&lookup, main.contains(&s));
                async move {
                    let (r, t) =
                        tokio::try_join!(lookup.referrers(&s), lookup.digest_tags(&s, probe))?;
                    Ok::<_, TransferError>((s, r, t))
                }
            }))
            .buffer_unordered(self.options.jobs.max(1))
            .try_collect()
            .await?;
            let mut new_referrers: Vec<(Digest, Descriptor)> = Vec::new();
            let mut new_tags: Vec<(Digest, Tag, Digest)> = Vec::new();
            for (subject, referrers, tags) in found {
                for d in referrers {
                    if known.insert(d.digest.clone()) {
                        new_referrers.push((subject.clone(), d));
                    }
                }
                for (tag, digest) in tags {
                    if !new_tags.iter().any(|t| t.1 == tag)
                        && !out.digest_tags.iter().any(|d| d.tag == tag)
                    {
                        known.insert(digest.clone());
                        new_tags.push((subject.clone(), tag, digest));
                    }
                }
            }
            if out.referrers.len() + out.digest_tags.len() + new_referrers.len() + new_tags.len()
                > self.options.max_manifests
            {
                return Err(TransferError::TooManyManifests {
                    limit: self.options.max_manifests,
                });
            }
            let jobs = self.options.jobs.max(1);
            let (referrers, tags) = tokio::try_join!(
                stream::iter(new_referrers.into_iter().map(|(subject, descriptor)| {
                    self.read_referrer(&lookup, src, places, subject, descriptor)
                }))
                .buffer_unordered(jobs)
                .try_collect::<Vec<FoundReferrer>>(),
                stream::iter(
                    new_tags
                        .into_iter()
                        .map(|(subject, tag, digest)| async move {
                            let states = tag_states(places, &tag, &digest).await?;
                            Ok::<_, TransferError>(FoundDigestTag {
                                subject,
                                tag,
                                digest,
                                states,
                            })
                        })
                )
                .buffer_unordered(jobs)
                .try_collect::<Vec<FoundDigestTag>>()
            )?;
            for r in &referrers {
                match &r.graph {
                    // Its own referrers are still looked up.
                    None => frontier.push(r.descriptor.digest.clone()),
                    Some(g) => frontier.extend(g.nodes.iter().map(|n| n.manifest.digest.clone())),
                }
            }
            out.referrers.extend(referrers);
            out.digest_tags.extend(tags);
        }
        if let Some(original) = rewritten {
            out.left_behind = self.left_behind(&lookup, original, graph).await?;
        }
        Ok(out)
    }

    /// A referrer and its graph; no graph when every place holds it already (it is not read
    /// from the source again).
    async fn read_referrer(
        &self,
        lookup: &Lookup<'_>,
        src: &Endpoint,
        places: &[&Endpoint],
        subject: Digest,
        descriptor: Descriptor,
    ) -> Result<FoundReferrer, TransferError> {
        let graph = if everywhere(places, &descriptor.digest).await? {
            None
        } else {
            let manifest = lookup.manifest(&descriptor.digest).await?;
            Some(
                self.walk(src, manifest, ManifestRole::Referrer, None)
                    .await?,
            )
        };
        Ok(FoundReferrer {
            subject,
            descriptor,
            graph,
        })
    }

    /// What is attached to the original of a rewritten index: it names that digest, not the
    /// one the targets get, so it stays behind.
    async fn left_behind(
        &self,
        lookup: &Lookup<'_>,
        original: &Digest,
        graph: &Graph,
    ) -> Result<Vec<FollowerEntry>, TransferError> {
        let (referrers, tags) = tokio::try_join!(
            lookup.referrers(original),
            lookup.digest_tags(original, true)
        )?;
        let now = graph
            .nodes
            .last()
            .map(|n| n.manifest.digest.to_string())
            .unwrap_or_default();
        let reason = format!(
            "it is attached to the index {original}, which --platform replaced with {now}; \
             a signature or attestation of one digest does not hold for another"
        );
        let mut out: Vec<FollowerEntry> = referrers
            .into_iter()
            .map(|d| FollowerEntry {
                kind: kind_of_artifact(d.artifact_type.as_deref(), &d.annotations),
                link: FollowerLink::Referrer,
                subject: original.to_string(),
                digest: d.digest.to_string(),
                tag: None,
                artifact_type: d.artifact_type,
                action: FollowerAction::LeftBehind,
                reason: Some(reason.clone()),
            })
            .collect();
        out.extend(tags.into_iter().map(|(tag, digest)| FollowerEntry {
            kind: kind_of_tag(tag.as_str()),
            link: FollowerLink::DigestTag,
            subject: original.to_string(),
            digest: digest.to_string(),
            tag: Some(tag.to_string()),
            artifact_type: None,
            action: FollowerAction::LeftBehind,
            reason: Some(reason.clone()),
        }));
        Ok(out)
    }

    /// Copies the followers after the image's manifests are in place: referrers (then the
    /// fallback indexes that list them), then digest tags; records each in the report, and
    /// notes what stays behind and why.
    pub(super) async fn copy_followers(
        &self,
        src: &Endpoint,
        graph: &Graph,
        followers: Followers,
        places: &[&Endpoint],
        report: &mut CopyReport,
    ) -> Result<(), TransferError> {
        for n in followers.notes {
            self.note(report, n);
        }
        let mut copied: Vec<&FoundReferrer> = Vec::new();
        for r in &followers.referrers {
            if self.copy_referrer(src, r, places, report).await? {
                copied.push(r);
            }
        }
        self.link_subjects(graph, &copied, places).await?;
        for t in &followers.digest_tags {
            self.copy_digest_tag(src, t, places, report).await?;
        }
        if !followers.left_behind.is_empty() {
            let kinds: Vec<String> = followers
                .left_behind
                .iter()
                .map(|f| match &f.tag {
                    Some(t) => t.clone(),
                    None => format!("referrer {}", f.digest),
                })
                .collect();
            let reason = followers.left_behind[0].reason.clone().unwrap_or_default();
            self.note(
                report,
                format!("left behind: {} — {reason}", kinds.join(", ")),
            );
            report.followers.extend(followers.left_behind);
        }
        Ok(())
    }
}

/// Whether every place holds the manifest `digest`.
async fn everywhere(places: &[&Endpoint], digest: &Digest) -> Result<bool, TransferError> {
    let digest = TagOrDigest::from(digest.clone());
    let found =
        futures_util::future::try_join_all(places.iter().map(|p| p.resolve(&digest))).await?;
    Ok(!places.is_empty() && found.iter().all(Option::is_some))
}

/// What each place holds under `tag`.
async fn tag_states(
    places: &[&Endpoint],
    tag: &Tag,
    digest: &Digest,
) -> Result<Vec<TagState>, TransferError> {
    let tag = TagOrDigest::from(tag.clone());
    let tag = &tag;
    futures_util::future::try_join_all(places.iter().map(|p| async move {
        Ok(match p.resolve(tag).await? {
            None => TagState::Missing,
            Some(d) if d == *digest => TagState::Present,
            Some(d) => TagState::Other(d),
        })
    }))
    .await
}

/// A target's refusal of one artifact (its media type, its tag), as opposed to a failure of
/// the copy: the artifact is left behind with a note, the image is still imported.
pub(super) fn refused(e: &TransferError) -> bool {
    matches!(e.status(), Some(400 | 405 | 415 | 422))
        || e.details().and_then(|d| d.code()).is_some_and(|c| {
            matches!(
                c,
                "MANIFEST_INVALID" | "UNSUPPORTED" | "DENIED" | "TAG_INVALID"
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_of_digest_tags() {
        let hex = "a".repeat(64);
        for (suffix, kind) in [
            ("sig", FollowerKind::Signature),
            ("att", FollowerKind::Attestation),
            ("sbom", FollowerKind::Sbom),
            ("meta", FollowerKind::Other),
        ] {
            assert_eq!(
                kind_of_tag(&format!("sha256-{hex}.{suffix}")),
                kind,
                "{suffix}"
            );
        }
    }

    #[test]
    fn kinds_of_referrers() {
        let none = BTreeMap::new();
        for (artifact_type, kind) in [
            (
                "application/vnd.dev.cosign.simplesigning.v1+json",
                FollowerKind::Signature,
            ),
            (
                "application/vnd.cncf.notary.signature",
                FollowerKind::Signature,
            ),
            ("application/vnd.in-toto+json", FollowerKind::Attestation),
            (
                "application/vnd.dsse.envelope.v1+json",
                FollowerKind::Attestation,
            ),
            ("application/spdx+json", FollowerKind::Sbom),
            ("application/vnd.cyclonedx+json", FollowerKind::Sbom),
            ("application/vnd.example.thing", FollowerKind::Other),
            (
                "application/vnd.dev.sigstore.bundle.v0.3+json",
                FollowerKind::Signature,
            ),
        ] {
            assert_eq!(
                kind_of_artifact(Some(artifact_type), &none),
                kind,
                "{artifact_type}"
            );
        }
        assert_eq!(kind_of_artifact(None, &none), FollowerKind::Other);
        let attested = BTreeMap::from([(
            "dev.sigstore.bundle.predicateType".to_owned(),
            "https://slsa.dev/provenance/v1".to_owned(),
        )]);
        assert_eq!(
            kind_of_artifact(
                Some("application/vnd.dev.sigstore.bundle.v0.3+json"),
                &attested
            ),
            FollowerKind::Attestation
        );
    }
}
