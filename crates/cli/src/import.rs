//! `acr import`: resolve names, build the transport and copier, render the result.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use acr_import_acr::{Cloud, RegistryTarget};
use acr_import_auth::azure::{
    AadCredentialChain, AadOptions, AcrAudience, AcrLoginServers, AzureAdProvider, AzureEnvironment,
};
use acr_import_auth::{Credential, CredentialChain, DockerConfigSource, Secret, StaticCredentials};
use acr_import_reference::{AnyReference, RepositoryReference};
use acr_import_transfer::copy::Progress;
use acr_import_transfer::{
    Copier, CopyOptions, CopyReport, Endpoint, OciLayout, Source, Target, Transport,
};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use crate::{Failure, exit, render};
use acr_import_cli::args::{Global, ImportArgs, ImportSubcommand, Mode, OutputFormat};

/// One import, resolved: where from, where to, and whose credentials.
struct Plan {
    label: String,
    source: SourceSpec,
    target_host: TargetSpec,
    images: Vec<(String, Option<String>)>,
    credentials: Vec<(String, Credential)>,
}

enum SourceSpec {
    Registry {
        host: String,
        repository: String,
        reference: String,
    },
    Layout {
        path: PathBuf,
        reference: String,
    },
}

#[derive(Clone)]
enum TargetSpec {
    Registry(String),
    Layout(PathBuf),
}

/// An entry of `--from-file`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct BatchEntry {
    source: String,
    #[serde(default)]
    images: Vec<String>,
    #[serde(default)]
    repositories: Vec<String>,
    #[serde(default)]
    registry: Option<String>,
    /// `PREFIX` ⇒ credentials from `PREFIX_USERNAME` / `PREFIX_PASSWORD`.
    #[serde(default)]
    credentials_env: Option<String>,
}

#[derive(Serialize)]
struct BatchRow {
    source: String,
    result: String,
    digest: String,
    blobs: String,
    detail: String,
}

