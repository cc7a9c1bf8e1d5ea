//! `acr import`: resolve names, build the transport and copier, render the result.

use std::io::BufRead;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use acr_import_acr::import::{
    choose_engine, import_body, preflight_input, resolve_source, run_server_import,
};
use acr_import_acr::preflight::evaluate;
use acr_import_acr::{
    AcrError, ArmClient, AzureContext, Cloud, Engine, EngineFacts, EngineMode, RegistryResourceId,
    RegistryTarget, ResolvedSource, ServerOutcome, SourceArgs, Verdict, WaitOptions,
};
use acr_import_auth::azure::{AadCredentialChain, AadOptions};
use acr_import_auth::{Credential, Secret, StaticCredentials};
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

/// Maps an error of the ARM half to an exit code.
pub(crate) fn acr_failure(e: AcrError) -> Failure {
    let code = if e.is_auth() {
        exit::AUTH
    } else {
        match e {
            AcrError::InvalidRequest { .. }
            | AcrError::CredentialsWithResourceId { .. }
            | AcrError::InvalidResourceId { .. }
            | AcrError::InvalidRegistryName { .. }
            | AcrError::UnknownCloud { .. }
            | AcrError::ArmUnavailable { .. }
            | AcrError::NoSubscription { .. } => exit::USAGE,
            _ => exit::FAILED,
        }
    };
    Failure {
        message: e.to_string(),
        hint: None,
        code,
    }
}

/// An ARM client signed in with the environment's Azure AD credential, or why there is none.
fn arm_client(g: &Global, cloud: &Cloud) -> Result<ArmClient, String> {
    let mut builder = Transport::builder();
    if let Some(ca) = &g.ca_file {
        builder = builder.ca_file(ca);
    }
    let http = builder.build().map_err(|e| e.to_string())?.exchange();
    let chain = AadCredentialChain::from_env(http.clone(), AadOptions::default())
        .map_err(|e| e.to_string())?;
    if chain.source().is_none() {
        return Err("no Azure AD credential is configured (AZURE_* variables, a managed identity, or az login)".into());
    }
    let mut arm = ArmClient::new(cloud, http, Arc::new(chain)).map_err(|e| e.to_string())?;
    if let Ok(v) = std::env::var(acr_import_acr::arm::API_VERSION_ENV)
        && !v.is_empty()
    {
        arm = arm.with_api_version(v);
    }
    Ok(arm)
}

fn progress_printer(g: &Global) -> impl FnMut(&acr_import_acr::ImportProgress) + Send + use<> {
    let quiet = g.only_show_errors || matches!(g.output, Some(OutputFormat::None));
    let mut last = String::new();
    move |p| {
        // One line per change of state, not one per poll.
        let text = p.to_string();
        if !quiet && text != last {
            eprintln!("{text}");
            last = text;
        }
    }
}

/// `acr import status URL`.
async fn status(operation_url: &str, args: &ImportArgs, g: &Global) -> Result<(), Failure> {
    let cloud = crate::settings::cloud(g)?;
    let arm = arm_client(g, &cloud).map_err(|why| {
        acr_failure(AcrError::ArmUnavailable {
            reason: format!("polling an import operation needs it ({why})"),
        })
    })?;
    let options = WaitOptions {
        deadline: args.timeout.map(Duration::from_secs),
        ..WaitOptions::default()
    };
    let mut progress = progress_printer(g);
    arm.wait(operation_url, &options, &mut progress)
        .await
        .map_err(acr_failure)?;
    match g.output {
        None | Some(OutputFormat::None) => {
            if !g.only_show_errors {
                eprintln!("the import finished successfully");
            }
            Ok(())
        }
        Some(f) => render::print(
            &serde_json::json!({"operationUrl": operation_url, "status": "Succeeded"}),
            f,
        ),
    }
}

