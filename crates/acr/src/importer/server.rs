//! The server-side engine: `importImage`, then (unless `no_wait`) the operation to its end,
//! then what is attached to the image (signatures, attestations, SBOMs: referrers and digest
//! tags), copied client-side where the target lacks it. Whether `importImage` copies
//! referrers is not documented, and digest tags are other tags: it is not asked to.

use acr_import_transfer::TransferError;

use super::client;
use super::plan::TargetSpec;
use super::{
    FollowUp, ImportError, ImportEvent, ImportObserver, ImportOptions, ImportRequest,
    ImporterConfig, Referrers, ServerReport, client_plan,
};
use crate::import::{AzureContext, ResolvedSource, import_body, run_server_import_with};
use crate::{AcrError, ImportProgress, Registry, ServerOutcome, WaitOptions};

/// The state a finished operation ends on (its last poll said only that it was still
/// running).
pub(crate) fn succeeded() -> ImportProgress {
    ImportProgress {
        status: Some("Succeeded".to_owned()),
        manifests: Vec::new(),
    }
}

pub(crate) async fn run(
    config: &ImporterConfig,
    ctx: &AzureContext,
    target: &Registry,
    source: &ResolvedSource,
    request: &ImportRequest,
    observer: &dyn ImportObserver,
) -> Result<ServerReport, ImportError> {
    let entry = &request.entry;
    let body = import_body(
        source,
        &entry.images,
        &entry.repositories,
        request.options.force,
    )?;
    let target_id = target.resource_id()?;
    let wait = (!request.options.no_wait).then(|| WaitOptions {
        deadline: request.options.timeout,
        ..WaitOptions::default()
    });
    let mut started = |url: &str| {
        observer.event(&ImportEvent::ServerStarted {
            operation_url: url.to_owned(),
        })
    };
    let mut last: Option<ImportProgress> = None;
    let mut progress = |p: &ImportProgress| {
        last = Some(p.clone());
        observer.event(&ImportEvent::Server(p.clone()))
    };
    let names = super::azure::source_names(source);
    let outcome = run_server_import_with(
        &ctx.arm,
        &target_id,
        &body,
        wait.as_ref(),
        &mut started,
        &mut progress,
    )
    .await;
    let outcome = match outcome {
        Ok(o) => o,
        // The deadline keeps what the service last said: why the import had not finished.
        Err(e @ AcrError::Deadline { .. }) => {
            return Err(ImportError::ServerDeadline {
                source: Box::new(e),
                last_state: last.map(|p| p.to_string()),
            });
        }
        Err(e) => {
            return Err(e
                .with_import_registries(
                    (&target.name, target.login_server()),
                    names.as_ref().map(|(n, ls)| (n.as_str(), ls.as_str())),
                )
                .into());
        }
    };
    if outcome == ServerOutcome::Completed {
        observer.event(&ImportEvent::Server(succeeded()));
    }
    let followers = match (&outcome, request.options.referrers) {
        (_, Referrers::Skip) => FollowUp::Off,
        (ServerOutcome::Started { .. }, _) => FollowUp::NotStarted,
        (ServerOutcome::Completed, _) => follow(config, target, source, request, observer).await?,
    };
    Ok(ServerReport {
        source: entry.source.clone(),
        target_id: target.id.clone(),
        login_server: target.login_server().to_owned(),
        target_tags: body.target_tags.clone(),
        untagged_target_repositories: body.untagged_target_repositories.clone(),
        mode: body.mode,
        outcome,
        followers,
    })
}

/// What the plan says about the follow-up of a server-side import.
pub(crate) fn follow_up_plan(options: &ImportOptions) -> String {
    match (options.referrers, options.no_wait) {
        (Referrers::Skip, _) => "--no-referrers: signatures, attestations and SBOMs (referrers \
            and digest tags) are not followed"
            .to_owned(),
        (_, true) => "with --no-wait, signatures, attestations and SBOMs (referrers and digest \
            tags) are not followed: the image is not in place when this command returns; once \
            it is, the same import with --mode client copies only what the target lacks"
            .to_owned(),
        _ => "then the signatures, attestations and SBOMs (referrers and digest tags) the \
            target lacks are copied from this machine (importImage is not documented to copy \
            them)"
            .to_owned(),
    }
}

/// Copies, client-side, what is attached to the image the service imported: the copy engine
/// finds the image in place and copies only the referrers and digest tags the target lacks.
/// When this machine cannot read the source or write the target (a firewall, no credentials
/// of its own), what is attached stays behind and the report says why; with referrers
/// requested explicitly that is an error.
async fn follow(
    config: &ImporterConfig,
    target: &Registry,
    source: &ResolvedSource,
    request: &ImportRequest,
    observer: &dyn ImportObserver,
) -> Result<FollowUp, ImportError> {
    let left_behind = |reason: String| {
        let text = format!(
            "signatures, attestations and SBOMs of {} (referrers and digest tags) were not \
             followed: {reason}; whatever is attached to the image stayed behind",
            request.entry.source
        );
        observer.event(&ImportEvent::Warning(text));
        FollowUp::LeftBehind { reason }
    };
    let spec = TargetSpec::Registry(target.login_server().to_owned());
    let plan = match client_plan(&request.entry, source, &spec, observer) {
        Ok(p) => p,
        Err(e) if request.options.referrers == Referrers::Default => {
            return Ok(left_behind(e.to_string()));
        }
        Err(e) => return Err(e),
    };
    let options = ImportOptions {
        platforms: Vec::new(),
        dry_run: false,
        ..request.options.clone()
    };
    let run = client::Run {
        config,
        options: &options,
        concurrency: 1,
        observer,
        acr_hosts: super::azure::acr_hosts(Some(target), source),
    };
    let mut results = run.execute(vec![(0, plan)]).await?;
    let (_, _, result) = results.remove(0);
    match result {
        Ok(r) => Ok(FollowUp::Copied(Box::new(r.copy))),
        Err(ImportError::Copy { side, source, .. })
            if unreachable(&source) && request.options.referrers == Referrers::Default =>
        {
            Ok(left_behind(format!(
                "this machine could not use the {side} registry ({source})"
            )))
        }
        Err(e) => Err(e),
    }
}

/// A failure that says this machine may not or cannot talk to a registry the service could
/// reach: a firewall, no route, no credentials of its own.
fn unreachable(e: &TransferError) -> bool {
    matches!(
        e,
        TransferError::Connection { .. }
            | TransferError::Timeout { .. }
            | TransferError::Refused { .. }
            | TransferError::Unauthorized(_)
            | TransferError::Forbidden(_)
            | TransferError::Auth { .. }
            | TransferError::ScopeDenied { .. }
    )
}
