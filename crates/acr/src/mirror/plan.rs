//! The mirror plan: every entry expanded into the target tags it names (a repository entry's
//! tags listed once and filtered), the shard's part kept, and each tag looked up at the source
//! and at the target — all at once, bounded per registry — to decide what to copy.

use std::collections::HashMap;
use std::sync::Arc;

use acr_import_reference::{Digest, Repository, TagOrDigest};
use acr_import_transfer::{PlatformFilter, Registry, TransferError, Transport};
use futures_util::future::join_all;

use super::lookup::{Lookups, TagDigests};
use super::report::{EntryKind, EntryReport, TagAction};
use super::{MirrorEntry, MirrorItem, Shard};
use crate::importer::plan::{ClientPlan, SourceSpec, TargetSpec};
use crate::{Cloud, ImportOptions, Referrers};

/// An entry's options, with the request's defaults filled in.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) force: bool,
    pub(crate) platforms: Vec<PlatformFilter>,
    pub(crate) referrers: bool,
}

impl Settings {
    fn of(entry: &MirrorEntry, defaults: &ImportOptions) -> Result<Self, String> {
        let o = entry.options();
        let platforms = if o.platforms.is_empty() {
            defaults.platforms.clone()
        } else {
            o.platforms
                .iter()
                .map(|p| p.parse::<PlatformFilter>().map_err(|e| e.to_string()))
                .collect::<Result<_, _>>()?
        };
        Ok(Self {
            force: o.force.unwrap_or(defaults.force),
            platforms,
            referrers: o.referrers.unwrap_or(defaults.referrers != Referrers::Skip),
        })
    }
}

/// A target tag (or untagged repository) of a unit, as looked up.
#[derive(Debug, Clone)]
pub(crate) struct TargetState {
    pub(crate) repository: String,
    pub(crate) tag: Option<String>,
    pub(crate) before: Option<Digest>,
    pub(crate) action: TagAction,
}

/// One source image and the target tags it goes to.
#[derive(Debug, Clone)]
pub(crate) struct Unit {
    pub(crate) entry: usize,
    /// The source (its reference as the entry names it) and every target.
    pub(crate) plan: ClientPlan,
    pub(crate) settings: Settings,
    pub(crate) source_digest: Option<Digest>,
    /// Every tag of the source repository, as the plan listed them (repository entries):
    /// the copy finds the image's digest tags there instead of listing again.
    pub(crate) source_tags: Option<Arc<[String]>>,
    pub(crate) targets: Vec<TargetState>,
    /// Why the source could not be read.
    pub(crate) error: Option<String>,
}

impl Unit {
    /// `host/repository:tag` (or `@digest`) of the source as the entry names it.
    pub(crate) fn source_text(&self) -> String {
        source_text(&self.plan.source)
    }

    /// `host/repository:tag` of a target.
    pub(crate) fn target_text(&self, t: &TargetState) -> String {
        let place = match &self.plan.target {
            TargetSpec::Registry(h) if t.repository.is_empty() => h.clone(),
            TargetSpec::Registry(h) => format!("{h}/{}", t.repository),
            TargetSpec::Layout(p) => format!("oci:{}", p.display()),
        };
        match (&t.tag, &self.source_digest) {
            (Some(tag), _) => format!("{place}:{tag}"),
            (None, Some(d)) => format!("{place}@{d}"),
            (None, None) => format!("{place}@(the source's digest)"),
        }
    }
}

/// `repository:tag`, or `repository@digest`.
pub(crate) fn image_text(repository: &str, reference: &TagOrDigest) -> String {
    let sep = match reference {
        TagOrDigest::Digest(_) => "@",
        TagOrDigest::Tag(_) => ":",
    };
    format!("{repository}{sep}{reference}")
}

/// A target repository or tag as the mirror file or command line wrote it (the copy engine
/// reads it the same way), for the plan's look-ups at the target.
fn target_text<T>(text: &str) -> Result<T, TransferError>
where
    T: std::str::FromStr<Err = acr_import_reference::ReferenceError>,
{
    text.parse()
        .map_err(|e| TransferError::Config(format!("the target `{text}`: {e}")))
}