pub async fn run(args: ImportArgs, g: &Global) -> Result<(), Failure> {
    if let Some(ImportSubcommand::Status { operation_url }) = &args.status {
        return Err(Failure::usage(format!(
            "cannot poll {operation_url}: server-side imports (the ARM importImage operation) are not available in this build"
        )));
    }
    let cloud: Cloud = g
        .cloud
        .parse()
        .map_err(|e: acr_import_acr::AcrError| Failure::usage(e.to_string()))?;
    let cloud = cloud.with_overrides(|k| std::env::var(k).ok());
    let name = args
        .name
        .clone()
        .ok_or_else(|| Failure::usage("the following arguments are required: --name/-n"))?;
    let target = resolve_target(&name, &cloud)?;
    if args.preflight_only {
        return Err(Failure::usage(
            "--preflight-only reads the registries' network rules through Azure Resource Manager, which this build cannot reach yet",
        ));
    }
    match args.mode {
        Mode::Server => {
            return Err(Failure::usage(
                "--mode server needs Azure Resource Manager (the importImage operation), which this build does not include yet; use --mode client",
            ));
        }
        Mode::Auto
            if matches!(&target, TargetSpec::Registry(h) if h.ends_with(&cloud.login_server_suffix))
                && !g.only_show_errors =>
        {
            eprintln!(
                "note: importing client-side (bytes stream through this machine): server-side import through ARM is not available in this build"
            );
        }
        _ => {}
    }
    if args.no_wait {
        render::warn(
            g,
            "--no-wait applies to server-side imports only; this import runs client-side and waits",
        );
    }
    let password = source_password(&args, g)?;
    if args.username.is_some() && password.is_none() {
        return Err(
            Failure::usage("Authentication failed. Please provide password.").with_hint(
                "add --password-stdin and pipe the password, or set ACR_IMPORT_SOURCE_PASSWORD",
            ),
        );
    }

    let mut plans = Vec::new();
    if let Some(file) = &args.from_file {
        let entries = read_batch(file)?;
        for (i, e) in entries.into_iter().enumerate() {
            let creds = match &e.credentials_env {
                Some(prefix) => {
                    let user = std::env::var(format!("{prefix}_USERNAME")).ok();
                    let pass = std::env::var(format!("{prefix}_PASSWORD")).ok();
                    match (user, pass) {
                        (u, Some(p)) => Some((u.unwrap_or_default(), Secret::new(p))),
                        _ => {
                            return Err(Failure::usage(format!(
                                "entry {}: credentials-env `{prefix}` needs {prefix}_PASSWORD in the environment",
                                i + 1
                            )));
                        }
                    }
                }
                None => None,
            };
            plans.push(plan(
                &e.source,
                e.registry.as_deref(),
                &e.images,
                &e.repositories,
                creds,
                &target,
                g,
            )?);
        }
    } else {
        let source = args
            .source
            .clone()
            .ok_or_else(|| Failure::usage("the following arguments are required: --source"))?;
        let creds = password.map(|p| (args.username.clone().unwrap_or_default(), p));
        plans.push(plan(
            &source,
            args.registry.as_deref(),
            &args.images,
            &args.repositories,
            creds,
            &target,
            g,
        )?);
    }

    let transport = build_transport(g, &plans, &cloud)?;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Progress>();
    let options = CopyOptions {
        force: args.force.unwrap_or(false),
        platforms: args
            .platforms
            .iter()
            .map(|p| p.parse())
            .collect::<Result<_, _>>()
            .map_err(|e: acr_import_transfer::TransferError| Failure::usage(e.to_string()))?,
        referrers: !args.no_referrers && args.include_referrers.unwrap_or(true),
        foreign_layers: args.include_foreign_layers,
        jobs: args.jobs.max(1),
        dry_run: args.dry_run,
        progress: Some(tx),
        ..CopyOptions::default()
    };
    let copier = Copier::new(options);
    let quiet = g.only_show_errors || matches!(g.output, Some(OutputFormat::None));
    let renderer = tokio::spawn(render::progress(rx, g.verbose, quiet));
    let work = async {
        let batch = plans.len() > 1 || args.from_file.is_some();
        let results: Vec<(String, Result<CopyReport, Failure>)> =
            futures_util::stream::iter(plans.iter().map(|p| {
                let transport = transport.clone();
                let copier = &copier;
                async move { (p.label.clone(), run_one(p, &transport, copier).await) }
            }))
            .buffer_unordered(if batch { 4 } else { 1 })
            .collect()
            .await;
        results
    };
    let results = match args.timeout {
        Some(secs) => tokio::time::timeout(Duration::from_secs(secs), work)
            .await
            .map_err(|_| Failure { message: format!("the import did not finish within {secs} s; no tag was moved by what was still running"), hint: None, code: exit::FAILED })?,
        None => work.await,
    };
    drop(copier);
    let _ = renderer.await;

    if args.from_file.is_none() {
        let (_, result) = results.into_iter().next().expect("one plan");
        let report = result?;
        let target_name = plans[0].describe_target(&report);
        match g.output {
            // Notes were shown by the progress renderer as they happened.
            None => println!("{}", report.summary(&target_name)),
            Some(f) => render::print(&report, f)?,
        }
        return Ok(());
    }
    let mut rows = Vec::new();
    let mut failed = Vec::new();
    for (label, r) in results {
        match r {
            Ok(rep) => rows.push(BatchRow {
                source: label,
                result: if rep.up_to_date {
                    "up to date".into()
                } else {
                    "imported".into()
                },
                digest: rep.digest.clone(),
                blobs: format!(
                    "{} copied, {} mounted, {} skipped",
                    rep.totals.blobs_copied, rep.totals.blobs_mounted, rep.totals.blobs_skipped
                ),
                detail: render::bytes(rep.totals.bytes_copied),
            }),
            Err(f) => {
                failed.push(label.clone());
                rows.push(BatchRow {
                    source: label,
                    result: "FAILED".into(),
                    digest: String::new(),
                    blobs: String::new(),
                    detail: f.message,
                });
            }
        }
    }
    render::print(&rows, g.output.unwrap_or(OutputFormat::Table))?;
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Failure {
            message: format!(
                "{} of {} imports failed: {}",
                failed.len(),
                rows.len(),
                failed.join(", ")
            ),
            hint: None,
            code: exit::FAILED,
        })
    }
}

impl Plan {
    fn describe_target(&self, report: &CopyReport) -> String {
        let host = match &self.target_host {
            TargetSpec::Registry(h) => h.clone(),
            TargetSpec::Layout(p) => format!("oci:{}", p.display()),
        };
        match self.images.first() {
            Some((repo, Some(tag))) if repo.is_empty() => format!("{host}:{tag}"),
            Some((repo, Some(tag))) => format!("{host}/{repo}:{tag}"),
            Some((repo, None)) => format!("{host}/{repo}@{}", report.digest),
            None => host,
        }
    }
}

async fn run_one(p: &Plan, transport: &Transport, copier: &Copier) -> Result<CopyReport, Failure> {
    let source = match &p.source {
        SourceSpec::Registry {
            host,
            repository,
            reference,
        } => Source {
            endpoint: Endpoint::registry(transport.registry(host)?, repository.clone()),
            reference: reference.clone(),
        },
        SourceSpec::Layout { path, reference } => Source {
            endpoint: Endpoint::Layout(OciLayout::open(path)?),
            reference: reference.clone(),
        },
    };
    let mut targets = Vec::new();
    for (repo, tag) in &p.images {
        let endpoint = match &p.target_host {
            TargetSpec::Registry(h) => Endpoint::registry(transport.registry(h)?, repo.clone()),
            TargetSpec::Layout(path) => Endpoint::Layout(OciLayout::create(path)?),
        };
        targets.push(Target {
            endpoint,
            tag: tag.clone(),
        });
    }
    Ok(copier.copy(&source, &targets).await?)
}