/// Whether `--name` (or `--registry`) needs or can use ARM.
fn is_azure_name(value: &str, cloud: &Cloud) -> bool {
    if RegistryResourceId::looks_like(value) {
        return true;
    }
    RegistryTarget::parse(value, cloud).is_ok_and(|t| t.acr_name().is_some())
}

pub async fn run(args: ImportArgs, g: &Global) -> Result<(), Failure> {
    if let Some(ImportSubcommand::Status { operation_url }) = &args.status {
        return status(operation_url, &args, g).await;
    }
    let cloud = crate::settings::cloud(g)?;
    let name = args
        .name
        .clone()
        .ok_or_else(|| Failure::usage("the following arguments are required: --name/-n"))?;
    if RegistryResourceId::looks_like(&name) {
        name.parse::<RegistryResourceId>().map_err(acr_failure)?;
    } else if !name.starts_with("oci:") {
        RegistryTarget::parse(&name, &cloud).map_err(|e| Failure::usage(e.to_string()))?;
    }
    let password = source_password(&args, g)?;
    if args.username.is_some() && password.is_none() {
        return Err(
            Failure::usage("Authentication failed. Please provide password.").with_hint(
                "add --password-stdin and pipe the password, or set ACR_IMPORT_SOURCE_PASSWORD",
            ),
        );
    }
    if let Some(from_file) = &args.from_file {
        if args.mode == Mode::Server || args.preflight_only {
            return Err(Failure::usage(
                "--from-file imports run client-side: --mode server and --preflight-only take a single --source",
            ));
        }
        let target = resolve_target(&name, &cloud)?;
        if args.no_wait {
            render::warn(
                g,
                "--no-wait applies to server-side imports only; this import runs client-side and waits",
            );
        }
        let mut plans = Vec::new();
        let entries = read_batch(from_file)?;
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
        return execute_client(plans, &args, g, &cloud, None).await;
    }
    let source_text = args
        .source
        .clone()
        .ok_or_else(|| Failure::usage("the following arguments are required: --source"))?;

    // Azure Resource Manager: needed for Azure names, wanted for ACR targets (server-side
    // import, preflight), optional otherwise.
    let target_is_layout = name.starts_with("oci:");
    let target_azure = !target_is_layout && is_azure_name(&name, &cloud);
    let registry_azure = args.registry.as_deref().is_some_and(|r| {
        is_azure_name(r, &cloud) && !r.contains('.') || RegistryResourceId::looks_like(r)
    });
    let mut azure: Option<AzureContext> = None;
    let mut no_arm_reason = String::new();
    if target_azure || registry_azure || args.preflight_only {
        match arm_client(g, &cloud) {
            Ok(arm) => {
                match AzureContext::connect(arm, cloud.clone(), g.subscription.as_deref()).await {
                    Ok(ctx) => azure = Some(ctx),
                    Err(e) => no_arm_reason = e.to_string(),
                }
            }
            Err(why) => no_arm_reason = why,
        }
        if azure.is_none() {
            tracing::info!("Azure Resource Manager unavailable: {no_arm_reason}");
        }
    } else {
        no_arm_reason = "the target is not an Azure registry name".into();
    }

    // The target: through ARM when possible.
    let mut target_registry: Option<acr_import_acr::Registry> = None;
    if let (Some(ctx), true) = (&azure, target_azure) {
        match ctx
            .resolve_target(&name, args.resource_group.as_deref())
            .await
        {
            Ok(r) => target_registry = Some(r),
            Err(e) if args.mode == Mode::Server || args.preflight_only => {
                return Err(acr_failure(e));
            }
            Err(e) => no_arm_reason = format!("looking up {name} failed: {e}"),
        }
    }
    if args.mode == Mode::Server && target_registry.is_none() {
        return Err(acr_failure(AcrError::InvalidRequest {
            message: format!(
                "--mode server needs the target through Azure Resource Manager: {no_arm_reason}"
            ),
            hint: "use --mode client, or configure Azure access".into(),
        }));
    }

    // The source.
    let source_args = SourceArgs {
        source: source_text.clone(),
        registry: args.registry.clone(),
        username: args.username.clone(),
        password: password.clone(),
    };
    let resolution = resolve_source(azure.as_ref(), &cloud, &source_args)
        .await
        .map_err(acr_failure)?;
    for w in &resolution.warnings {
        render::warn(g, w);
    }
    if !g.only_show_errors {
        for n in &resolution.notes {
            eprintln!("note: {n}");
        }
    }

    // The engine.
    let facts = EngineFacts {
        target_via_arm: target_registry.is_none().then(|| no_arm_reason.clone()),
        referrers_requested: args.include_referrers == Some(true),
        platform_filter: !args.platforms.is_empty(),
        oci_layout: target_is_layout || matches!(resolution.source, ResolvedSource::Layout { .. }),
        dry_run: args.dry_run,
    };
    let mode = match args.mode {
        Mode::Auto => EngineMode::Auto,
        Mode::Server => EngineMode::Server,
        Mode::Client => EngineMode::Client,
    };
    let (engine, why) = choose_engine(mode, &facts).map_err(acr_failure)?;
    if !g.only_show_errors && !args.preflight_only && (target_azure || engine == Engine::Server) {
        let short = match engine {
            Engine::Server => "server-side",
            Engine::Client => "client-side",
        };
        eprintln!("note: importing {short}: {why}");
    }

    // The preflight, for both engines.
    let client_ip = std::env::var("ACR_IMPORT_CLIENT_IP")
        .ok()
        .and_then(|v| v.parse().ok());
    let verdict = (azure.is_some()).then(|| {
        evaluate(&preflight_input(
            engine,
            target_registry.as_ref(),
            &resolution.source,
            client_ip,
        ))
    });
    if args.preflight_only {
        let Some(v) = verdict else {
            println!(
                "preflight: cannot tell whether the import will work: Azure Resource Manager is not available ({no_arm_reason})"
            );
            return Ok(());
        };
        match g.output {
            None => print!("{v}"),
            Some(f) => render::print(&v, f)?,
        }
        return if v.will_fail() {
            Err(Failure {
                message: "the preflight says the import will fail (see above)".into(),
                hint: None,
                code: exit::PREFLIGHT,
            })
        } else {
            Ok(())
        };
    }
    if let Some(v) = &verdict {
        match v.verdict {
            Verdict::WillFail => {
                return Err(Failure {
                    message: v.to_string().trim_end().to_owned(),
                    hint: Some(
                        "nothing was started; fix the above, or check with --preflight-only".into(),
                    ),
                    code: exit::PREFLIGHT,
                });
            }
            Verdict::CannotTell => {
                for u in &v.unknowns {
                    render::warn(
                        g,
                        &format!("preflight cannot tell: {}: {}", u.registry, u.reason),
                    );
                }
            }
            Verdict::WillWork => {
                for n in &v.notes {
                    tracing::info!("preflight: {n}");
                }
            }
        }
    }

    match engine {
        Engine::Server => {
            let (Some(ctx), Some(target)) = (&azure, &target_registry) else {
                return Err(acr_failure(AcrError::ArmUnavailable {
                    reason: no_arm_reason,
                }));
            };
            run_server(ctx, target, &resolution.source, &args, g).await
        }
        Engine::Client => {
            if args.no_wait {
                render::warn(
                    g,
                    "--no-wait applies to server-side imports only; this import runs client-side and waits",
                );
            }
            let target_spec = match &target_registry {
                Some(r) => TargetSpec::Registry(r.login_server().to_owned()),
                None if RegistryResourceId::looks_like(&name) => {
                    return Err(acr_failure(AcrError::ArmUnavailable {
                        reason: format!("the target is named by resource ID ({no_arm_reason})"),
                    }));
                }
                None => resolve_target(&name, &cloud)?,
            };
            let plan = match &resolution.source {
                ResolvedSource::Layout { .. } => plan(
                    &source_text,
                    None,
                    &args.images,
                    &args.repositories,
                    None,
                    &target_spec,
                    g,
                )?,
                resolved => {
                    let host = resolved.pull_host().ok_or_else(|| Failure::usage(format!(
                        "the source {source_text} cannot be read client-side: its login server is unknown (you cannot read the registry through Azure Resource Manager)"
                    )))?;
                    let image = resolved.image().unwrap_or_default();
                    let creds = match resolved {
                        ResolvedSource::External {
                            credentials: Some((u, p)),
                            ..
                        } => Some((u.clone().unwrap_or_default(), p.clone())),
                        _ => None,
                    };
                    let mut p = plan(
                        &format!("{host}/{image}"),
                        None,
                        &args.images,
                        &args.repositories,
                        creds,
                        &target_spec,
                        g,
                    )?;
                    p.label = source_text.clone();
                    p
                }
            };
            let firewall = target_registry.as_ref().map(|r| r.network());
            execute_client(vec![plan], &args, g, &cloud, firewall).await
        }
    }
}

