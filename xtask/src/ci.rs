//! `cargo xtask ci`: the README's test command, and what `.ci/run` runs.
//!
//! Gates, in order, each failing the run: formatting, clippy with warnings denied, docs with
//! warnings denied, the crate layering, a single TLS crypto provider, the test suites, the
//! library example against local registries, and the conformance suite against a local
//! registry.

use std::process::Command;

use anyhow::{Context, bail};

use crate::workspace_root;

/// The crates in layering order: each may depend only on crates before it.
const LAYERS: &[&str] = &[
    "acr-import-reference",
    "acr-import-auth",
    "acr-import-transfer",
    "acr-import-acr",
    "acr-import-cli",
];

pub fn run() -> anyhow::Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    step(
        "format",
        Command::new(&cargo).args(["fmt", "--all", "--check"]),
    )?;
    step(
        "clippy",
        Command::new(&cargo).args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--quiet",
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    step(
        "docs",
        Command::new(&cargo)
            .args(["doc", "--workspace", "--no-deps", "--quiet"])
            .env("RUSTDOCFLAGS", "-D warnings"),
    )?;
    println!("==> layering");
    layering(&cargo)?;
    println!("==> one crypto provider (ring, not aws-lc-rs)");
    let out = Command::new(&cargo)
        .args(["tree", "--workspace", "-i", "aws-lc-rs", "--quiet"])
        .current_dir(workspace_root())
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    if out.status.success() && !text.trim().is_empty() {
        bail!("aws-lc-rs is in the dependency tree; only ring may be:\n{text}");
    }
    step(
        "tests",
        Command::new(&cargo).args(["test", "--workspace", "--quiet"]),
    )?;
    println!("==> the library example (crates/acr/examples/import.rs)");
    example(&cargo)?;
    // Last, so that its `N passed, N failed` line closes the output.
    step(
        "conformance",
        Command::new(std::env::current_exe()?).arg("conformance"),
    )
}

fn step(name: &str, cmd: &mut Command) -> anyhow::Result<()> {
    println!("==> {name}");
    let status = cmd
        .current_dir(workspace_root())
        .status()
        .with_context(|| format!("cannot run the {name} step"))?;
    if !status.success() {
        bail!("the {name} step failed");
    }
    Ok(())
}

/// Runs the library example against two local registries and checks that the target holds
/// the source's digest under the tag it named.
fn example(cargo: &str) -> anyhow::Result<()> {
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let (source, target) = tokio::join!(
            acr_import_testsupport::Registry::start(),
            acr_import_testsupport::Registry::start()
        );
        let (source, target) = (source?, target?);
        let transport = acr_import_transfer::Transport::builder().build()?;
        let image =
            crate::seed::multi_arch(&transport.registry(&source.url())?, "library/hello", "1.0")
                .await?;
        let status = tokio::process::Command::new(cargo)
            .args([
                "run",
                "--quiet",
                "-p",
                "acr-import-acr",
                "--example",
                "import",
                "--",
            ])
            .arg(target.host())
            .arg(format!("{}/library/hello:1.0", source.host()))
            .arg("example/hello:1.0")
            .current_dir(workspace_root())
            .status()
            .await
            .context("cannot run the example")?;
        if !status.success() {
            bail!("the example failed ({status})");
        }
        let copied = transport
            .registry(&target.url())?
            .get_manifest("example/hello", "1.0")
            .await
            .context("the example's target tag")?;
        anyhow::ensure!(
            copied.digest == image.digest,
            "the example tagged {} instead of the source's {}",
            copied.digest,
            image.digest
        );
        println!("    example/hello:1.0 holds {}", copied.digest);
        Ok(())
    })
}

/// Checks with `cargo metadata` that every crate of ours depends only on the crates above
/// it in the design card's order (dev-dependencies included, test support excepted).
fn layering(cargo: &str) -> anyhow::Result<()> {
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(workspace_root())
        .output()?;
    anyhow::ensure!(out.status.success(), "cargo metadata failed");
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let mut problems = Vec::new();
    for pkg in meta["packages"].as_array().into_iter().flatten() {
        let name = pkg["name"].as_str().unwrap_or_default();
        let Some(level) = LAYERS.iter().position(|l| *l == name) else {
            continue;
        };
        for dep in pkg["dependencies"].as_array().into_iter().flatten() {
            let dep_name = dep["name"].as_str().unwrap_or_default();
            if let Some(dep_level) = LAYERS.iter().position(|l| *l == dep_name)
                && dep_level >= level
            {
                problems.push(format!(
                    "{name} depends on {dep_name}, which is not above it"
                ));
            }
            if dep_name == "acr-import-testsupport" && dep["kind"].as_str() != Some("dev") {
                problems.push(format!(
                    "{name} depends on the test support crate outside dev-dependencies"
                ));
            }
        }
    }
    if !problems.is_empty() {
        bail!("layering violated:\n  {}", problems.join("\n  "));
    }
    println!(
        "    {} crates, each depending only on the crates above it",
        LAYERS.len()
    );
    Ok(())
}
