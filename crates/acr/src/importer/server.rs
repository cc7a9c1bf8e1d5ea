//! The server-side engine: `importImage`, then (unless `no_wait`) the operation to its end.

use super::{ImportError, ImportEvent, ImportObserver, ImportRequest, ServerReport};
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
    Ok(ServerReport {
        source: entry.source.clone(),
        target_id: target.id.clone(),
        login_server: target.login_server().to_owned(),
        target_tags: body.target_tags.clone(),
        untagged_target_repositories: body.untagged_target_repositories.clone(),
        mode: body.mode,
        outcome,
    })
}
