//! `cargo xtask demo`: the offline demo. Starts local registries, seeds a "public" one, and
//! runs `acr` through the import scenarios, printing each command before it runs.

use std::path::{Path, PathBuf};
use std::process::Command;

use acr_import_testsupport::Registry as LocalRegistry;
use acr_import_transfer::Transport;
use anyhow::{Context, bail};

use crate::seed;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Keep the registries running until Enter is pressed, to explore with `acr` yourself.
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

/// Installs Debian's `docker-registry` when missing and we are root; otherwise says how.
fn ensure_registry_installed() -> anyhow::Result<()> {
    if acr_import_testsupport::registry_binary().is_ok() {
        return Ok(());
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    let apt = Path::new("/usr/bin/apt-get").exists();
    if root && apt {
        println!("installing the CNCF distribution registry (Debian package docker-registry)…");
        let ok = Command::new("apt-get")
            .args(["update", "-qq"])
            .status()?
            .success()
            && Command::new("apt-get")
                .args(["install", "-y", "-qq", "docker-registry"])
                .env("DEBIAN_FRONTEND", "noninteractive")
                .status()?
                .success();
        if ok {
            return Ok(());
        }
    }
    bail!(
        "the demo needs the CNCF distribution registry: run `sudo apt-get install -y docker-registry` (Debian/Ubuntu), then `cargo xtask demo` again"
    )
}

fn show(
    acr: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    stdin: Option<&str>,
) -> anyhow::Result<()> {
    run_shown(acr, args, env, stdin, false, true)
}

/// Runs `acr` as the demo prints it. `isolated`: only `env` (the local Azure's variables), not
/// the caller's own Azure settings. `expect_ok`: a non-zero exit fails the demo.
fn run_shown(
    acr: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    stdin: Option<&str>,
    isolated: bool,
    expect_ok: bool,
) -> anyhow::Result<()> {
    let shown: Vec<String> = args
        .iter()
        .map(|a| {
            if a.contains(' ') {
                format!("'{a}'")
            } else {
                (*a).to_owned()
            }
        })
        .collect();
    let prefix: String = env.iter().map(|(k, _)| format!("{k}=… ")).collect();
    let pipe = if stdin.is_some() {
        "echo $PASSWORD | "
    } else {
        ""
    };
    println!("\n$ {pipe}{prefix}acr {}", shown.join(" "));
    let mut cmd = Command::new(acr);
    if isolated {
        cmd.env_clear();
    }
    cmd.args(args).envs(env.iter().copied());
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

async fn scenarios(acr: &Path, keep: bool) -> anyhow::Result<()> {
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
    let transport = Transport::builder().build()?;
    let pub_reg = transport.registry(&public.url())?;
    let image = seed::multi_arch(&pub_reg, "library/hello", "1.0").await?;
    seed::sign(&pub_reg, "library/hello", &image).await?;
    seed::helm_chart(&pub_reg, "charts/hello", "0.1.0").await?;
    let creds = acr_import_auth::StaticCredentials::new().with(
        &private.host(),
        acr_import_auth::Credential::Basic {
            username: "demo".into(),
            password: acr_import_auth::Secret::new("demo-password"),
        },
    );
    let priv_transport = Transport::builder()
        .credentials(std::sync::Arc::new(creds))
        .build()?;
    seed::multi_arch(&priv_transport.registry(&private.url())?, "team/app", "2.3").await?;
    println!(
        "Seeded {}: library/hello:1.0 (3 platforms, signed), charts/hello:0.1.0 (Helm chart)",
        public.host()
    );
    println!("Seeded {} (user demo): team/app:2.3", private.host());
    let (p, q, t) = (public.host(), private.host(), target.host());

    println!(
        "\n# 1. Import a multi-arch image from a public registry: every platform, digests unchanged, the signature follows."
    );
    show(
        acr,
        &[
            "import",
            "--name",
            &t,
            "--source",
            &format!("{p}/library/hello:1.0"),
            "--image",
            "hello:1.0",
            "--image",
            "hello:latest",
        ],
        &[],
        None,
    )?;
    println!("\n# 2. By digest, untagged into another repository.");
    show(
        acr,
        &[
            "import",
            "-n",
            &t,
            "--source",
            &format!("{p}/library/hello@{}", image.digest),
            "--repository",
            "pinned/hello",
        ],
        &[],
        None,
    )?;
    println!(
        "\n# 3. One platform only: the tag points at that platform's manifest (said before any byte moves)."
    );
    show(
        acr,
        &[
            "import",
            "-n",
            &t,
            "--source",
            &format!("{p}/library/hello:1.0"),
            "-t",
            "hello:1.0-arm64",
            "--platform",
            "linux/arm64",
        ],
        &[],
        None,
    )?;
    println!("\n# 4. A Helm chart, as-is.");
    show(
        acr,
        &[
            "import",
            "-n",
            &t,
            "--source",
            &format!("{p}/charts/hello:0.1.0"),
        ],
        &[],
        None,
    )?;
    println!(
        "\n# 5. From a private registry with credentials (password on stdin, never on the command line)."
    );
    show(
        acr,
        &[
            "import",
            "-n",
            &t,
            "--source",
            &format!("{q}/team/app:2.3"),
            "-t",
            "app:2.3",
            "-u",
            "demo",
            "--password-stdin",
        ],
        &[],
        Some("demo-password"),
    )?;
    println!("\n# 6. Again: the target is complete, so nothing moves.");
    show(
        acr,
        &[
            "import",
            "-n",
            &t,
            "--source",
            &format!("{q}/team/app:2.3"),
            "-t",
            "app:2.3",
            "-u",
            "demo",
            "--password-stdin",
        ],
        &[],
        Some("demo-password"),
    )?;
    let export: PathBuf =
        std::env::temp_dir().join(format!("acr-import-demo-{}", std::process::id()));
    let export_s = export.display().to_string();
    println!("\n# 7. Air gap: export to an OCI layout folder, then import from it.");
    show(
        acr,
        &[
            "import",
            "-n",
            &format!("oci:{export_s}"),
            "--source",
            &format!("{p}/library/hello:1.0"),
            "-t",
            "1.0",
        ],
        &[],
        None,
    )?;
    show(
        acr,
        &[
            "import",
            "-n",
            &t,
            "--source",
            &format!("oci:{export_s}:1.0"),
            "-t",
            "airgapped/hello:1.0",
        ],
        &[],
        None,
    )?;
    let _ = std::fs::remove_dir_all(&export);
    println!("\n# 8. What the target holds now, as `az acr repository show-manifests` shows it.");
    show(
        acr,
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
        &[],
        None,
    )?;
    show(acr, &["repository", "list", "-n", &t], &[], None)?;
    azure(acr).await?;
    if keep {
        println!(
            "\nRegistries: public {p}, private {q} (demo/demo-password), target {t}. Press Enter to stop them."
        );
        let _ =
            tokio::task::spawn_blocking(|| std::io::stdin().read_line(&mut String::new())).await;
    }
    println!("\nDemo done; stopping the local registries.");
    Ok(())
}

/// The Azure scenarios, against the local Azure: Azure AD, ARM and two ACR login servers in
/// front of real registries (`sourcereg` holds app:v1 and app:v2).
async fn azure(acr: &Path) -> anyhow::Result<()> {
    use acr_import_tests::world::{IMPORTER, SUB};
    println!(
        "\nStarting the local Azure (Azure AD, Resource Manager, two ACRs: targetreg and sourcereg)…"
    );
    let world = acr_import_tests::ArmWorld::start().await?;
    let ca = world.ca_file().display().to_string();
    let mut env: Vec<(String, String)> = world.env_for(IMPORTER);
    env.push(("AZURE_SUBSCRIPTION_ID".into(), SUB.into()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let source_id = world.source_id();

    println!(
        "\n# 9. From another ACR (another subscription) named by its ARM resource ID: server-side, no bytes through this machine."
    );
    run_shown(
        acr,
        &[
            "import",
            "-n",
            "targetreg",
            "--source",
            "app:v1",
            "-r",
            &source_id,
            "--ca-file",
            &ca,
        ],
        &env,
        None,
        true,
        true,
    )?;

    println!(
        "\n# 10. The target's firewall now denies everything and does not trust Azure services: the preflight says so, and how to fix it."
    );
    world.arm.update_registry("targetreg", |r| {
        r.default_action_deny = true;
        r.trusted_services = false;
    });
    run_shown(
        acr,
        &[
            "import",
            "-n",
            "targetreg",
            "--source",
            "app:v2",
            "-r",
            "sourcereg",
            "--preflight-only",
            "--ca-file",
            &ca,
        ],
        &env,
        None,
        true,
        false,
    )?;
    println!(
        "\n# 11. After `az acr update -n targetreg --allow-trusted-services true`, the same import works."
    );
    world
        .arm
        .update_registry("targetreg", |r| r.trusted_services = true);
    run_shown(
        acr,
        &[
            "import",
            "-n",
            "targetreg",
            "--source",
            "app:v2",
            "-r",
            "sourcereg",
            "-t",
            "app:v2",
            "--ca-file",
            &ca,
        ],
        &env,
        None,
        true,
        true,
    )?;
    permissions(acr, &world)
}

/// The permissions preflight: a caller with only Reader on the target is told, before anything
/// starts, which role it lacks and the command that grants it; with the role, the import runs.
fn permissions(acr: &Path, world: &acr_import_tests::ArmWorld) -> anyhow::Result<()> {
    use acr_import_tests::world::{READER, SUB};
    let ca = world.ca_file().display().to_string();
    let mut env: Vec<(String, String)> = world.env_for(READER);
    env.push(("AZURE_SUBSCRIPTION_ID".into(), SUB.into()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let import = [
        "import",
        "-n",
        "targetreg",
        "--source",
        "app:v1",
        "-r",
        "sourcereg",
        "-t",
        "reader/app:v1",
        "--ca-file",
        &ca,
    ];
    println!(
        "\n# 12. Someone with only Reader on the target asks the preflight: importImage needs a role Reader does not give, and the fix is named."
    );
    let mut preflight = import.to_vec();
    preflight.push("--preflight-only");
    run_shown(acr, &preflight, &env, None, true, false)?;
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
    run_shown(acr, &import, &env, None, true, true)
}
