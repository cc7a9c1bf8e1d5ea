//! Scopes and grants: what a token's `access` claim holds, and what a user may be given.

use serde::{Deserialize, Serialize};

/// One entry of a token's `access` claim, also the parsed form of a scope
/// string such as `repository:library/alpine:pull,push`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Access {
    /// Resource type, e.g. `repository` or `registry`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Resource name, e.g. `library/alpine` or `catalog`.
    pub name: String,
    /// Actions, e.g. `pull`, `push`, `delete`, `*`.
    pub actions: Vec<String>,
}

impl Access {
    /// A `repository` access entry.
    pub fn repository(name: &str, actions: &[&str]) -> Self {
        Self {
            kind: "repository".into(),
            name: name.into(),
            actions: actions.iter().map(|a| (*a).to_string()).collect(),
        }
    }

    /// The `registry:catalog:*` access entry.
    pub fn catalog() -> Self {
        Self {
            kind: "registry".into(),
            name: "catalog".into(),
            actions: vec!["*".into()],
        }
    }

    /// Parses one scope, `type[(class)]:name:action[,action...]`.
    ///
    /// The name may contain `/` and `:` (e.g. `localhost:5000/a`); the type
    /// ends at the first `:` and the actions start after the last one. A
    /// resource class such as `repository(plugin)` is dropped. Returns `None`
    /// for malformed input.
    pub fn parse_scope(scope: &str) -> Option<Self> {
        let scope = scope.trim();
        let (kind, rest) = scope.split_once(':')?;
        let (name, actions) = rest.rsplit_once(':')?;
        let kind = kind.split('(').next().unwrap_or(kind);
        if kind.is_empty() || name.is_empty() {
            return None;
        }
        let actions: Vec<String> = actions
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_string)
            .collect();
        Some(Self {
            kind: kind.to_string(),
            name: name.to_string(),
            actions,
        })
    }

    /// Renders the entry as a scope string, `type:name:a,b`.
    pub fn to_scope(&self) -> String {
        format!("{}:{}:{}", self.kind, self.name, self.actions.join(","))
    }
}

/// Parses a space-separated list of scopes (as in a `POST /token` form or a
/// `WWW-Authenticate` challenge), skipping malformed entries.
pub fn parse_scopes(scopes: &str) -> Vec<Access> {
    scopes
        .split_whitespace()
        .filter_map(Access::parse_scope)
        .collect()
}

/// What a user (or anonymous caller) may do on the resources matching a
/// pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// Resource type the grant applies to (`repository`, `registry`).
    pub kind: String,
    /// `*` for every name, `prefix/*` for every name starting with `prefix/`,
    /// otherwise an exact name.
    pub pattern: String,
    /// Allowed actions; `*` allows every action.
    pub actions: Vec<String>,
}

impl Grant {
    /// A grant on repositories matching `pattern` (`*`, `team/*` or exact).
    pub fn repository(pattern: &str, actions: &[&str]) -> Self {
        Self {
            kind: "repository".into(),
            pattern: pattern.into(),
            actions: actions.iter().map(|a| (*a).to_string()).collect(),
        }
    }

    /// Pull, push and delete on every repository.
    pub fn all_repositories() -> Self {
        Self::repository("*", &["pull", "push", "delete"])
    }

    /// Pull on every repository.
    pub fn pull_all() -> Self {
        Self::repository("*", &["pull"])
    }

    /// `registry:catalog:*`.
    pub fn catalog() -> Self {
        Self {
            kind: "registry".into(),
            pattern: "catalog".into(),
            actions: vec!["*".into()],
        }
    }

    fn matches(&self, kind: &str, name: &str) -> bool {
        if self.kind != kind {
            return false;
        }
        if self.pattern == "*" || self.pattern == name {
            return true;
        }
        match self.pattern.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => false,
        }
    }
}

/// The access granted for `requested` under `grants`: for each requested
/// entry, the requested actions that some matching grant allows (`*` in a
/// grant allows everything). Entries with no allowed action are dropped.
pub fn intersect(requested: &[Access], grants: &[Grant]) -> Vec<Access> {
    let mut out: Vec<Access> = Vec::new();
    for req in requested {
        let allowed: Vec<&String> = grants
            .iter()
            .filter(|g| g.matches(&req.kind, &req.name))
            .flat_map(|g| g.actions.iter())
            .collect();
        let wildcard = allowed.iter().any(|a| a.as_str() == "*");
        let mut actions: Vec<String> = Vec::new();
        for a in &req.actions {
            if (wildcard || allowed.contains(&a)) && !actions.contains(a) {
                actions.push(a.clone());
            }
        }
        if actions.is_empty() {
            continue;
        }
        // Merge repeated requests for the same resource.
        if let Some(existing) = out
            .iter_mut()
            .find(|e| e.kind == req.kind && e.name == req.name)
        {
            for a in actions {
                if !existing.actions.contains(&a) {
                    existing.actions.push(a);
                }
            }
        } else {
            out.push(Access {
                kind: req.kind.clone(),
                name: req.name.clone(),
                actions,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_parsing() {
        assert_eq!(
            Access::parse_scope("repository:library/alpine:pull,push"),
            Some(Access::repository("library/alpine", &["pull", "push"]))
        );
        assert_eq!(
            Access::parse_scope("repository:localhost:5000/a/b:pull"),
            Some(Access::repository("localhost:5000/a/b", &["pull"]))
        );
        assert_eq!(
            Access::parse_scope("repository(plugin):x:pull"),
            Some(Access::repository("x", &["pull"]))
        );
        assert_eq!(
            Access::parse_scope("registry:catalog:*"),
            Some(Access::catalog())
        );
        assert_eq!(Access::parse_scope("garbage"), None);
        assert_eq!(Access::parse_scope("repository::pull"), None);
        assert_eq!(
            parse_scopes(" repository:a:pull  bad registry:catalog:* ").len(),
            2
        );
    }

    #[test]
    fn intersection() {
        let grants = [
            Grant::repository("team/*", &["pull", "push"]),
            Grant::repository("exact", &["pull"]),
        ];
        let req = [
            Access::repository("team/x", &["pull", "push", "delete"]),
            Access::repository("exact", &["pull", "push"]),
            Access::repository("other", &["pull"]),
            Access::catalog(),
        ];
        assert_eq!(
            intersect(&req, &grants),
            vec![
                Access::repository("team/x", &["pull", "push"]),
                Access::repository("exact", &["pull"]),
            ]
        );
        assert_eq!(
            intersect(&req[..1], &[Grant::repository("*", &["*"])]),
            vec![Access::repository("team/x", &["pull", "push", "delete"])]
        );
    }
}
