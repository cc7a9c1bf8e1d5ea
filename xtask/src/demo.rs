//! `cargo xtask demo`: the offline demo. Starts local registries, seeds a "public" one, and
//! runs `acr` through the import scenarios, printing each command before it runs.

use std::path::{Path, PathBuf};
use std::process::Command;

use acr_import_testsupport::Registry as LocalRegistry;
use acr_import_testsupport::seed::Seeder;
use anyhow::{Context, bail};

use crate::seed;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Keep the registries and the local Azure running until Enter is pressed, to explore
    /// with `acr` yourself (the demo prints the environment to set).
    #[arg(long)]
    pub keep: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    ensure_registry_installed()?;
    let acr = crate::build_acr(false)?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        tokio::select! {
            r = scenarios(&acr, args.keep) => r,
            _ = tokio::signal::ctrl_c() => {
                println!("\ninterrupted: stopping the local registries");
                Ok(())
            }
        }
    })
    // The registries stop (and their storage is removed) when `scenarios` is dropped, on
    // success, error and Ctrl-C alike.
}

/// Installs Debian's `docker-registry` when missing and we are root (with `apt-get` on
/// `PATH`); otherwise says in one line what to install. It is the only thing the demo needs
/// besides Rust: htpasswd lines are made in-process, and no other tool is run.
fn ensure_registry_installed() -> anyhow::Result<()> {
    if acr_import_testsupport::registry_binary().is_ok() {
        return Ok(());
    }
    // The owner of /proc/self is this process's effective user.
    let root = {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
    };
    if let (true, Some(apt)) = (root, acr_import_testsupport::find_tool("apt-get")) {
        println!("installing the CNCF distribution registry (Debian package docker-registry)…");
        let ok = Command::new(&apt)
            .args(["update", "-qq"])
            .status()?
            .success()
            && Command::new(&apt)
                .args(["install", "-y", "-qq", "docker-registry"])
                .env("DEBIAN_FRONTEND", "noninteractive")
                .status()?
                .success();
        if ok && acr_import_testsupport::registry_binary().is_ok() {
            return Ok(());
        }
    }
    bail!(
        "the demo needs the CNCF distribution registry: run `sudo apt-get install -y docker-registry` (Debian/Ubuntu), then `cargo xtask demo` again"
    )
}

/// A word as a POSIX shell reads it back: as it is when it is plain, single-quoted otherwise.
fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@,+%".contains(c));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// `export NAME=value` lines for a shell, one per variable.
fn exports(env: &[(String, String)]) -> String {
    env.iter()
        .map(|(k, v)| format!("export {k}={}\n", shell_word(v)))
        .collect()
}

/// How the demo runs `acr`: the binary, and the environment it adds (the local Azure's,
/// printed once as `export` lines, so every command shown can be pasted as it is).
struct Runner {
    acr: PathBuf,
    /// The variables the commands need (printed), and those that only keep the run
    /// isolated from this machine's own Azure settings (not printed).
    env: Vec<(String, String)>,
    hidden_env: Vec<(String, String)>,
    isolated: bool,
}

impl Runner {
    fn local(acr: &Path) -> Self {
        Self {
            acr: acr.to_path_buf(),
            env: Vec::new(),
            hidden_env: Vec::new(),
            isolated: false,
        }
    }

    /// Runs `acr args`, printed first as a shell would take it (`echo $PASSWORD |` when
    /// `stdin` is given). A non-zero exit fails the demo unless `expect_ok` is false.
    fn run(&self, args: &[&str], stdin: Option<&str>, expect_ok: bool) -> anyhow::Result<()> {
        let shown: Vec<String> = args.iter().map(|a| shell_word(a)).collect();
        let pipe = if stdin.is_some() {
            "echo $PASSWORD | "
        } else {
            ""
        };
        println!("\n$ {pipe}acr {}", shown.join(" "));
        let mut cmd = Command::new(&self.acr);
        if self.isolated {
            cmd.env_clear();
        }
        cmd.args(args)
            .envs(self.env.iter().chain(&self.hidden_env).map(|(k, v)| (k, v)));
        let status = if let Some(input) = stdin {
            use std::io::Write;
            let mut child = cmd.stdin(std::process::Stdio::piped()).spawn()?;
            child
                .stdin
                .take()
                .context("stdin")?
                .write_all(format!("{input}\n").as_bytes())?;
            child.wait()?
        } else {
            cmd.status()?
        };
        if expect_ok && !status.success() {
            bail!("acr exited with {status}");
        }
        if !expect_ok {
            println!("(exit code {})", status.code().unwrap_or(-1));
        }
        Ok(())
    }
}

