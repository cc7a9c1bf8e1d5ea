//! The server-side engine: `importImage`, then (unless `no_wait`) the operation to its end.

use super::{ImportError, ImportEvent, ImportObserver, ImportRequest, ServerReport};
use crate::import::{AzureContext, ResolvedSource, import_body, run_server_import};
use crate::{ImportProgress, Registry, WaitOptions};

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
    let mut progress = |p: &ImportProgress| observer.event(&ImportEvent::Server(p.clone()));
    let outcome =
        run_server_import(&ctx.arm, &target_id, &body, wait.as_ref(), &mut progress).await?;
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
