//! `cargo xtask ci`: the README's test command, and what `.ci/run` runs.
//!
//! Gates, in order, each failing the run: formatting, clippy with warnings denied, docs with
//! warnings denied, the crate layering, no unused dependency, a single TLS crypto provider,
//! the test suites, the library example against local registries, and the conformance suite
//! against a local registry.

use acr_import_tests::Names;
use std::process::Command;

use anyhow::{Context, bail};

use crate::workspace_root;

mod deps;

/// The crates in layering order: each may depend only on crates before it.
const LAYERS: &[&str] = &[
    "acr-import-reference",
    "acr-import-auth",
    "acr-import-transfer",
    "acr-import-acr",
    "acr-import-cli",
];

/// `cargo xtask ci` flags.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Run only this gate (to repeat the one that failed).
    #[arg(long, value_enum)]
    only: Option<Gate>,
}

/// The gates of `cargo xtask ci`, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Gate {
    Format,
    Clippy,
    Docs,
    Layering,
    UnusedDeps,
    CryptoProvider,
    Tests,
    Example,
    FreshMachine,
    Conformance,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    use clap::ValueEnum as _;
    for gate in Gate::value_variants() {
        if args.only.is_none_or(|only| only == *gate) {
            run_gate(*gate)?;
        }
    }
    Ok(())
}

fn run_gate(gate: Gate) -> anyhow::Result<()> {
    match gate {
        Gate::Format => step("format", crate::cargo().args(["fmt", "--all", "--check"])),
        Gate::Clippy => step(
            "clippy",
            crate::cargo().args([
                "clippy",
                "--workspace",
                "--all-targets",
                "--quiet",
                "--",
                "-D",
                "warnings",
            ]),
        ),
        Gate::Docs => step(
            "docs",
            crate::cargo()
                .args(["doc", "--workspace", "--no-deps", "--quiet"])
                .env("RUSTDOCFLAGS", "-D warnings"),
        ),
        Gate::Layering => {
            println!("==> layering");
            layering()
        }
        Gate::UnusedDeps => {
            println!("==> unused dependencies");
            deps::check(&workspace_root())
        }
        Gate::CryptoProvider => {
            println!("==> one crypto provider (ring, not aws-lc-rs)");
            let out = crate::cargo()
                .args(["tree", "--workspace", "-i", "aws-lc-rs", "--quiet"])
                .output()?;
            let text = String::from_utf8_lossy(&out.stdout);
            if out.status.success() && !text.trim().is_empty() {
                bail!("aws-lc-rs is in the dependency tree; only ring may be:\n{text}");
            }
            Ok(())
        }
        Gate::Tests => step(
            "tests",
            crate::cargo().args(["test", "--workspace", "--quiet"]),
        ),
        Gate::Example => {
            println!("==> the library examples (crates/acr/examples/import.rs, mirror.rs)");
            example()
        }
        Gate::FreshMachine => {
            println!("==> a fresh machine: the demo with htpasswd and skopeo out of reach");
            fresh_machine()
        }
        // Last, so that its `N passed, N failed` line closes the output.
        Gate::Conformance => step(
            "conformance",
            Command::new(crate::xtask_exe()?).arg("conformance"),
        ),
    }
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

/// Runs the library examples against two local registries and checks that the target holds
/// the source's digest under the tags they named: `import` copies one image, `mirror` runs a
/// mirror file with the same repository (every tag) into another repository.
fn example() -> anyhow::Result<()> {
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let (source, target) = tokio::join!(
            acr_import_testsupport::Registry::start(),
            acr_import_testsupport::Registry::start()
        );
        let (source, target) = (source?, target?);
        let transport = acr_import_transfer::Transport::builder().build()?;
        let seeder = acr_import_testsupport::seed::Seeder::new(&source.host())?;
        let image = crate::seed::multi_arch(&seeder, "library/hello", "1.0").await?;
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("mirror.yaml");
        std::fs::write(
            &file,
            format!(
                "- source: {}/library/hello\n  target: example/mirror\n",
                source.host()
            ),
        )?;
        let runs = [
            (
                "import",
                vec![
                    format!("{}/library/hello:1.0", source.host()),
                    "example/hello:1.0".to_owned(),
                ],
                "example/hello",
            ),
            ("mirror", vec![file.display().to_string()], "example/mirror"),
        ];
        for (name, args, repo) in runs {
            let mut cmd = crate::cargo();
            cmd.args([
                "run",
                "--quiet",
                "-p",
                "acr-import-acr",
                "--example",
                name,
                "--",
            ])
            .arg(target.host())
            .args(&args);
            let status = tokio::process::Command::from(cmd)
                .status()
                .await
                .with_context(|| format!("cannot run the {name} example"))?;
            if !status.success() {
                bail!("the {name} example failed ({status})");
            }
            let copied = transport
                .registry(&target.url())?
                .get_manifest(&repo.repo(), &"1.0".at())
                .await
                .with_context(|| format!("the {name} example's target tag"))?;
            anyhow::ensure!(
                copied.digest.as_str() == image.digest,
                "the {name} example tagged {} instead of the source's {}",
                copied.digest,
                image.digest
            );
            println!("    {repo}:1.0 holds {}", copied.digest);
        }
        Ok(())
    })
}