/// The local registries: a "public" source, a private one (user `demo`), the target.
struct Local {
    public: LocalRegistry,
    private: LocalRegistry,
    target: LocalRegistry,
    /// The digest of `library/hello:1.0` in `public`.
    hello: String,
}

impl Local {
    async fn start() -> anyhow::Result<Self> {
        println!(
            "Starting local registries on 127.0.0.1 (a \"public\" source, a private source, the target)…"
        );
        let (public, private, target) = tokio::join!(
            LocalRegistry::start(),
            LocalRegistry::builder()
                .htpasswd(&[("demo", "demo-password")])
                .start(),
            LocalRegistry::start(),
        );
        let (public, private, target) = (public?, private?, target?);
        let pub_reg = Seeder::new(&public.host())?;
        let image = seed::multi_arch(&pub_reg, "library/hello", "1.0").await?;
        seed::sign(&pub_reg, "library/hello", &image).await?;
        seed::helm_chart(&pub_reg, "charts/hello", "0.1.0").await?;
        let priv_reg = Seeder::new(&private.host())?.basic("demo", "demo-password");
        seed::multi_arch(&priv_reg, "team/app", "2.3").await?;
        println!(
            "Seeded {}: library/hello:1.0 (3 platforms, signed), charts/hello:0.1.0 (Helm chart)",
            public.host()
        );
        println!("Seeded {} (user demo): team/app:2.3", private.host());
        Ok(Self {
            public,
            private,
            target,
            hello: image.digest,
        })
    }
}

async fn scenarios(acr: &Path, keep: bool) -> anyhow::Result<()> {
    println!(
        "The commands below run {} as `acr` (to paste them: alias acr={}).",
        acr.display(),
        shell_word(&acr.display().to_string())
    );
    let local = Local::start().await?;
    let run = Runner::local(acr);
    from_registries(&run, &local)?;
    layouts_and_listings(&run, &local)?;
    let (world, azure) = local_azure(acr).await?;
    azure_scenarios(&azure, &world)?;
    permissions(acr, &world)?;
    if keep {
        println!(
            "\nRegistries: public {}, private {} (demo/demo-password), target {}; the local Azure, for your shell:\n{}Press Enter to stop them.",
            local.public.host(),
            local.private.host(),
            local.target.host(),
            exports(&azure.env),
        );
        let _ =
            tokio::task::spawn_blocking(|| std::io::stdin().read_line(&mut String::new())).await;
    }
    println!("\nDemo done; stopping the local registries.");
    Ok(())
}