fn resolve_target(name: &str, cloud: &Cloud) -> Result<TargetSpec, Failure> {
    if let Some(path) = name.strip_prefix("oci:") {
        if path.is_empty() {
            return Err(Failure::usage(
                "--name oci: needs a folder path, e.g. --name oci:./export",
            ));
        }
        return Ok(TargetSpec::Layout(PathBuf::from(path)));
    }
    let t = RegistryTarget::parse(name, cloud).map_err(|e| Failure::usage(e.to_string()))?;
    Ok(TargetSpec::Registry(t.host().to_owned()))
}

/// Resolves one import: source, targets (`--image`, `--repository`, or the source's own name)
/// and the source credentials.
fn plan(
    source: &str,
    registry: Option<&str>,
    images: &[String],
    repositories: &[String],
    creds: Option<(String, Secret)>,
    target: &TargetSpec,
    g: &Global,
) -> Result<Plan, Failure> {
    let (spec, default_repo, source_tag) = match registry {
        Some(r) => {
            let looks_like_host =
                r.contains('.') || r.contains(':') || r.eq_ignore_ascii_case("localhost");
            if !looks_like_host {
                return Err(Failure::usage(format!(
                    "--registry `{r}` names an Azure registry by name or resource ID, which needs Azure Resource Manager access that this build does not include yet"
                ))
                .with_hint(format!("name it by its login server instead: --registry {}.azurecr.io", r.rsplit('/').next().unwrap_or(r).to_ascii_lowercase())));
            }
            let host = r
                .trim_start_matches("https://")
                .trim_end_matches('/')
                .to_ascii_lowercase();
            let mut repo_ref: RepositoryReference = source
                .parse()
                .map_err(|e| Failure::usage(format!("--source `{source}`: {e}")))?;
            if let Some(stripped) = repo_ref.strip_login_server(&host) {
                render::warn(
                    g,
                    &format!(
                        "The login server name of \"{host}\" in the \"--source\" argument will be ignored as \"--registry\" already supplies the same information"
                    ),
                );
                repo_ref = stripped;
            }
            let reference = repo_ref
                .digest()
                .map(|d| d.to_string())
                .or_else(|| repo_ref.tag().map(|t| t.to_string()))
                .unwrap_or_else(|| "latest".to_owned());
            let repository = repo_ref.repository().to_string();
            (
                SourceSpec::Registry {
                    host,
                    repository: repository.clone(),
                    reference,
                },
                repository,
                repo_ref.tag().map(|t| t.to_string()),
            )
        }
        None => match source.parse::<AnyReference>() {
            Ok(AnyReference::OciLayout(l)) => {
                let reference = l
                    .digest()
                    .map(|d| d.to_string())
                    .or_else(|| l.tag().map(|t| t.to_string()))
                    .unwrap_or_else(|| "latest".to_owned());
                let default_repo = l
                    .path()
                    .file_name()
                    .map(|f| f.to_string_lossy().to_ascii_lowercase())
                    .unwrap_or_else(|| "image".to_owned());
                (
                    SourceSpec::Layout {
                        path: l.path().to_path_buf(),
                        reference,
                    },
                    default_repo,
                    l.tag().map(|t| t.to_string()),
                )
            }
            Ok(AnyReference::Registry(r)) => {
                let n = r.normalization();
                let normalized = r.normalized();
                if n.added_library && !g.only_show_errors {
                    eprintln!(
                        "note: `{source}` is the Docker Hub official image {}",
                        normalized
                    );
                }
                let reference = normalized.manifest_reference().to_owned();
                let repository = normalized.repository().to_string();
                (
                    SourceSpec::Registry {
                        host: normalized.api_host().to_owned(),
                        repository: repository.clone(),
                        reference,
                    },
                    repository,
                    normalized.tag().map(|t| t.to_string()),
                )
            }
            Err(e) => return Err(Failure::usage(format!("--source `{source}`: {e}"))),
        },
    };
    let default_tag = source_tag.clone().unwrap_or_else(|| "latest".to_owned());
    let mut targets: Vec<(String, Option<String>)> = Vec::new();
    for i in images {
        let (repo, tag) = split_image(i, &default_tag, target)?;
        targets.push((repo, Some(tag)));
    }
    for r in repositories {
        if r.contains(':') || r.contains('@') {
            return Err(Failure::usage(format!(
                "--repository `{r}` takes a repository name without tag or digest"
            )));
        }
        targets.push((r.clone(), None));
    }
    if targets.is_empty() {
        targets.push((
            if matches!(target, TargetSpec::Layout(_)) {
                String::new()
            } else {
                default_repo
            },
            Some(default_tag),
        ));
    }
    let mut credentials = Vec::new();
    if let (Some((user, password)), SourceSpec::Registry { host, .. }) = (creds, &spec) {
        credentials.push((
            host.clone(),
            Credential::from_username_password(user, password),
        ));
    }
    Ok(Plan {
        label: source.to_owned(),
        source: spec,
        target_host: target.clone(),
        images: targets,
        credentials,
    })
}