/// The usual binary directories of a Debian machine.
const SYSTEM_DIRS: &[&str] = &[
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

/// Tools a fresh machine does not have and the demo must not need.
const NOT_ON_A_FRESH_MACHINE: &[&str] = &["htpasswd", "skopeo"];

/// Runs `cargo xtask demo` as a machine with only Rust (and the registry the demo installs)
/// would. As root with `unshare`, every copy of the tools in [`NOT_ON_A_FRESH_MACHINE`] in
/// the usual directories is covered with `/dev/null` in a private mount namespace (so no
/// path reaches them), and `PATH` is the toolchain's directories and the system's (where a
/// fresh machine has `apt-get` and where the demo installs `docker-registry`). Otherwise
/// `PATH` holds the toolchain and a directory with `docker-registry` alone. Fails unless the
/// demo runs to its end.
fn fresh_machine() -> anyhow::Result<()> {
    // Built here, with the usual environment, so that the run below compiles nothing.
    crate::build_acr(false)?;
    let xtask = crate::xtask_exe()?;
    let root = {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
    };
    let tool = acr_import_testsupport::find_tool;
    let mut path = toolchain_path()?;
    // Only the registry, linked into a directory of its own (the fallback below).
    let registry_only = tempfile::tempdir()?;
    let mut cmd = match (root, tool("unshare"), tool("mount"), tool("sh")) {
        (true, Some(unshare), Some(mount), Some(sh)) => {
            let covered = installed_copies(NOT_ON_A_FRESH_MACHINE);
            println!(
                "    in a private mount namespace, covering: {}",
                if covered.is_empty() {
                    "(none installed)".to_owned()
                } else {
                    covered.join(", ")
                }
            );
            // Cover each copy, check that none runs, then become the demo.
            let script = format!(
                "set -e; for f in \"$@\"; do {mount} --bind /dev/null \"$f\"; done; \
                 for f in \"$@\"; do if [ -x \"$f\" ]; then echo \"$f is still there\"; exit 1; fi; done; \
                 exec \"$XTASK\" demo",
                mount = mount.display()
            );
            let mut dirs: Vec<_> = std::env::split_paths(&path).collect();
            dirs.extend(SYSTEM_DIRS.iter().map(std::path::PathBuf::from));
            path = std::env::join_paths(dirs)?;
            let mut cmd = Command::new(unshare);
            cmd.args(["--mount", "--propagation", "private", "--"])
                .arg(sh)
                .args(["-c", &script, "sh"])
                .args(&covered);
            cmd
        }
        _ => {
            println!("    not root (or no unshare): PATH without them only");
            let registry = acr_import_testsupport::registry_binary()?;
            std::os::unix::fs::symlink(&registry, registry_only.path().join("docker-registry"))?;
            let mut dirs: Vec<_> = std::env::split_paths(&path).collect();
            dirs.push(registry_only.path().to_path_buf());
            path = std::env::join_paths(dirs)?;
            for t in NOT_ON_A_FRESH_MACHINE {
                let reachable = std::env::split_paths(&path).any(|d| d.join(t).exists());
                anyhow::ensure!(
                    !reachable,
                    "{t} is in the toolchain's directory; cannot hide it"
                );
            }
            let mut cmd = Command::new(&xtask);
            cmd.arg("demo");
            cmd
        }
    };
    let out = cmd
        .env("PATH", &path)
        .env("XTASK", &xtask)
        .current_dir(workspace_root())
        .stdin(std::process::Stdio::null())
        .output()
        .context("cannot start the demo")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let scenarios = text.lines().filter(|l| l.starts_with("# ")).count();
    if !out.status.success() || !text.contains("Demo done") {
        println!("{text}{}", String::from_utf8_lossy(&out.stderr));
        bail!(
            "the demo did not complete on a fresh machine ({}, {scenarios} scenarios started)",
            out.status
        );
    }
    println!("    the demo completed: {scenarios} scenarios");
    Ok(())
}

/// Every installed copy of `tools` in the usual binary directories and on `PATH`.
fn installed_copies(tools: &[&str]) -> Vec<String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<std::path::PathBuf> = std::env::split_paths(&path).collect();
    dirs.extend(SYSTEM_DIRS.iter().map(std::path::PathBuf::from));
    let mut found: Vec<String> = Vec::new();
    for d in dirs {
        for t in tools {
            // The real file: /bin is often a link to /usr/bin.
            if let Ok(p) = d.join(t).canonicalize()
                && p.is_file()
            {
                let p = p.display().to_string();
                if !found.contains(&p) {
                    found.push(p);
                }
            }
        }
    }
    found
}

/// A `PATH` with the Rust toolchain only: where `cargo` and `rustc` are.
fn toolchain_path() -> anyhow::Result<std::ffi::OsString> {
    let mut dirs = Vec::new();
    let cargo = std::env::var_os("CARGO").map(std::path::PathBuf::from);
    let rustc = acr_import_testsupport::find_tool("rustc");
    for bin in [cargo, rustc].into_iter().flatten() {
        if let Some(d) = bin.parent()
            && !dirs.iter().any(|x: &std::path::PathBuf| x == d)
        {
            dirs.push(d.to_path_buf());
        }
    }
    Ok(std::env::join_paths(dirs)?)
}

/// Checks with `cargo metadata` that every crate of ours depends only on the crates above
/// it in the design card's order (dev-dependencies included, test support excepted), and that
/// test support depends on none of them (it seeds with a client of its own, and a test
/// dependency on a crate that dev-depends on test support would build that crate twice).
fn layering() -> anyhow::Result<()> {
    let out = crate::cargo()
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .output()?;
    anyhow::ensure!(out.status.success(), "cargo metadata failed");
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let mut problems = Vec::new();
    for pkg in meta["packages"].as_array().into_iter().flatten() {
        let name = pkg["name"].as_str().unwrap_or_default();
        if name == "acr-import-testsupport" {
            for dep in pkg["dependencies"].as_array().into_iter().flatten() {
                let dep_name = dep["name"].as_str().unwrap_or_default();
                if LAYERS.contains(&dep_name) {
                    problems.push(format!("{name} depends on {dep_name}"));
                }
            }
        }
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
