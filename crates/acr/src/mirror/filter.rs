//! Tag filters: which tags of a source repository a mirror entry copies.
//!
//! The rule, for a filter with a version range `semver`, regular expressions `include` and
//! `exclude`, and a count `latest`:
//!
//! 1. **selected** = (tags whose version matches `semver` ∪ tags matching an `include`
//!    expression) − tags matching an `exclude` expression. With neither `semver` nor `include`,
//!    every tag is a candidate (so `exclude` or `latest` alone narrow "all tags").
//! 2. `latest: N` then keeps, of the selected tags that parse as versions, those whose version
//!    is one of the N highest distinct versions, and every selected tag that does not parse.
//!
//! Versions are parsed leniently, because registry tags are rarely strict semver
//! ([`parse_version`]): an optional leading `v`, then one to three dot-separated numbers without
//! leading zeros (missing ones are `0`: `1.26` is `1.26.0`, `1` is `1.0.0`), then optionally
//! `-PRE` and `+BUILD` as semver writes them. So `1.27-alpine` is the pre-release `alpine` of
//! `1.27.0`: like every pre-release it matches a range only when the range names a pre-release
//! of the same `major.minor.patch` (the rule of Cargo and npm), so variant tags are picked with
//! `include` expressions, not ranges. Tags with four numbers (`1.2.3.4`), leading zeros (`01`)
//! or other text (`latest`, `stable`) are not versions.
//!
//! Ranges use Cargo's syntax (`>=1.26, <2`, `^1.2`, `~1.2.3`, `1.*`; a bare `1.26` means
//! `^1.26`): comparators separated by commas must all hold; alternatives separated by `||`
//! (as npm writes them) may hold any. A leading `v` on a version in the range is accepted.
//! Regular expressions use the `regex` crate's syntax and match anywhere in the tag (anchor
//! them with `^…$` to match whole tags).

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::fmt;
use std::num::NonZeroUsize;
use std::str::FromStr;

use regex::Regex;
use semver::{Version, VersionReq};
use serde::{Deserialize, Serialize};

use super::MirrorError;

/// A tag's version under the lenient rules of this module, or `None` when the tag is not one.
///
/// ```
/// use acr_import_acr::mirror::parse_version;
///
/// assert_eq!(parse_version("v1.26").unwrap().to_string(), "1.26.0");
/// assert_eq!(parse_version("1.27.3-alpine").unwrap().pre.as_str(), "alpine");
/// assert!(parse_version("latest").is_none());
/// assert!(parse_version("1.2.3.4").is_none());
/// ```
pub fn parse_version(tag: &str) -> Option<Version> {
    let rest = tag.strip_prefix('v').unwrap_or(tag);
    let core_end = rest.find(['-', '+']).unwrap_or(rest.len());
    let (core, suffix) = rest.split_at(core_end);
    let parts: Vec<&str> = core.split('.').collect();
    if parts.is_empty() || parts.len() > 3 {
        return None;
    }
    for p in &parts {
        let numeric = !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
        if !numeric || (p.len() > 1 && p.starts_with('0')) {
            return None;
        }
    }
    let mut full = parts.join(".");
    for _ in parts.len()..3 {
        full.push_str(".0");
    }
    full.push_str(suffix);
    Version::parse(&full).ok()
}

/// A version range: alternatives separated by `||`, each a Cargo-style list of comparators.
#[derive(Debug, Clone)]
pub struct VersionRange {
    text: String,
    alternatives: Vec<VersionReq>,
}

impl VersionRange {
    /// Whether `version` is in the range (pre-releases only as the module docs say).
    pub fn matches(&self, version: &Version) -> bool {
        self.alternatives.iter().any(|r| r.matches(version))
    }

    /// The range as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl FromStr for VersionRange {
    type Err = MirrorError;