/// `host/repository:tag` (or `@digest`), or `oci:PATH:tag`.
pub(crate) fn source_text(source: &SourceSpec) -> String {
    match source {
        SourceSpec::Registry {
            host,
            repository,
            reference,
        } => format!("{host}/{}", image_text(repository.as_str(), reference)),
        SourceSpec::Layout { path, reference } => {
            format!("oci:{}", image_text(&path.display().to_string(), reference))
        }
    }
}

/// The plan of a mirror: a report row per entry (with what expanding it found) and the units.
#[derive(Debug)]
pub(crate) struct Planned {
    pub(crate) entries: Vec<EntryReport>,
    pub(crate) units: Vec<Unit>,
}

/// Makes the plan.
pub(crate) struct Planner<'a> {
    pub(crate) transport: &'a Transport,
    pub(crate) target: &'a TargetSpec,
    pub(crate) cloud: &'a Cloud,
    pub(crate) shard: Shard,
    pub(crate) defaults: &'a ImportOptions,
    /// The server-side engine copies: no referrers, no platform filter.
    pub(crate) server: bool,
    pub(crate) lookups: Lookups,
}

/// A unit's shard key: `repository:tag`, or `repository@SOURCE` for an untagged target.
fn shard_key(repository: &str, tag: Option<&str>, source: &str) -> String {
    match tag {
        Some(t) => format!("{repository}:{t}"),
        None => format!("{repository}@{source}"),
    }
}

