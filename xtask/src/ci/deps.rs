//! The unused-dependency gate: every dependency a workspace member declares (normal, dev or
//! build) is named in its Rust sources, as a path (`name::`), a `use name` or an
//! `extern crate name`, under the name code knows it by (`-` → `_`, or its rename), unless
//! [`ALLOWED`] says why not.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde_json::Value;

/// Dependencies declared without being named in code, with the reason: (member, crate as
/// code names it, why).
const ALLOWED: &[(&str, &str, &str)] = &[];

/// A dependency of a member, as `cargo metadata` resolves it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Declared {
    /// The member's package name.
    member: String,
    /// The member's directory.
    dir: PathBuf,
    /// The name code uses for the dependency (`extern crate` name: underscores, renames).
    name: String,
    /// `normal`, `dev` and/or `build`.
    kinds: Vec<String>,
}

/// Runs the gate on the workspace at `root`.
pub fn check(root: &Path) -> anyhow::Result<()> {
    let out = crate::cargo()
        .current_dir(root)
        .args(["metadata", "--format-version", "1"])
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: Value = serde_json::from_slice(&out.stdout).context("parsing cargo metadata")?;
    let declared = declared(&meta)?;
    let member_dirs: BTreeSet<PathBuf> = declared.iter().map(|d| d.dir.clone()).collect();
    let mut unused = Vec::new();
    let mut checked = 0;
    for dir in &member_dirs {
        let sources = read_sources(dir, &member_dirs)?;
        for d in declared.iter().filter(|d| &d.dir == dir) {
            checked += 1;
            let allowed = ALLOWED
                .iter()
                .any(|(m, n, _)| *m == d.member && *n == d.name);
            if !allowed && !sources.iter().any(|s| references(s, &d.name)) {
                unused.push(format!(
                    "{}: {} ({}) is never named in its sources",
                    d.member,
                    d.name,
                    d.kinds.join(", ")
                ));
            }
        }
    }
    anyhow::ensure!(
        unused.is_empty(),
        "unused dependencies (remove them, or list them in xtask/src/ci/deps.rs ALLOWED \
         with the reason):\n  {}",
        unused.join("\n  ")
    );
    println!(
        "    {checked} dependencies of {} members, each named in its sources",
        member_dirs.len()
    );
    Ok(())
}

/// Every dependency of every workspace member, from `cargo metadata` (with the resolve).
fn declared(meta: &Value) -> anyhow::Result<Vec<Declared>> {
    let members: Vec<&str> = meta["workspace_members"]
        .as_array()
        .context("cargo metadata has no workspace_members")?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let nodes = meta["resolve"]["nodes"]
        .as_array()
        .context("cargo metadata has no resolve")?;
    let mut out = Vec::new();
    for id in members {
        let package = meta["packages"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["id"] == id)
            .with_context(|| format!("no package {id} in cargo metadata"))?;
        let member = package["name"].as_str().unwrap_or_default().to_owned();
        let dir = Path::new(package["manifest_path"].as_str().unwrap_or_default())
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let node = nodes
            .iter()
            .find(|n| n["id"] == id)
            .with_context(|| format!("no resolve node for {member}"))?;
        for dep in node["deps"].as_array().into_iter().flatten() {
            let mut kinds: Vec<String> = dep["dep_kinds"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|k| k["kind"].as_str().unwrap_or("normal").to_owned())
                .collect();
            kinds.dedup();
            out.push(Declared {
                member: member.clone(),
                dir: dir.clone(),
                name: dep["name"].as_str().unwrap_or_default().to_owned(),
                kinds,
            });
        }
    }
    Ok(out)
}

/// The Rust sources under `dir`, leaving out `target` and the other members nested in it.
fn read_sources(dir: &Path, members: &BTreeSet<PathBuf>) -> anyhow::Result<Vec<String>> {
    let mut sources = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                let skip = path
                    .file_name()
                    .is_some_and(|n| n == "target" || n == ".git")
                    || members.contains(&path);
                if !skip {
                    todo.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "rs") {
                sources.push(
                    std::fs::read_to_string(&path)
                        .with_context(|| format!("reading {}", path.display()))?,
                );
            }
        }
    }
    Ok(sources)
}

/// Whether `source` names the crate `name` outside line comments: `name::` (not as the tail
/// of a longer identifier), `use name` or `extern crate name`.
fn references(source: &str, name: &str) -> bool {
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    let path = format!("{name}::");
    source.lines().any(|line| {
        let code = line.split("//").next().unwrap_or_default();
        let as_path = code
            .match_indices(&path)
            .any(|(at, _)| !code[..at].ends_with(ident));
        let item = code.trim_start();
        let item = item.strip_prefix("pub ").unwrap_or(item);
        let as_item = ["use ", "extern crate "].iter().any(|prefix| {
            item.strip_prefix(prefix).is_some_and(|rest| {
                let rest = rest.trim_start().trim_start_matches("::");
                rest.strip_prefix(name)
                    .is_some_and(|after| !after.starts_with(ident))
            })
        });
        as_path || as_item
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crate_is_referenced_by_a_path_a_use_or_an_extern_crate() {
        for source in [
            "fn main() { tokio::spawn(async {}); }",
            "#[tokio::main]\nasync fn main() {}",
            "use tokio;",
            "    pub use ::tokio as rt;",
            "extern crate tokio;",
            "let x = <tokio::net::TcpStream>::connect;",
        ] {
            assert!(references(source, "tokio"), "{source:?}");
        }
        for source in [
            "",
            "// tokio is not used",
            "/// See [`tokio::spawn`].",
            "fn f() { my_tokio::spawn(); }",
            "use tokio_rustls::TlsAcceptor;",
            "let tokio = 1;",
            "extern crate tokio_util;",
            "let s = \"tokio\";",
        ] {
            assert!(!references(source, "tokio"), "{source:?}");
        }
    }

    #[test]
    fn declared_dependencies_come_from_the_resolve_with_their_code_names_and_kinds() {
        let meta = serde_json::json!({
            "workspace_members": ["app 0.1.0 (path+file:///w/app)"],
            "packages": [
                {"id": "app 0.1.0 (path+file:///w/app)", "name": "app",
                 "manifest_path": "/w/app/Cargo.toml"},
                {"id": "tokio-rustls 0.26.0", "name": "tokio-rustls",
                 "manifest_path": "/r/tokio-rustls/Cargo.toml"}
            ],
            "resolve": {"nodes": [
                {"id": "app 0.1.0 (path+file:///w/app)", "deps": [
                    {"name": "tokio_rustls", "pkg": "tokio-rustls 0.26.0",
                     "dep_kinds": [{"kind": null, "target": null}]},
                    {"name": "tempfile", "pkg": "tempfile 3.0.0",
                     "dep_kinds": [{"kind": "dev", "target": null},
                                   {"kind": "build", "target": null}]}
                ]},
                {"id": "tokio-rustls 0.26.0", "deps": []}
            ]}
        });
        let got = declared(&meta).unwrap();
        let names: Vec<(&str, &str, Vec<&str>)> = got
            .iter()
            .map(|d| {
                (
                    d.member.as_str(),
                    d.name.as_str(),
                    d.kinds.iter().map(String::as_str).collect(),
                )
            })
            .collect();
        assert_eq!(
            names,
            vec![
                ("app", "tokio_rustls", vec!["normal"]),
                ("app", "tempfile", vec!["dev", "build"]),
            ]
        );
        assert!(got.iter().all(|d| d.dir == Path::new("/w/app")));
    }
}
