//! Token scopes (`repository:<name>:pull,push`) as the distribution token spec defines them.

use std::collections::BTreeSet;
use std::fmt;

/// One action a scope grants, such as `pull` or `push`.
///
/// Actions are kept as strings because registries define their own (`delete`,
/// `metadata_read` on ACR, `*` for the catalog).
pub type Action = String;

/// A resource scope: `type:name:action,action`.
///
/// The resource name may contain `:` (a registry host with a port in some schemes), so parsing
/// splits at the first and the last colon, as the distribution token spec says.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Scope {
    resource_type: String,
    name: String,
    actions: BTreeSet<Action>,
}

impl Scope {
    /// A `repository:<name>:<actions>` scope.
    pub fn repository<'a>(name: &str, actions: impl IntoIterator<Item = &'a str>) -> Self {
        Self {
            resource_type: "repository".to_owned(),
            name: name.to_owned(),
            actions: actions.into_iter().map(str::to_owned).collect(),
        }
    }

    /// `repository:<name>:pull`.
    pub fn pull(name: &str) -> Self {
        Self::repository(name, ["pull"])
    }

    /// `repository:<name>:pull,push`.
    pub fn push(name: &str) -> Self {
        Self::repository(name, ["pull", "push"])
    }

    /// Parses `type:name:actions`; `None` when the text is not of that form.
    pub fn parse(text: &str) -> Option<Self> {
        let (resource_type, rest) = text.split_once(':')?;
        let (name, actions) = rest.rsplit_once(':')?;
        if resource_type.is_empty() || name.is_empty() {
            return None;
        }
        let actions: BTreeSet<Action> = actions
            .split(',')
            .filter(|a| !a.is_empty())
            .map(str::to_owned)
            .collect();
        Some(Self {
            resource_type: resource_type.to_owned(),
            name: name.to_owned(),
            actions,
        })
    }

    /// The resource type (`repository`, `registry`, …).
    pub fn resource_type(&self) -> &str {
        &self.resource_type
    }

    /// The resource name (a repository path for `repository` scopes).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The actions, sorted.
    pub fn actions(&self) -> impl Iterator<Item = &str> {
        self.actions.iter().map(String::as_str)
    }

    /// Whether this scope grants `action` (a `*` grant covers every action).
    pub fn allows(&self, action: &str) -> bool {
        self.actions.contains(action) || self.actions.contains("*")
    }

    fn same_resource(&self, other: &Scope) -> bool {
        self.resource_type == other.resource_type && self.name == other.name
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:", self.resource_type, self.name)?;
        for (i, a) in self.actions.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(a)?;
        }
        Ok(())
    }
}

/// A set of scopes, merged per resource: `repository:a:pull` + `repository:a:push` is
/// `repository:a:pull,push`, and scopes of other repositories stay separate entries of one
/// token request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ScopeSet {
    scopes: Vec<Scope>,
}

impl ScopeSet {
    /// An empty set (a token for `/v2/` itself).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a scope, merging its actions into an existing entry for the same resource.
    pub fn insert(&mut self, scope: Scope) {
        if let Some(existing) = self.scopes.iter_mut().find(|s| s.same_resource(&scope)) {
            existing.actions.extend(scope.actions);
        } else {
            self.scopes.push(scope);
            self.scopes.sort();
        }
    }

    /// Builder form of [`ScopeSet::insert`].
    pub fn with(mut self, scope: Scope) -> Self {
        self.insert(scope);
        self
    }

    /// Adds every scope of `other`.
    pub fn extend(&mut self, other: &ScopeSet) {
        for s in &other.scopes {
            self.insert(s.clone());
        }
    }

    /// The scopes, sorted by resource.
    pub fn iter(&self) -> impl Iterator<Item = &Scope> {
        self.scopes.iter()
    }

    /// Whether there is no scope.
    pub fn is_empty(&self) -> bool {
        self.scopes.is_empty()
    }

    /// The repository a request with these scopes acts on: the one it pushes to, else the
    /// first it reads. `None` for a request on no repository (`/v2/`, the catalog).
    pub fn primary_repository(&self) -> Option<&str> {
        let repositories = || {
            self.scopes
                .iter()
                .filter(|s| s.resource_type == "repository")
        };
        repositories()
            .find(|s| s.allows("push"))
            .or_else(|| repositories().next())
            .map(|s| s.name.as_str())
    }

    /// Whether every action of every scope in `wanted` is granted here.
    pub fn covers(&self, wanted: &ScopeSet) -> bool {
        wanted.scopes.iter().all(|w| {
            self.scopes
                .iter()
                .find(|s| s.same_resource(w))
                .is_some_and(|s| w.actions().all(|a| s.allows(a)))
        })
    }

    /// The first `(scope, action)` of `wanted` that this set does not grant.
    pub fn first_missing<'a>(&self, wanted: &'a ScopeSet) -> Option<(&'a Scope, &'a str)> {
        wanted.scopes.iter().find_map(|w| {
            let granted = self.scopes.iter().find(|s| s.same_resource(w));
            w.actions()
                .find(|a| !granted.is_some_and(|g| g.allows(a)))
                .map(|a| (w, a))
        })
    }
}

impl fmt::Display for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.scopes.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{s}")?;
        }
        Ok(())
    }
}

impl FromIterator<Scope> for ScopeSet {
    fn from_iter<T: IntoIterator<Item = Scope>>(iter: T) -> Self {
        let mut set = ScopeSet::new();
        for s in iter {
            set.insert(s);
        }
        set
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_print() {
        let s = Scope::parse("repository:library/nginx:push,pull").unwrap();
        assert_eq!(s.name(), "library/nginx");
        assert_eq!(s.to_string(), "repository:library/nginx:pull,push");
        let host = Scope::parse("repository:localhost:5000/a:pull").unwrap();
        assert_eq!(host.name(), "localhost:5000/a");
        assert!(Scope::parse("nonsense").is_none());
        assert!(Scope::parse(":a:pull").is_none());
    }

    #[test]
    fn sets_merge_per_resource() {
        let set: ScopeSet = [
            Scope::pull("b"),
            Scope::pull("a"),
            Scope::repository("a", ["push"]),
        ]
        .into_iter()
        .collect();
        assert_eq!(set.to_string(), "repository:a:pull,push repository:b:pull");
        assert!(set.covers(&ScopeSet::new().with(Scope::push("a"))));
        assert!(!set.covers(&ScopeSet::new().with(Scope::push("b"))));
        let wanted = ScopeSet::new().with(Scope::push("b"));
        let (scope, action) = set.first_missing(&wanted).unwrap();
        assert_eq!((scope.name(), action), ("b", "push"));
    }

    #[test]
    fn the_primary_repository_is_the_one_written() {
        let mount = ScopeSet::new()
            .with(Scope::pull("source/app"))
            .with(Scope::push("target/app"));
        assert_eq!(mount.primary_repository(), Some("target/app"));
        let read = ScopeSet::new()
            .with(Scope::pull("b"))
            .with(Scope::pull("a"));
        assert_eq!(read.primary_repository(), Some("a"));
        assert_eq!(ScopeSet::new().primary_repository(), None);
    }

    #[test]
    fn star_covers_everything() {
        let set = ScopeSet::new().with(Scope::repository("a", ["*"]));
        assert!(set.covers(&ScopeSet::new().with(Scope::push("a"))));
    }
}
