//! The mirror file (`acr import --from-file`): a YAML or JSON list of entries.
//!
//! Two kinds of entry:
//!
//! - **single image** — a source with a tag or digest (or an `oci:` layout), copied to the
//!   `images:` (tagged) and `repositories:` (untagged) it names, or to its own name:
//!   ```yaml
//!   - source: docker.io/library/nginx:1.27
//!     images: [nginx:1.27, nginx:stable]
//!   ```
//! - **repository** — a registry source without tag or digest, and with neither `images:` nor
//!   `repositories:`: the tags chosen by `tags:` (every tag without it) are copied to the same
//!   tags of `target:` (default: the source's repository path):
//!   ```yaml
//!   - source: docker.io/library/nginx
//!     target: mirror/nginx
//!     tags: { semver: ">=1.26, <2", include: ["^stable$"], exclude: ["-rc"], latest: 5 }
//!   ```
//!
//! Both take `registry:` (the source's registry, when `source` is a path in it),
//! `credentials-env: PREFIX` (source credentials from `PREFIX_USERNAME` and `PREFIX_PASSWORD`),
//! `platforms: [os/arch[/variant]]`, `referrers: true|false` and `force: true|false` (replace a
//! target tag that holds something else; needed to follow tags that move upstream). Unknown
//! keys are refused, with the keys that exist named.

use std::path::Path;

use acr_import_reference::{AnyReference, Reference, Repository, RepositoryReference};
use acr_import_transfer::PlatformFilter;
use serde::{Deserialize, Serialize};

use super::{MirrorError, TagFilter};

/// Options every kind of entry may set; `None` takes the command's value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct EntryOptions {
    /// `os/arch[/variant]` to keep of a multi-platform image (default: all).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub platforms: Vec<String>,
    /// Whether signatures, SBOMs and other referrers come along.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub referrers: Option<bool>,
    /// Whether a target tag holding other content is replaced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub force: Option<bool>,
    /// `PREFIX`: source credentials from `PREFIX_USERNAME` / `PREFIX_PASSWORD`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credentials_env: Option<String>,
}

/// A single-image entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct ImageEntry {
    /// The source, as written (a reference with tag or digest, or `oci:PATH[:TAG]`).
    pub source: String,
    /// The source registry's host, when `source` is a path in it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registry: Option<String>,
    /// Target `repository[:tag]`s.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<String>,
    /// Target repositories, untagged.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub repositories: Vec<String>,
    /// Per-entry options.
    #[serde(flatten)]
    pub options: EntryOptions,
}

/// A repository entry: tags chosen by a filter.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct RepositoryEntry {
    /// The source repository, as written (no tag, no digest).
    pub source: String,
    /// The source registry's host, when `source` is a path in it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registry: Option<String>,
    /// The target repository (default: the source's repository path).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Which tags.
    pub tags: TagFilter,
    /// Per-entry options.
    #[serde(flatten)]
    pub options: EntryOptions,
}

/// One entry of a mirror file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawEntry", untagged)]
pub enum MirrorEntry {
    /// A single image.
    Image(ImageEntry),
    /// A repository with a tag filter.
    Repository(RepositoryEntry),
}

impl MirrorEntry {
    /// The source as written.
    pub fn source(&self) -> &str {
        match self {
            MirrorEntry::Image(e) => &e.source,
            MirrorEntry::Repository(e) => &e.source,
        }
    }

    /// The source registry, when the entry names it apart from the source.
    pub fn registry(&self) -> Option<&str> {
        match self {
            MirrorEntry::Image(e) => e.registry.as_deref(),
            MirrorEntry::Repository(e) => e.registry.as_deref(),
        }
    }

    /// The entry's options.
    pub fn options(&self) -> &EntryOptions {
        match self {
            MirrorEntry::Image(e) => &e.options,
            MirrorEntry::Repository(e) => &e.options,
        }
    }
}

/// An entry as written: every key of both kinds, checked into a [`MirrorEntry`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawEntry {
    source: String,
    #[serde(default)]
    images: Vec<String>,
    #[serde(default)]
    repositories: Vec<String>,
    #[serde(default)]
    registry: Option<String>,
    #[serde(default)]
    target: Option<String>,
    #[serde(default)]
    tags: Option<TagFilter>,
    #[serde(default)]
    platforms: Vec<String>,
    #[serde(default)]
    referrers: Option<bool>,
    #[serde(default)]
    force: Option<bool>,
    #[serde(default)]
    credentials_env: Option<String>,
}

/// What the source names: a tag or digest (single image), or a bare repository.
fn names_one_image(raw: &RawEntry) -> Result<bool, String> {
    let source = raw.source.trim();
    if source.is_empty() {
        return Err("`source` is empty: name an image or a repository".to_owned());
    }
    if raw.registry.is_some() {
        let r: RepositoryReference = source.parse().map_err(|e| format!("`source`: {e}"))?;
        return Ok(r.tag().is_some() || r.digest().is_some());
    }
    match source
        .parse::<AnyReference>()
        .map_err(|e| format!("`source`: {e}"))?
    {
        AnyReference::OciLayout(_) => Ok(true),
        AnyReference::Registry(r) => Ok(r.tag().is_some() || r.digest().is_some()),
    }
}

