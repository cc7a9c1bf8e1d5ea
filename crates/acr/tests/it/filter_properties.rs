//! The tag filters select exactly what the rule says, over generated tag sets.
//!
//! The oracle below knows each generated tag's version from how it was generated (it parses
//! nothing), evaluates ranges as lists of comparators on (major, minor, patch, pre-release)
//! with the pre-release rule written out, and matches expressions with `str` methods. The rule:
//! selected = (semver ∪ include) − exclude (all tags when neither semver nor include is given);
//! `latest: N` keeps the selected versions among the N highest distinct ones and every selected
//! tag that is not a version.

use std::collections::BTreeSet;

use acr_import_acr::mirror::{TagFilter, TagRules, parse_version};
use proptest::prelude::*;

/// Pre-releases in ascending semver order (the oracle compares their positions).
const PRE: [&str; 6] = ["alpha", "alpha.1", "alpine", "beta", "rc.1", "rc.2"];
/// Tags that are not versions under the lenient rules.
const WORDS: [&str; 10] = [
    "latest", "stable", "mainline", "edge", "alpine", "1.2.3.4", "01.2", "1.02", "main-1.2", "v",
];

#[derive(Debug, Clone)]
struct GenTag {
    v: bool,
    /// One to three numbers.
    nums: Vec<u64>,
    pre: Option<usize>,
    build: bool,
}

impl GenTag {
    fn text(&self) -> String {
        let mut s = String::new();
        if self.v {
            s.push('v');
        }
        s.push_str(
            &self
                .nums
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join("."),
        );
        if let Some(p) = self.pre {
            s.push('-');
            s.push_str(PRE[p]);
        }
        if self.build {
            s.push_str("+b1");
        }
        s
    }

    /// (major, minor, patch, pre rank): a release ranks above all its pre-releases.
    fn key(&self) -> Key {
        let n = |i: usize| self.nums.get(i).copied().unwrap_or(0);
        (n(0), n(1), n(2), self.pre.unwrap_or(PRE.len()))
    }
}

type Key = (u64, u64, u64, usize);

#[derive(Debug, Clone)]
enum Tag {
    Version(GenTag),
    Word(String),
}

