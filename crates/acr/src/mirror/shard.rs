//! Shards: disjoint parts of a mirror plan, so that N processes (the pods of a Kubernetes
//! Indexed Job, the legs of a CI matrix) share one mirror file.
//!
//! A target tag belongs to shard `h mod N`, where `h` is the first 8 bytes, big-endian, of the
//! SHA-256 of the tag's target reference written `repository:tag` (without the registry, so
//! that naming the target by ACR name, login server or resource ID does not move a tag to
//! another shard). Untagged targets (`repositories:`) are written `repository@SOURCE`, with the
//! source as the entry gives it. The hash never changes between versions of this tool: the same
//! file and N give every process the same parts, whatever runs them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::MirrorError;

/// The I-th of N parts of a plan (`0 <= I < N`). [`Shard::ALL`] is the whole plan.
///
/// ```
/// use acr_import_acr::mirror::Shard;
///
/// let shards: Vec<Shard> = (0..3).map(|i| format!("{i}/3").parse().unwrap()).collect();
/// let owners = shards.iter().filter(|s| s.owns("mirror/nginx:1.27")).count();
/// assert_eq!(owners, 1);
/// assert!("3/3".parse::<Shard>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Shard {
    index: u32,
    count: u32,
}

impl Shard {
    /// The whole plan (`0/1`).
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    /// Shard `index` of `count`.
    pub fn new(index: u32, count: u32) -> Result<Self, MirrorError> {
        if count == 0 || index >= count {
            return Err(MirrorError::InvalidShard {
                value: format!("{index}/{count}"),
                reason: "I must be less than N, and N at least 1".to_owned(),
            });
        }
        Ok(Self { index, count })
    }

    /// I.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// N.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Which shard of `count` owns `key` (a target reference, as the module docs say).
    pub fn owner(key: &str, count: u32) -> u32 {
        let hash = Sha256::digest(key.as_bytes());
        let mut first = [0u8; 8];
        first.copy_from_slice(&hash[..8]);
        (u64::from_be_bytes(first) % u64::from(count.max(1))) as u32
    }

    /// Whether this shard owns `key`.
    pub fn owns(&self, key: &str) -> bool {
        self.count == 1 || Self::owner(key, self.count) == self.index
    }
}

impl Default for Shard {
    fn default() -> Self {
        Self::ALL
    }
}

impl FromStr for Shard {
    type Err = MirrorError;

    fn from_str(value: &str) -> Result<Self, MirrorError> {
        let invalid = |reason: &str| MirrorError::InvalidShard {
            value: value.to_owned(),
            reason: reason.to_owned(),
        };
        let (i, n) = value
            .split_once('/')
            .ok_or_else(|| invalid("there is no `/`"))?;
        let i: u32 = i
            .trim()
            .parse()
            .map_err(|_| invalid("I is not a whole number"))?;
        let n: u32 = n
            .trim()
            .parse()
            .map_err(|_| invalid("N is not a whole number"))?;
        Self::new(i, n)
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl TryFrom<String> for Shard {
    type Error = MirrorError;

    fn try_from(value: String) -> Result<Self, MirrorError> {
        value.parse()
    }
}

impl From<Shard> for String {
    fn from(s: Shard) -> String {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_fixed() {
        // SHA-256("mirror/nginx:1.27") begins 0x900d245c36f2cee4 and SHA-256("library/alpine:3.20")
        // 0xb9f01fb050391749, on every platform and in every version: a change here would
        // move tags between the shards of running deployments.
        for (key, owners) in [
            ("mirror/nginx:1.27", [0, 1, 0, 1, 0]),
            ("library/alpine:3.20", [1, 1, 1, 5, 5]),
        ] {
            let got: Vec<u32> = [2, 3, 4, 7, 10]
                .iter()
                .map(|n| Shard::owner(key, *n))
                .collect();
            assert_eq!(got, owners, "{key}");
        }
        assert_eq!(Shard::owner("mirror/nginx:1.27", 1), 0);
    }

    #[test]
    fn every_key_has_exactly_one_owner() {
        for n in 1..=9u32 {
            let shards: Vec<Shard> = (0..n).map(|i| Shard::new(i, n).unwrap()).collect();
            for k in 0..500 {
                let key = format!("repo{}/app:{k}", k % 13);
                assert_eq!(shards.iter().filter(|s| s.owns(&key)).count(), 1, "{key}");
            }
        }
    }

    #[test]
    fn bad_shards_say_how_to_write_them() {
        for bad in ["", "1", "a/2", "2/b", "2/2", "0/0", "-1/2"] {
            let e = bad.parse::<Shard>().unwrap_err().to_string();
            assert!(
                e.contains(&format!("`{bad}`")) && e.contains("I/N"),
                "{bad}: {e}"
            );
        }
        assert_eq!("1/4".parse::<Shard>().unwrap().to_string(), "1/4");
        assert_eq!(" 0 / 1".parse::<Shard>().unwrap(), Shard::ALL);
    }
}