/// The server-side engine: `importImage`, then (unless `--no-wait`) the operation to its end.
async fn run_server(
    ctx: &AzureContext,
    target: &acr_import_acr::Registry,
    source: &ResolvedSource,
    args: &ImportArgs,
    g: &Global,
) -> Result<(), Failure> {
    let body = import_body(
        source,
        &args.images,
        &args.repositories,
        args.force.unwrap_or(false),
    )
    .map_err(acr_failure)?;
    let target_id = target.resource_id().map_err(acr_failure)?;
    let wait = (!args.no_wait).then(|| WaitOptions {
        deadline: args.timeout.map(Duration::from_secs),
        ..WaitOptions::default()
    });
    let mut progress = progress_printer(g);
    let outcome = run_server_import(&ctx.arm, &target_id, &body, wait.as_ref(), &mut progress)
        .await
        .map_err(acr_failure)?;
    let targets: Vec<String> = body
        .target_tags
        .iter()
        .chain(&body.untagged_target_repositories)
        .map(|t| format!("{}/{t}", target.login_server()))
        .collect();
    let row = match &outcome {
        ServerOutcome::Completed => serde_json::json!({
            "engine": "server", "status": "Succeeded", "source": args.source, "target": target.id,
            "targetTags": body.target_tags, "untaggedTargetRepositories": body.untagged_target_repositories,
            "mode": body.mode,
        }),
        ServerOutcome::Started { operation_url } => serde_json::json!({
            "engine": "server", "status": "Started", "source": args.source, "target": target.id,
            "operationUrl": operation_url,
        }),
    };
    match (g.output, &outcome) {
        (None, ServerOutcome::Completed) => println!(
            "imported {} to {} server-side (no bytes through this machine)",
            args.source.as_deref().unwrap_or_default(),
            targets.join(", ")
        ),
        (None, ServerOutcome::Started { operation_url }) => {
            render::warn(
                g,
                "Import has started. Due to no-wait option, failures will not be reflected here: follow it with `acr import status <url>`",
            );
            println!("{operation_url}");
        }
        (Some(f), _) => render::print(&row, f)?,
    }
    Ok(())
}

/// The client-side engine for resolved plans.
async fn execute_client(
    plans: Vec<Plan>,
    args: &ImportArgs,
    g: &Global,
    cloud: &Cloud,
    firewall: Option<acr_import_acr::preflight::RegistryNetwork>,
) -> Result<(), Failure> {
    let transport = build_transport(g, &plans, cloud)?;
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
        verify: args.verify_blobs,
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
        let report = result.map_err(|mut f| {
            if let Some(net) = &firewall
                && f.message.contains("HTTP 403")
            {
                f.hint = Some(acr_import_acr::import::firewall_message(net));
            }
            f
        })?;
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
    crate::settings::transport(g, cloud, explicit)
}