    fn from_str(text: &str) -> Result<Self, MirrorError> {
        let invalid = |reason: String| MirrorError::InvalidTagFilter {
            field: "semver",
            value: text.to_owned(),
            reason,
        };
        let mut alternatives = Vec::new();
        for alt in text.split("||") {
            let alt = alt.trim();
            if alt.is_empty() {
                return Err(invalid(
                    "an alternative between `||` is empty (write e.g. `>=1.26, <2 || ^3`)"
                        .to_owned(),
                ));
            }
            // A `v` before a version (`>=v1.2`) is dropped, as in tags.
            let cleaned = strip_v_prefixes(alt);
            let req = VersionReq::parse(&cleaned).map_err(|e| {
                invalid(format!(
                    "{e} (ranges are written as Cargo writes them: `>=1.26, <2`, `^1.2`, `~1.2.3`)"
                ))
            })?;
            alternatives.push(req);
        }
        Ok(Self {
            text: text.to_owned(),
            alternatives,
        })
    }
}

/// `>=v1.2, <v2` → `>=1.2, <2`: a `v` right before a digit, after an operator, comma, space or
/// at the start, is dropped.
fn strip_v_prefixes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut prev: Option<char> = None;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let boundary = prev.is_none_or(|p| matches!(p, ' ' | ',' | '=' | '<' | '>' | '^' | '~'));
        if c == 'v' && boundary && chars.peek().is_some_and(char::is_ascii_digit) {
            prev = Some(c);
            continue;
        }
        out.push(c);
        prev = Some(c);
    }
    out
}

/// The `tags:` rules of a mirror entry, as written in the file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TagRules {
    /// A version range (see the module docs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub semver: Option<String>,
    /// Regular expressions; a tag matching any is selected.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    /// Regular expressions; a tag matching any is dropped.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    /// Keep the N highest versions among the selected tags (and every selected tag that is
    /// not a version).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest: Option<usize>,
}

/// A validated tag filter. [`TagFilter::default`] selects every tag.
///
/// ```
/// use acr_import_acr::mirror::{TagFilter, TagRules};
///
/// let filter = TagFilter::new(TagRules {
///     semver: Some(">=1.26, <2".into()),
///     include: vec!["^stable$".into()],
///     exclude: vec!["-rc".into()],
///     latest: Some(2),
/// })?;
/// let tags = ["1.25.0", "1.26.0", "v1.27.1", "1.28.0-rc.1", "1.27", "stable", "2.0.0", "latest"];
/// assert_eq!(filter.select(tags), ["v1.27.1", "1.27", "stable"]);
/// # Ok::<(), acr_import_acr::mirror::MirrorError>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct TagFilter {
    rules: TagRules,
    semver: Option<VersionRange>,
    include: Vec<Regex>,
    exclude: Vec<Regex>,
    latest: Option<NonZeroUsize>,
}