impl Tag {
    fn text(&self) -> String {
        match self {
            Tag::Version(g) => g.text(),
            Tag::Word(w) => w.clone(),
        }
    }
    fn key(&self) -> Option<Key> {
        match self {
            Tag::Version(g) => Some(g.key()),
            Tag::Word(_) => None,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Ge,
    Gt,
    Le,
    Lt,
    Eq,
}

#[derive(Debug, Clone)]
struct Comparator {
    op: Op,
    v: bool,
    nums: [u64; 3],
    pre: Option<usize>,
}

impl Comparator {
    fn text(&self) -> String {
        let op = match self.op {
            Op::Ge => ">=",
            Op::Gt => ">",
            Op::Le => "<=",
            Op::Lt => "<",
            Op::Eq => "=",
        };
        let mut s = format!(
            "{op}{}{}.{}.{}",
            if self.v { "v" } else { "" },
            self.nums[0],
            self.nums[1],
            self.nums[2]
        );
        if let Some(p) = self.pre {
            s.push('-');
            s.push_str(PRE[p]);
        }
        s
    }
    fn key(&self) -> Key {
        (
            self.nums[0],
            self.nums[1],
            self.nums[2],
            self.pre.unwrap_or(PRE.len()),
        )
    }
    fn holds(&self, k: Key) -> bool {
        let c = self.key();
        match self.op {
            Op::Ge => k >= c,
            Op::Gt => k > c,
            Op::Le => k <= c,
            Op::Lt => k < c,
            Op::Eq => k == c,
        }
    }
}

/// An alternative holds when every comparator does and, for a pre-release, one of its
/// comparators names a pre-release of the same major.minor.patch.
fn range_holds(range: &[Vec<Comparator>], k: Key) -> bool {
    range.iter().any(|alt| {
        alt.iter().all(|c| c.holds(k))
            && (k.3 == PRE.len()
                || alt.iter().any(|c| {
                    c.pre.is_some() && (c.nums[0], c.nums[1], c.nums[2]) == (k.0, k.1, k.2)
                }))
    })
}

#[derive(Debug, Clone)]
enum Pattern {
    Whole(String),
    Prefix(String),
    Contains(String),
}

impl Pattern {
    fn regex(&self) -> String {
        match self {
            Pattern::Whole(s) => format!("^{}$", regex::escape(s)),
            Pattern::Prefix(s) => format!("^{}", regex::escape(s)),
            Pattern::Contains(s) => regex::escape(s),
        }
    }
    fn matches(&self, tag: &str) -> bool {
        match self {
            Pattern::Whole(s) => tag == s,
            Pattern::Prefix(s) => tag.starts_with(s.as_str()),
            Pattern::Contains(s) => tag.contains(s.as_str()),
        }
    }
}

fn gen_tag() -> impl Strategy<Value = Tag> {
    prop_oneof![
        3 => (any::<bool>(), prop::collection::vec(0u64..4, 1..=3), prop::option::weighted(0.3, 0..PRE.len()), prop::bool::weighted(0.1))
            .prop_map(|(v, nums, pre, build)| Tag::Version(GenTag { v, nums, pre, build })),
        1 => prop::sample::select(WORDS.to_vec()).prop_map(|w| Tag::Word(w.to_owned())),
        // Words never start with `v` or a digit, so none is a version.
        1 => "[a-uw-z][a-z0-9.-]{0,6}".prop_map(Tag::Word),
    ]
}

fn gen_comparator() -> impl Strategy<Value = Comparator> {
    (
        prop::sample::select(vec![Op::Ge, Op::Gt, Op::Le, Op::Lt, Op::Eq]),
        any::<bool>(),
        [0u64..4, 0u64..4, 0u64..4],
        prop::option::weighted(0.25, 0..PRE.len()),
    )
        .prop_map(|(op, v, nums, pre)| Comparator { op, v, nums, pre })
}

fn gen_pattern() -> impl Strategy<Value = Pattern> {
    let piece = prop::sample::select(vec![
        "stable", "latest", "v", "1", "1.", "alpine", "-rc", "rc", "edge", "0.1", "-",
    ]);
    prop_oneof![
        piece.clone().prop_map(|s| Pattern::Whole(s.to_owned())),
        piece.clone().prop_map(|s| Pattern::Prefix(s.to_owned())),
        piece.prop_map(|s| Pattern::Contains(s.to_owned())),
    ]
}

#[derive(Debug, Clone)]
struct Rules {
    range: Option<Vec<Vec<Comparator>>>,
    include: Vec<Pattern>,
    exclude: Vec<Pattern>,
    latest: Option<usize>,
}

fn gen_rules() -> impl Strategy<Value = Rules> {
    (
        prop::option::of(prop::collection::vec(
            prop::collection::vec(gen_comparator(), 1..=3),
            1..=2,
        )),
        prop::collection::vec(gen_pattern(), 0..=2),
        prop::collection::vec(gen_pattern(), 0..=2),
        prop::option::of(1usize..5),
    )
        .prop_map(|(range, include, exclude, latest)| Rules {
            range,
            include,
            exclude,
            latest,
        })
}

impl Rules {
    fn to_tag_rules(&self) -> TagRules {
        TagRules {
            semver: self.range.as_ref().map(|alts| {
                alts.iter()
                    .map(|alt| {
                        alt.iter()
                            .map(Comparator::text)
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                    .collect::<Vec<_>>()
                    .join(" || ")
            }),
            include: self.include.iter().map(Pattern::regex).collect(),
            exclude: self.exclude.iter().map(Pattern::regex).collect(),
            latest: self.latest,
        }
    }

    /// The rule of the issue, on generated tags.
    fn expected(&self, tags: &[Tag]) -> Vec<String> {
        let mut seen = BTreeSet::new();
        let unique: Vec<&Tag> = tags.iter().filter(|t| seen.insert(t.text())).collect();
        let selected: Vec<&Tag> = unique
            .into_iter()
            .filter(|t| {
                let text = t.text();
                let base = if self.range.is_none() && self.include.is_empty() {
                    true
                } else {
                    let by_version = match (&self.range, t.key()) {
                        (Some(r), Some(k)) => range_holds(r, k),
                        _ => false,
                    };
                    by_version || self.include.iter().any(|p| p.matches(&text))
                };
                base && !self.exclude.iter().any(|p| p.matches(&text))
            })
            .collect();
        let kept_keys: Option<BTreeSet<Key>> = self.latest.map(|n| {
            let keys: BTreeSet<Key> = selected.iter().filter_map(|t| t.key()).collect();
            keys.into_iter().rev().take(n).collect()
        });
        selected
            .into_iter()
            .filter(|t| match (&kept_keys, t.key()) {
                (Some(kept), Some(k)) => kept.contains(&k),
                _ => true,
            })
            .map(Tag::text)
            .collect()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn filters_select_exactly_what_the_rule_says(
        tags in prop::collection::vec(gen_tag(), 0..40),
        rules in gen_rules(),
    ) {
        let filter = TagFilter::new(rules.to_tag_rules()).unwrap();
        let texts: Vec<String> = tags.iter().map(Tag::text).collect();
        let got: Vec<&str> = filter.select(texts.iter().map(String::as_str));
        prop_assert_eq!(got, rules.expected(&tags), "filter {}", filter);
    }

    #[test]
    fn generated_tags_parse_as_generated(tag in gen_tag()) {
        let parsed = parse_version(&tag.text());
        match (&tag, parsed) {
            (Tag::Version(g), Some(v)) => {
                let k = g.key();
                prop_assert_eq!((v.major, v.minor, v.patch), (k.0, k.1, k.2));
                prop_assert_eq!(v.pre.as_str(), g.pre.map_or("", |p| PRE[p]));
            }
            (Tag::Word(_), None) => {}
            (Tag::Word(w), Some(v)) => prop_assert!(false, "{} read as {}", w, v),
            (Tag::Version(g), None) => prop_assert!(false, "{} is a version", g.text()),
        }
    }

    #[test]
    fn no_filter_selects_every_tag_once(tags in prop::collection::vec(gen_tag(), 0..30)) {
        let texts: Vec<String> = tags.iter().map(Tag::text).collect();
        let mut seen = BTreeSet::new();
        let unique: Vec<&str> = texts.iter().map(String::as_str).filter(|t| seen.insert(*t)).collect();
        prop_assert_eq!(TagFilter::default().select(texts.iter().map(String::as_str)), unique);
    }
}