impl Planner<'_> {
    /// Expands and looks up every entry at once. An entry that cannot be planned says why in
    /// its row; the others go on.
    pub(crate) async fn plan(
        &self,
        items: &[MirrorItem],
        bases: &[Result<ClientPlan, String>],
    ) -> Planned {
        let planned = join_all(
            items
                .iter()
                .zip(bases)
                .enumerate()
                .map(|(i, (item, base))| self.entry(i, item, base)),
        )
        .await;
        let mut entries = Vec::new();
        let mut units = Vec::new();
        for (row, mut u) in planned {
            entries.push(row);
            units.append(&mut u);
        }
        Planned { entries, units }
    }

    async fn entry(
        &self,
        index: usize,
        item: &MirrorItem,
        base: &Result<ClientPlan, String>,
    ) -> (EntryReport, Vec<Unit>) {
        let kind = match item.entry {
            MirrorEntry::Image(_) => EntryKind::Image,
            MirrorEntry::Repository(_) => EntryKind::Repository,
        };
        let mut row = EntryReport::new(index, item.entry.source(), kind);
        let settings = Settings::of(&item.entry, self.defaults).map(|mut s| {
            if self.server {
                s.referrers = false;
            }
            s
        });
        let expanded = match (settings, base) {
            (Err(e), _) => Err(e),
            (_, Err(e)) => Err(e.clone()),
            (Ok(settings), Ok(base)) => {
                self.expand(index, &item.entry, base.clone(), settings, &mut row)
                    .await
            }
        };
        let (units, listed) = match expanded {
            Ok(x) => x,
            Err(e) => {
                row.error = Some(e);
                return (row, Vec::new());
            }
        };
        let units = join_all(
            units
                .into_iter()
                .map(|u| self.resolve(u, listed.as_deref())),
        )
        .await;
        (row, units)
    }

    /// The units of an entry before any look-up (a repository entry's tags are listed here),
    /// with the tags its source listed. `base` is the entry's plan as a single import: its
    /// source, credentials, and (for an image entry) its targets.
    async fn expand(
        &self,
        index: usize,
        entry: &MirrorEntry,
        mut base: ClientPlan,
        settings: Settings,
        row: &mut EntryReport,
    ) -> Result<(Vec<Unit>, Option<Vec<String>>), String> {
        let unit = |plan: ClientPlan| Unit {
            entry: index,
            plan,
            settings: settings.clone(),
            source_digest: None,
            source_tags: None,
            targets: Vec::new(),
            error: None,
        };
        let r = match entry {
            MirrorEntry::Image(i) => {
                row.selected = base.images.len();
                let source = i.source.as_str();
                base.images
                    .retain(|(r, t)| self.shard.owns(&shard_key(r, t.as_deref(), source)));
                row.in_shard = base.images.len();
                let units = (!base.images.is_empty()).then(|| unit(base));
                return Ok((units.into_iter().collect(), None));
            }
            MirrorEntry::Repository(r) => r,
        };
        let SourceSpec::Registry {
            host, repository, ..
        } = &base.source
        else {
            return Err("a repository entry needs a registry source".to_owned());
        };
        let target_repo = match (&r.target, self.target) {
            (_, TargetSpec::Layout(_)) => String::new(),
            (Some(t), _) => t.clone(),
            (None, _) => base
                .images
                .first()
                .map(|(repo, _)| repo.clone())
                .unwrap_or_else(|| r.target_repository()),
        };
        let registry = self.transport.registry(host).map_err(|e| e.to_string())?;
        let tags = self
            .lookups
            .tags(&registry, repository)
            .await
            .map_err(|e| format!("listing the tags of {host}/{repository}: {e}"))?;
        row.listed = Some(tags.len());
        let listed: Arc<[String]> = tags.as_slice().into();
        let selected = r.tags.select(tags.iter().map(String::as_str));
        row.selected = selected.len();
        let mut units = Vec::new();
        for tag in selected {
            if !self.shard.owns(&shard_key(&target_repo, Some(tag), "")) {
                continue;
            }
            units.push(Unit {
                source_tags: Some(listed.clone()),
                ..unit(ClientPlan {
                    label: r.source.clone(),
                    source: SourceSpec::Registry {
                        host: host.clone(),
                        repository: repository.clone(),
                        reference: TagOrDigest::Tag(tag.parse().map_err(|e| {
                            format!("{host}/{repository} lists `{tag}`, which is not a tag: {e}")
                        })?),
                    },
                    target: self.target.clone(),
                    images: vec![(target_repo.clone(), Some(tag.to_owned()))],
                    credentials: base.credentials.clone(),
                })
            });
        }
        row.in_shard = units.len();
        Ok((units, Some(tags)))
    }

    /// Looks a unit up at the source and at the target (at once) and decides each target's
    /// action.
    async fn resolve(&self, mut unit: Unit, listed: Option<&[String]>) -> Unit {
        unit.targets = unit
            .plan
            .images
            .iter()
            .map(|(r, t)| TargetState {
                repository: r.clone(),
                tag: t.clone(),
                before: None,
                action: TagAction::Check,
            })
            .collect();
        let SourceSpec::Registry {
            host,
            repository,
            reference,
        } = unit.plan.source.clone()
        else {
            // An OCI layout: the copy engine reads and compares it.
            return unit;
        };
        let TargetSpec::Registry(target_host) = unit.plan.target.clone() else {
            return unit;
        };
        let looked_up = async {
            let source = self.transport.registry(&host)?;
            let target = self.transport.registry(&target_host)?;
            let (digest, tagged) = tokio::join!(
                self.source_digest(&source, &repository, &reference, &unit.settings),
                self.target_tags(&target, &unit.targets)
            );
            Ok::<_, TransferError>((source, target, digest?, tagged?))
        };
        let (source, target, (digest, is_index), tagged) = match looked_up.await {
            Ok(x) => x,
            Err(e) => {
                unit.error = Some(format!(
                    "looking up {} and its targets: {e}",
                    unit.source_text()
                ));
                for t in &mut unit.targets {
                    t.action = TagAction::Unreadable;
                }
                return unit;
            }
        };
        let Some(digest) = digest else {
            unit.error = Some(format!("{} is not there", unit.source_text()));
            for t in &mut unit.targets {
                t.action = TagAction::Unreadable;
            }
            return unit;
        };
        for (t, before) in unit.targets.iter_mut().zip(tagged) {
            t.before = before;
        }
        unit.source_digest = Some(digest.clone());
        // Untagged targets: is the digest there?
        for i in 0..unit.targets.len() {
            if unit.targets[i].tag.is_some() {
                continue;
            }
            let looked_up = async {
                let repository = target_text(&unit.targets[i].repository)?;
                self.lookups
                    .head(&target, &repository, &digest.clone().into())
                    .await
            };
            match looked_up.await {
                Ok(h) => unit.targets[i].before = h.and_then(|h| h.digest),
                Err(e) => {
                    let at = unit.target_text(&unit.targets[i]);
                    unit.error = Some(format!("looking up {at}: {e}"));
                    unit.targets[i].action = TagAction::Unreadable;
                }
            }
        }
        let filtered = !unit.settings.platforms.is_empty() && is_index;
        for t in unit
            .targets
            .iter_mut()
            .filter(|t| t.action != TagAction::Unreadable)
        {
            t.action = match &t.before {
                _ if filtered => TagAction::Check,
                None => TagAction::Copy,
                Some(b) if *b == digest => TagAction::UpToDate,
                Some(_) if unit.settings.force => TagAction::Replace,
                Some(_) => TagAction::Conflict,
            };
        }
        let unchanged = unit.targets.iter().any(|t| t.action == TagAction::UpToDate);
        if unchanged && unit.settings.referrers {
            // A signature added upstream to an image already mirrored: the copy engine
            // brings what is missing.
            // Found, or not known (the lookup failed): the copy engine looks again and says.
            let found = self
                .lookups
                .has_referrers(&source, &repository, &digest, listed)
                .await;
            if !matches!(found, Ok(false)) {
                for t in unit
                    .targets
                    .iter_mut()
                    .filter(|t| t.action == TagAction::UpToDate)
                {
                    t.action = TagAction::Check;
                }
            }
        }
        unit
    }

    /// The digest the source reference names (`None`: not there), and whether it is an index.
    async fn source_digest(
        &self,
        source: &Registry,
        repository: &Repository,
        reference: &TagOrDigest,
        settings: &Settings,
    ) -> Result<(Option<Digest>, bool), TransferError> {
        if settings.platforms.is_empty() {
            if let TagOrDigest::Digest(d) = reference {
                return Ok((Some(d.clone()), false));
            }
            // An ACR source lists its tags with their digests.
            if source.host().ends_with(&self.cloud.login_server_suffix)
                && let Some(listed) = self.lookups.digests(source, repository).await?
            {
                return Ok((listed.get(reference.as_str()).cloned(), false));
            }
        }
        let head = self.lookups.head(source, repository, reference).await?;
        Ok(match head {
            None => (None, false),
            Some(h) => {
                let index = h
                    .media_type
                    .as_deref()
                    .is_some_and(acr_import_transfer::manifest::is_index);
                match h.digest {
                    Some(d) => (Some(d), index),
                    // A registry that does not say the digest: the engine compares.
                    None => (reference.digest().cloned(), index),
                }
            }
        })
    }

    /// What each tagged target holds: from the registry's tag listing with digests where it
    /// has one (ACR), by `HEAD` otherwise. Untagged targets stay `None` here.
    async fn target_tags(
        &self,
        target: &Registry,
        targets: &[TargetState],
    ) -> Result<Vec<Option<Digest>>, TransferError> {
        let mut out = Vec::new();
        let mut listings: HashMap<&str, Option<TagDigests>> = HashMap::new();
        for t in targets {
            let Some(tag) = &t.tag else {
                out.push(None);
                continue;
            };
            let repository = target_text(&t.repository)?;
            if !listings.contains_key(t.repository.as_str()) {
                let listed = self.lookups.digests(target, &repository).await?;
                listings.insert(&t.repository, listed);
            }
            let found = match listings.get(t.repository.as_str()) {
                Some(Some(listed)) => listed.get(tag).cloned(),
                _ => self
                    .lookups
                    .head(target, &repository, &target_text(tag)?)
                    .await?
                    .and_then(|h| h.digest),
            };
            out.push(found);
        }
        Ok(out)
    }
}