impl TryFrom<RawEntry> for MirrorEntry {
    type Error = String;

    fn try_from(raw: RawEntry) -> Result<Self, String> {
        let at = |why: String| format!("entry with source `{}`: {why}", raw.source);
        let one_image = names_one_image(&raw).map_err(at)?;
        for p in &raw.platforms {
            p.parse::<PlatformFilter>().map_err(|e| at(e.to_string()))?;
        }
        if let Some(prefix) = &raw.credentials_env {
            let ok = !prefix.is_empty()
                && prefix
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !ok {
                return Err(at(format!(
                    "`credentials-env: {prefix}` must be a variable prefix such as QUAY (read as QUAY_USERNAME and QUAY_PASSWORD)"
                )));
            }
        }
        let options = EntryOptions {
            platforms: raw.platforms.clone(),
            referrers: raw.referrers,
            force: raw.force,
            credentials_env: raw.credentials_env.clone(),
        };
        let explicit_targets = !raw.images.is_empty() || !raw.repositories.is_empty();
        if one_image || explicit_targets {
            if raw.tags.is_some() {
                return Err(at(if one_image {
                    "`tags:` chooses tags of a repository, but the source names one image: drop its tag or digest, or drop `tags:`".to_owned()
                } else {
                    "`tags:` cannot go with `images:` or `repositories:`: a repository entry copies each tag to the same tag of `target:`".to_owned()
                }));
            }
            if raw.target.is_some() {
                return Err(at("`target:` names the target repository of a repository entry: for one image use `images:` (tagged) or `repositories:` (untagged)".to_owned()));
            }
            return Ok(MirrorEntry::Image(ImageEntry {
                source: raw.source,
                registry: raw.registry,
                images: raw.images,
                repositories: raw.repositories,
                options,
            }));
        }
        if let Some(t) = &raw.target {
            t.parse::<Repository>().map_err(|e| {
                at(format!(
                    "`target: {t}` is not a repository name ({e}); a repository entry copies each tag to the same tag of `target:`"
                ))
            })?;
        }
        Ok(MirrorEntry::Repository(RepositoryEntry {
            source: raw.source,
            registry: raw.registry,
            target: raw.target,
            tags: raw.tags.unwrap_or_default(),
            options,
        }))
    }
}

/// A mirror file: its entries, in file order.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(transparent)]
pub struct MirrorFile {
    /// The entries, in file order.
    pub entries: Vec<MirrorEntry>,
}

impl MirrorFile {
    /// Parses a file's text: JSON when it starts with `[`, YAML otherwise. `origin` names the
    /// file in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, MirrorError> {
        let invalid = |reason: String| MirrorError::InvalidFile {
            path: origin.to_owned(),
            reason,
        };
        let entries: Vec<MirrorEntry> = if text.trim_start().starts_with('[') {
            serde_json::from_str(text).map_err(|e| invalid(e.to_string()))?
        } else {
            serde_norway::from_str(text).map_err(|e| {
                let mut reason = e.to_string();
                if reason.contains("expected a sequence") {
                    reason.push_str(
                        " (a mirror file is a list of entries, each starting `- source:`)",
                    );
                }
                invalid(reason)
            })?
        };
        if entries.is_empty() {
            return Err(invalid(
                "it lists no entries: write a list of `- source: …` entries".to_owned(),
            ));
        }
        Ok(Self { entries })
    }

    /// Reads and parses a file.
    pub fn read(path: &Path) -> Result<Self, MirrorError> {
        let text = std::fs::read_to_string(path).map_err(|e| MirrorError::InvalidFile {
            path: path.display().to_string(),
            reason: format!("cannot read it: {e}"),
        })?;
        Self::parse(&text, &path.display().to_string())
    }
}