impl TagFilter {
    /// Validates `rules`: the range parses, every expression compiles, `latest` is at least 1.
    pub fn new(rules: TagRules) -> Result<Self, MirrorError> {
        let semver = rules.semver.as_deref().map(str::parse).transpose()?;
        let compile = |field: &'static str, list: &[String]| -> Result<Vec<Regex>, MirrorError> {
            list.iter()
                .map(|p| {
                    Regex::new(p).map_err(|e| MirrorError::InvalidTagFilter {
                        field,
                        value: p.clone(),
                        reason: e.to_string(),
                    })
                })
                .collect()
        };
        let include = compile("include", &rules.include)?;
        let exclude = compile("exclude", &rules.exclude)?;
        let latest = match rules.latest {
            None => None,
            Some(n) => Some(
                NonZeroUsize::new(n).ok_or_else(|| MirrorError::InvalidTagFilter {
                    field: "latest",
                    value: "0".to_owned(),
                    reason: "keeps no version: give 1 or more, or leave `latest` out".to_owned(),
                })?,
            ),
        };
        Ok(Self {
            rules,
            semver,
            include,
            exclude,
            latest,
        })
    }

    /// The rules this filter was made from.
    pub fn rules(&self) -> &TagRules {
        &self.rules
    }

    /// Whether this filter selects every tag.
    pub fn is_all(&self) -> bool {
        self.semver.is_none()
            && self.include.is_empty()
            && self.exclude.is_empty()
            && self.latest.is_none()
    }

    /// Step 1 of the rule: whether `tag` is in (semver ∪ include) − exclude.
    pub fn candidate(&self, tag: &str) -> bool {
        let base = if self.semver.is_none() && self.include.is_empty() {
            true
        } else {
            let by_version = self
                .semver
                .as_ref()
                .is_some_and(|r| parse_version(tag).is_some_and(|v| r.matches(&v)));
            by_version || self.include.iter().any(|re| re.is_match(tag))
        };
        base && !self.exclude.iter().any(|re| re.is_match(tag))
    }

    /// The selected tags, in the order given (duplicates kept once). Digest tags
    /// ([`is_digest_tag`]) are never selected: they follow the images they name.
    pub fn select<'a>(&self, tags: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
        let mut seen = BTreeSet::new();
        let selected: Vec<&'a str> = tags
            .into_iter()
            .filter(|t| seen.insert(*t) && !is_digest_tag(t) && self.candidate(t))
            .collect();
        let Some(n) = self.latest else {
            return selected;
        };
        let mut versions: Vec<Version> = selected.iter().filter_map(|t| parse_version(t)).collect();
        versions.sort_by(|a, b| b.cmp_precedence(a));
        versions.dedup_by(|a, b| a.cmp_precedence(b) == Ordering::Equal);
        let Some(lowest_kept) = versions.get(n.get() - 1).or(versions.last()).cloned() else {
            return selected;
        };
        selected
            .into_iter()
            .filter(|t| {
                parse_version(t).is_none_or(|v| v.cmp_precedence(&lowest_kept) != Ordering::Less)
            })
            .collect()
    }
}

/// Whether `tag` names a manifest by digest ([`acr_import_reference::DigestTag`]): the
/// referrers fallback tag `sha256-<hex>`, or a digest tag such as cosign's `sha256-<hex>.sig`
/// (any `.suffix`). A mirror copies these with the image they name (unless referrers are
/// off), never as images of their own.
pub fn is_digest_tag(tag: &str) -> bool {
    acr_import_reference::DigestTag::parse(tag).is_some()
}

impl TryFrom<TagRules> for TagFilter {
    type Error = MirrorError;

    fn try_from(rules: TagRules) -> Result<Self, MirrorError> {
        Self::new(rules)
    }
}

impl From<TagFilter> for TagRules {
    fn from(filter: TagFilter) -> Self {
        filter.rules
    }
}

impl PartialEq for TagFilter {
    fn eq(&self, other: &Self) -> bool {
        self.rules == other.rules
    }
}

impl Serialize for TagFilter {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.rules.serialize(s)
    }
}