/// `repo[:tag]` → (repo, tag); a layout target takes `tag` or `repo:tag` and keeps the tag.
fn split_image(
    image: &str,
    default_tag: &str,
    target: &TargetSpec,
) -> Result<(String, String), Failure> {
    let (repo, tag) = match image.rsplit_once(':') {
        Some((r, t)) if !t.contains('/') => (r.to_owned(), t.to_owned()),
        _ => (image.to_owned(), default_tag.to_owned()),
    };
    if matches!(target, TargetSpec::Layout(_)) {
        let tag = if image.contains(':') {
            tag
        } else {
            image.to_owned()
        };
        return Ok((String::new(), tag));
    }
    let check = format!("{repo}:{tag}")
        .parse::<RepositoryReference>()
        .map_err(|e| Failure::usage(format!("--image `{image}`: {e}")))?;
    Ok((check.repository().to_string(), tag))
}

fn source_password(args: &ImportArgs, g: &Global) -> Result<Option<Secret>, Failure> {
    if args.password_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).map_err(|e| {
            Failure::usage(format!("cannot read the password from standard input: {e}"))
        })?;
        let p = line.trim_end_matches(['\r', '\n']).to_owned();
        if p.is_empty() {
            return Err(Failure::usage("--password-stdin read an empty password"));
        }
        return Ok(Some(Secret::new(p)));
    }
    let Some(p) = &args.password else {
        return Ok(None);
    };
    let from_env = std::env::var("ACR_IMPORT_SOURCE_PASSWORD").is_ok_and(|v| v == *p);
    if !from_env {
        render::warn(
            g,
            "a password on the command line is visible to other users and kept in shell history: use --password-stdin or ACR_IMPORT_SOURCE_PASSWORD",
        );
    }
    Ok(Some(Secret::new(p.clone())))
}

fn read_batch(path: &PathBuf) -> Result<Vec<BatchEntry>, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::usage(format!("cannot read {}: {e}", path.display())))?;
    let entries: Vec<BatchEntry> = if text.trim_start().starts_with('[') {
        serde_json::from_str(&text)
            .map_err(|e| Failure::usage(format!("{}: {e}", path.display())))?
    } else {
        serde_norway::from_str(&text)
            .map_err(|e| Failure::usage(format!("{}: {e}", path.display())))?
    };
    if entries.is_empty() {
        return Err(Failure::usage(format!(
            "{} lists no imports",
            path.display()
        )));
    }
    Ok(entries)
}

fn build_transport(g: &Global, plans: &[Plan], cloud: &Cloud) -> Result<Transport, Failure> {
    let mut explicit = StaticCredentials::new();
    for p in plans {
        for (host, c) in &p.credentials {
            explicit.insert(host, c.clone());
        }
    }
    if let (Ok(user), Ok(pass)) = (
        std::env::var("ACR_IMPORT_TARGET_USERNAME"),
        std::env::var("ACR_IMPORT_TARGET_PASSWORD"),
    ) {
        for p in plans {
            if let TargetSpec::Registry(h) = &p.target_host {
                explicit.insert(
                    h,
                    Credential::from_username_password(user.clone(), Secret::new(pass.clone())),
                );
            }
        }
    }
    let suffix = cloud.login_server_suffix.clone();
    let mut builder = Transport::builder().credentials_from(move |http| {
        let env = AzureEnvironment::from_env();
        let servers = AcrLoginServers::from_env(&env).with_suffix(&suffix);
        let mut chain = CredentialChain::new()
            .with_explicit(explicit)
            .with_docker_config(DockerConfigSource::from_env());
        match AadCredentialChain::from_env(http.clone(), AadOptions::default()) {
            Ok(aad) => {
                chain = chain.with_azure(AzureAdProvider::from_chain(
                    &aad,
                    http,
                    servers,
                    AcrAudience::default(),
                ))
            }
            Err(e) => tracing::warn!("Azure AD credentials unavailable: {e}"),
        }
        Arc::new(chain)
    });
    if let Some(ca) = &g.ca_file {
        builder = builder.ca_file(ca);
    }
    for h in &g.insecure_registries {
        builder = builder.insecure_host(h.clone());
    }
    if !std::io::stderr().is_terminal() {
        tracing::debug!("stderr is not a terminal: plain progress lines");
    }
    Ok(builder.build()?)
}