impl RepositoryEntry {
    /// The target repository: `target:`, or the source's repository path (`nginx` →
    /// `library/nginx`).
    pub fn target_repository(&self) -> String {
        if let Some(t) = &self.target {
            return t.clone();
        }
        let path = if self.registry.is_some() {
            self.source
                .parse::<RepositoryReference>()
                .map(|r| r.repository().to_string())
        } else {
            self.source
                .parse::<Reference>()
                .map(|r| r.normalized().repository().to_string())
        };
        // The source was checked when the entry was read.
        path.unwrap_or_else(|_| self.source.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<MirrorFile, String> {
        MirrorFile::parse(text, "mirror.yaml").map_err(|e| e.to_string())
    }

    fn one(text: &str) -> MirrorEntry {
        parse(text).unwrap().entries.remove(0)
    }

    macro_rules! refused {
        ($($name:ident: $text:expr => $needle:expr;)*) => {$(
            #[test]
            fn $name() {
                let e = parse($text).unwrap_err();
                assert!(e.contains("mirror.yaml"), "{e}");
                assert!(e.contains($needle), "{e} (expected to contain {:?})", $needle);
            }
        )*};
    }

    refused! {
        unknown_key: "- source: nginx:1\n  imgs: [a:1]\n" => "imgs";
        unknown_tag_rule: "- source: nginx\n  tags: {semvar: '1'}\n" => "semvar";
        tags_on_one_image: "- source: nginx:1.27\n  tags: {latest: 2}\n" => "drop its tag or digest";
        tags_with_images: "- source: nginx\n  images: [a:1]\n  tags: {latest: 2}\n" => "cannot go with";
        target_on_one_image: "- source: nginx:1\n  target: mirror/nginx\n" => "images:";
        bad_target: "- source: nginx\n  target: Mirror/Nginx\n" => "not a repository name";
        bad_range: "- source: nginx\n  tags: {semver: '>>1'}\n" => "semver";
        bad_regex: "- source: nginx\n  tags: {include: ['(']}\n" => "include";
        zero_latest: "- source: nginx\n  tags: {latest: 0}\n" => "latest";
        bad_platform: "- source: nginx\n  platforms: [linux]\n" => "os/arch";
        bad_source: "- source: NGINX\n" => "lowercase";
        empty_source: "- source: ''\n" => "empty";
        bad_prefix: "- source: nginx:1\n  credentials-env: 'A-B'\n" => "prefix";
        empty_list: "[]" => "no entries";
        not_a_list: "source: nginx\n" => "sequence";
        bad_json: "[{\"source\": \"nginx\", \"tag\": 1}]" => "tag";
    }

    #[test]
    fn single_image_entries_stay_as_they_were() {
        let e = one(
            "- source: docker.io/library/nginx:1.27\n  images: [nginx:1.27, nginx:stable]\n  credentials-env: HUB\n",
        );
        let MirrorEntry::Image(i) = e else {
            panic!("{e:?}")
        };
        assert_eq!(i.images, ["nginx:1.27", "nginx:stable"]);
        assert_eq!(i.options.credentials_env.as_deref(), Some("HUB"));
        // A bare source with explicit targets keeps meaning `:latest`.
        assert!(matches!(
            one("- source: nginx\n  repositories: [m/nginx]\n"),
            MirrorEntry::Image(_)
        ));
        assert!(matches!(
            one("- source: oci:./layout\n"),
            MirrorEntry::Image(_)
        ));
        assert!(matches!(
            one(
                "- source: app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n"
            ),
            MirrorEntry::Image(_)
        ));
    }

    #[test]
    fn repository_entries_take_filters_and_options() {
        let e = one(r#"
- source: docker.io/library/nginx        # a repository, no tag
  target: mirror/nginx
  tags:
    semver: ">=1.26, <2"
    include: ["^stable$", "^mainline$"]
    exclude: ["-rc", "alpine-slim"]
    latest: 5
  platforms: [linux/amd64]
  referrers: false
  force: true
"#);
        let MirrorEntry::Repository(r) = e else {
            panic!("{e:?}")
        };
        assert_eq!(r.target.as_deref(), Some("mirror/nginx"));
        assert_eq!(r.tags.rules().latest, Some(5));
        assert_eq!(r.options.platforms, ["linux/amd64"]);
        assert_eq!(r.options.referrers, Some(false));
        assert_eq!(r.options.force, Some(true));
        let MirrorEntry::Repository(all) = one("- source: quay.io/org/app\n") else {
            panic!()
        };
        assert!(all.tags.is_all());
        assert_eq!(r.target_repository(), "mirror/nginx");
        assert_eq!(all.target_repository(), "org/app");
        let MirrorEntry::Repository(hub) = one("- source: nginx\n") else {
            panic!()
        };
        assert_eq!(hub.target_repository(), "library/nginx");
        let MirrorEntry::Repository(by_registry) = one("- source: org/app\n  registry: quay.io\n")
        else {
            panic!()
        };
        assert_eq!(by_registry.target_repository(), "org/app");
    }

    #[test]
    fn json_and_yaml_read_the_same() {
        let y = parse("- source: quay.io/org/app\n  tags: {include: ['^v']}\n").unwrap();
        let j = parse(r#"[{"source": "quay.io/org/app", "tags": {"include": ["^v"]}}]"#).unwrap();
        assert_eq!(y, j);
        // The serialized form reads back as the same file.
        let text = serde_json::to_string(&y).unwrap();
        assert_eq!(parse(&text).unwrap(), y);
    }

    #[test]
    fn a_missing_file_is_named() {
        let e = MirrorFile::read(Path::new("/nonexistent/mirror.yaml"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("/nonexistent/mirror.yaml") && e.contains("cannot read"),
            "{e}"
        );
    }
}