/// Scenarios 1–6: registries to a registry.
fn from_registries(run: &Runner, local: &Local) -> anyhow::Result<()> {
    let (p, q, t) = (
        local.public.host(),
        local.private.host(),
        local.target.host(),
    );
    println!(
        "\n# 1. Import a multi-arch image from a public registry: every platform, digests unchanged, the signature follows."
    );
    let hello = format!("{p}/library/hello:1.0");
    run.run(
        &[
            "import",
            "--name",
            &t,
            "--source",
            &hello,
            "--image",
            "hello:1.0",
            "--image",
            "hello:latest",
        ],
        None,
        true,
    )?;
    println!("\n# 2. By digest, untagged into another repository.");
    let pinned = format!("{p}/library/hello@{}", local.hello);
    run.run(
        &[
            "import",
            "-n",
            &t,
            "--source",
            &pinned,
            "--repository",
            "pinned/hello",
        ],
        None,
        true,
    )?;
    println!(
        "\n# 3. One platform only: the tag points at that platform's manifest (said before any byte moves)."
    );
    run.run(
        &[
            "import",
            "-n",
            &t,
            "--source",
            &hello,
            "-t",
            "hello:1.0-arm64",
            "--platform",
            "linux/arm64",
        ],
        None,
        true,
    )?;
    println!("\n# 4. A Helm chart, as-is.");
    let chart = format!("{p}/charts/hello:0.1.0");
    run.run(&["import", "-n", &t, "--source", &chart], None, true)?;
    println!(
        "\n# 5. From a private registry with credentials (password on stdin, never on the command line)."
    );
    let app = format!("{q}/team/app:2.3");
    let private = [
        "import",
        "-n",
        &t,
        "--source",
        &app,
        "-t",
        "app:2.3",
        "-u",
        "demo",
        "--password-stdin",
    ];
    run.run(&private, Some("demo-password"), true)?;
    println!("\n# 6. Again: the target is complete, so nothing moves.");
    run.run(&private, Some("demo-password"), true)
}

/// Scenarios 7–8: an OCI layout folder there and back, and what the target holds.
fn layouts_and_listings(run: &Runner, local: &Local) -> anyhow::Result<()> {
    let (p, t) = (local.public.host(), local.target.host());
    let export: PathBuf =
        std::env::temp_dir().join(format!("acr-import-demo-{}", std::process::id()));
    let export_s = export.display().to_string();
    println!("\n# 7. Air gap: export to an OCI layout folder, then import from it.");
    let hello = format!("{p}/library/hello:1.0");
    run.run(
        &[
            "import",
            "-n",
            &format!("oci:{export_s}"),
            "--source",
            &hello,
            "-t",
            "1.0",
        ],
        None,
        true,
    )?;
    let layout = format!("oci:{export_s}:1.0");
    run.run(
        &[
            "import",
            "-n",
            &t,
            "--source",
            &layout,
            "-t",
            "airgapped/hello:1.0",
        ],
        None,
        true,
    )?;
    let _ = std::fs::remove_dir_all(&export);
    println!("\n# 8. What the target holds now, as `az acr repository show-manifests` shows it.");
    run.run(
        &[
            "repository",
            "show-manifests",
            "-n",
            &t,
            "--repository",
            "hello",
            "-o",
            "table",
        ],
        None,
        true,
    )?;
    run.run(&["repository", "list", "-n", &t], None, true)
}

/// The local Azure (Azure AD, ARM and two ACR login servers in front of real registries;
/// `sourcereg` holds app:v1 and app:v2), and how to run `acr` against it: its environment,
/// printed once as `export` lines.
async fn local_azure(acr: &Path) -> anyhow::Result<(acr_import_tests::ArmWorld, Runner)> {
    use acr_import_tests::world::{IMPORTER, SUB};
    println!(
        "\nStarting the local Azure (Azure AD, Resource Manager, two ACRs: targetreg and sourcereg)…"
    );
    let world = acr_import_tests::ArmWorld::start().await?;
    let runner = azure_runner(acr, &world, IMPORTER, SUB);
    println!(
        "The commands below use the local Azure; to run them yourself (with --keep), set:\n{}",
        exports(&runner.env)
    );
    Ok((world, runner))
}

/// `acr` against the local Azure as `who`, in subscription `sub`.
fn azure_runner(
    acr: &Path,
    world: &acr_import_tests::ArmWorld,
    who: (&str, &str),
    sub: &str,
) -> Runner {
    let mut env = world.env_for(who);
    env.push(("AZURE_SUBSCRIPTION_ID".into(), sub.into()));
    // PATH only keeps this machine's own `az` out of the demo's runs.
    let (hidden_env, env): (Vec<_>, Vec<_>) = env.into_iter().partition(|(k, _)| k == "PATH");
    Runner {
        acr: acr.to_path_buf(),
        env,
        hidden_env,
        isolated: true,
    }
}

