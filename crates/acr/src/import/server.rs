//! Running `importImage`: starting it, and following it to the end unless told not to.

use std::time::Duration;

use crate::arm::{ArmClient, ImportProgress, ImportStart, WaitOptions};
use crate::model::ImportImageParameters;
use crate::{AcrError, RegistryResourceId};

/// How a server-side import ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerOutcome {
    /// The operation succeeded.
    Completed,
    /// `--no-wait`: the operation runs on; `acr import status <operation_url>` follows it.
    Started {
        /// The operation URL.
        operation_url: String,
    },
}

/// Starts `importImage` and, unless `wait` is `None` (`--no-wait`), polls it to the end.
pub async fn run_server_import(
    arm: &ArmClient,
    target: &RegistryResourceId,
    body: &ImportImageParameters,
    wait: Option<&WaitOptions>,
    on_progress: &mut (dyn FnMut(&ImportProgress) + Send),
) -> Result<ServerOutcome, AcrError> {
    run_server_import_with(arm, target, body, wait, &mut |_| {}, on_progress).await
}

/// [`run_server_import`], telling `on_started` the operation URL as soon as the service
/// has accepted the import (from then on it runs whatever this process does).
pub async fn run_server_import_with(
    arm: &ArmClient,
    target: &RegistryResourceId,
    body: &ImportImageParameters,
    wait: Option<&WaitOptions>,
    on_started: &mut (dyn FnMut(&str) + Send),
    on_progress: &mut (dyn FnMut(&ImportProgress) + Send),
) -> Result<ServerOutcome, AcrError> {
    let started = tokio::time::Instant::now();
    // ARM's throttling of the POST is waited out only until the client deadline.
    let deadline = wait.and_then(|w| w.deadline).map(|d| started + d);
    match arm.begin_import_until(target, body, deadline).await? {
        ImportStart::Done => Ok(ServerOutcome::Completed),
        ImportStart::Accepted {
            operation_url,
            retry_after,
        } => {
            on_started(&operation_url);
            let Some(options) = wait else {
                return Ok(ServerOutcome::Started { operation_url });
            };
            if let Some(first) = retry_after {
                tokio::time::sleep(first.min(options.max_interval)).await;
            }
            let remaining = options
                .deadline
                .map(|d| d.saturating_sub(started.elapsed()));
            let options = WaitOptions {
                deadline: remaining.map(|r| r.max(Duration::from_millis(1))),
                ..options.clone()
            };
            arm.wait(&operation_url, &options, on_progress).await?;
            Ok(ServerOutcome::Completed)
        }
    }
}