impl<'de> Deserialize<'de> for TagFilter {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let rules = TagRules::deserialize(d)?;
        Self::new(rules).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for TagFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_all() {
            return f.write_str("all tags");
        }
        let mut parts = Vec::new();
        if let Some(r) = &self.semver {
            parts.push(format!("semver {}", r.as_str()));
        }
        if !self.rules.include.is_empty() {
            parts.push(format!("include {}", self.rules.include.join(" ")));
        }
        if !self.rules.exclude.is_empty() {
            parts.push(format!("exclude {}", self.rules.exclude.join(" ")));
        }
        if let Some(n) = self.latest {
            parts.push(format!("latest {n}"));
        }
        f.write_str(&parts.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! version_table {
        ($($name:ident: $tag:expr => $want:expr;)*) => {$(
            #[test]
            fn $name() {
                assert_eq!(parse_version($tag).map(|v| v.to_string()), $want.map(str::to_owned));
            }
        )*};
    }

    version_table! {
        full: "1.26.3" => Some("1.26.3");
        leading_v: "v1.26.3" => Some("1.26.3");
        two_numbers: "1.26" => Some("1.26.0");
        one_number: "1" => Some("1.0.0");
        v_one_number: "v2" => Some("2.0.0");
        pre_release: "1.27-alpine" => Some("1.27.0-alpine");
        pre_and_build: "v1.2.3-rc.1+linux" => Some("1.2.3-rc.1+linux");
        build_only: "1.2+sha.5114f85" => Some("1.2.0+sha.5114f85");
        four_numbers: "1.2.3.4" => None;
        leading_zero: "1.02" => None;
        zero_is_fine: "0.0.0" => Some("0.0.0");
        word: "latest" => None;
        empty: "" => None;
        only_v: "v" => None;
        capital_v: "V1.2" => None;
        trailing_dot: "1.2." => None;
        dash_only: "1.2-" => None;
        text_after: "1.2alpine" => None;
    }

    #[test]
    fn digest_tags_are_never_selected() {
        let hex = "a".repeat(64);
        let sig = format!("sha256-{hex}.sig");
        let meta = format!("sha256-{hex}.meta");
        let fallback = format!("sha256-{hex}");
        let short = format!("sha256-{}.sig", "a".repeat(63));
        let tags = [
            "1.0",
            sig.as_str(),
            meta.as_str(),
            fallback.as_str(),
            short.as_str(),
        ];
        for filter in [
            TagFilter::default(),
            TagFilter::new(TagRules {
                include: vec!["^sha256-".into(), "^1".into()],
                ..TagRules::default()
            })
            .unwrap(),
        ] {
            assert_eq!(filter.select(tags), ["1.0", short.as_str()], "{filter}");
        }
        assert!(is_digest_tag(&format!("sha512-{}.att", "0".repeat(64))));
        assert!(!is_digest_tag(&format!("sha256-{}", "A".repeat(64))));
        assert!(!is_digest_tag("latest"));
    }

    #[test]
    fn ranges_take_a_leading_v_and_alternatives() {
        let r: VersionRange = ">=v1.26, <v2 || ^3".parse().unwrap();
        assert!(r.matches(&Version::parse("1.26.0").unwrap()));
        assert!(!r.matches(&Version::parse("2.1.0").unwrap()));
        assert!(r.matches(&Version::parse("3.4.0").unwrap()));
        assert!(!r.matches(&Version::parse("1.27.0-rc.1").unwrap()));
        let pre: VersionRange = ">=1.27.0-rc.1, <2".parse().unwrap();
        assert!(pre.matches(&Version::parse("1.27.0-rc.2").unwrap()));
        assert!(!pre.matches(&Version::parse("1.28.0-rc.1").unwrap()));
    }

    #[test]
    fn bad_filters_say_which_field_and_why() {
        let e = TagFilter::new(TagRules {
            semver: Some(">=1.26 <<2".into()),
            ..TagRules::default()
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("semver") && e.contains(">=1.26 <<2"), "{e}");
        let e = TagFilter::new(TagRules {
            include: vec!["(".into()],
            ..TagRules::default()
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("include") && e.contains('('), "{e}");
        let e = TagFilter::new(TagRules {
            latest: Some(0),
            ..TagRules::default()
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("latest"), "{e}");
        let e = "1 || ".parse::<VersionRange>().unwrap_err().to_string();
        assert!(e.contains("empty"), "{e}");
    }

    #[test]
    fn latest_counts_distinct_versions_and_keeps_other_tags() {
        let f = TagFilter::new(TagRules {
            latest: Some(1),
            ..TagRules::default()
        })
        .unwrap();
        assert_eq!(
            f.select(["1.2.0", "v1.2.0", "1.1", "edge", "1.2.0+b1"]),
            ["1.2.0", "v1.2.0", "edge", "1.2.0+b1"]
        );
        assert!(TagFilter::default().is_all());
        assert_eq!(TagFilter::default().to_string(), "all tags");
    }
}