/// Scenarios 12–13, the permissions preflight: a caller with only Reader on the target is
/// told, before anything starts, which role it lacks and the command that grants it; with the
/// role, the import runs.
fn permissions(acr: &Path, world: &acr_import_tests::ArmWorld) -> anyhow::Result<()> {
    use acr_import_tests::world::{READER, SUB};
    let ca = world.ca_file().display().to_string();
    let run = azure_runner(acr, world, READER, SUB);
    let import = import_args("app:v1", "sourcereg", &["-t", "reader/app:v1"], &ca);
    let who: Vec<(String, String)> = run
        .env
        .iter()
        .filter(|(k, _)| k.starts_with("AZURE_CLIENT_"))
        .cloned()
        .collect();
    println!(
        "\n# 12. Someone with only Reader on the target asks the preflight: importImage needs a role Reader does not give, and the fix is named.\n(As that principal, in your shell:\n{})",
        exports(&who).trim_end()
    );
    let mut preflight = import.clone();
    preflight.push("--preflight-only");
    run.run(&preflight, None, false)?;
    println!(
        "\n# 13. After that `az role assignment create … --role \"Container Registry Data Importer and Data Reader\"`, the import works."
    );
    let oid = world
        .aad
        .object_id(READER.0)
        .context("the reader's object id")?;
    world.arm.rbac().assign(
        &oid,
        &world.target_id(),
        acr_import_testsupport::RoleDefinition::data_importer(),
        None,
    );
    run.run(&import, None, true)
}

/// Scenarios 9–11, against the local Azure.
fn azure_scenarios(run: &Runner, world: &acr_import_tests::ArmWorld) -> anyhow::Result<()> {
    let ca = world.ca_file().display().to_string();
    let source_id = world.source_id();
    println!(
        "\n# 9. From another ACR (another subscription) named by its ARM resource ID: server-side, no bytes through this machine."
    );
    run.run(&import_args("app:v1", &source_id, &[], &ca), None, true)?;
    println!(
        "\n# 10. The target's firewall now denies everything and does not trust Azure services: the preflight says so, and how to fix it."
    );
    world.arm.update_registry("targetreg", |r| {
        r.default_action_deny = true;
        r.trusted_services = false;
    });
    let preflight = import_args("app:v2", "sourcereg", &["--preflight-only"], &ca);
    run.run(&preflight, None, false)?;
    println!(
        "\n# 11. After `az acr update -n targetreg --allow-trusted-services true`, the same import works."
    );
    world
        .arm
        .update_registry("targetreg", |r| r.trusted_services = true);
    let import = import_args("app:v2", "sourcereg", &["-t", "app:v2"], &ca);
    run.run(&import, None, true)
}

/// `import -n targetreg --source <source> -r <registry> <extra…> --ca-file <ca>`.
fn import_args<'a>(
    source: &'a str,
    registry: &'a str,
    extra: &[&'a str],
    ca: &'a str,
) -> Vec<&'a str> {
    let mut args = vec![
        "import",
        "-n",
        "targetreg",
        "--source",
        source,
        "-r",
        registry,
    ];
    args.extend(extra);
    args.extend(["--ca-file", ca]);
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_and_environment_print_as_a_shell_reads_them() {
        assert_eq!(
            shell_word("127.0.0.1:5000/library/hello:1.0"),
            "127.0.0.1:5000/library/hello:1.0"
        );
        assert_eq!(shell_word("a b"), "'a b'");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
        assert_eq!(shell_word(""), "''");
        assert_eq!(shell_word("importer-Secret~1"), "'importer-Secret~1'");
        let env = vec![
            ("AZURE_TENANT_ID".to_owned(), "5e7a1c2d".to_owned()),
            ("AZURE_CLIENT_SECRET".to_owned(), "s3cret~x".to_owned()),
        ];
        assert_eq!(
            exports(&env),
            "export AZURE_TENANT_ID=5e7a1c2d\nexport AZURE_CLIENT_SECRET='s3cret~x'\n"
        );
    }
}
