//! `importImage` and its long-running operation, polled as the Azure async-operation
//! guidelines say (learn.microsoft.com/azure/azure-resource-manager/management/async-operations):
//!
//! - the `202` names a status monitor in `Azure-AsyncOperation` and/or the final result in
//!   `Location`; the status monitor is polled when present, `Location` otherwise, and after the
//!   monitor says `Succeeded` the `Location` is read for the final result;
//! - only `Succeeded`, `Failed` and `Canceled` are terminal (any casing); every other status
//!   (`NotStarted`, `Running`, `Updating`, `Accepted`…) keeps polling, whatever the HTTP code;
//! - a `202` from `Location` is still running, a `200`/`204` without a status is done;
//! - a body that is not JSON is an error, not a success;
//! - `Retry-After` sets the next poll; transient answers of a poll are retried by the client's
//!   [`RetryPolicy`](super::RetryPolicy).

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, header};
use serde::Serialize;
use tokio::time::Instant;

use super::errors::{Detail, arm_error, error_from_detail};
use super::send::{Answer, retry_after, status};
use super::{ArmClient, redact};
use crate::model::ImportImageParameters;
use crate::{AcrError, RegistryResourceId};

/// The status-monitor header.
const AZURE_ASYNC_OPERATION: &str = "azure-asyncoperation";

/// What `POST …/importImage` answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportStart {
    /// `200`: done already.
    Done,
    /// `202`: running; poll `operation_url` (the `Azure-AsyncOperation` status monitor when
    /// sent, else `Location`; the client remembers the `Location` for the final read).
    Accepted {
        /// The URL to poll (opaque).
        operation_url: String,
        /// `Retry-After`, when sent.
        retry_after: Option<Duration>,
    },
}

/// Progress of a running import, from a poll body such as
/// `{"status":"Accepted","app@sha256:…":"Pending"}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImportProgress {
    /// `status`, when sent.
    pub status: Option<String>,
    /// Each manifest (`repo@digest`) and its state.
    pub manifests: Vec<(String, String)>,
}

impl fmt::Display for ImportProgress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Importing image... {}",
            self.status.as_deref().unwrap_or("Running")
        )?;
        if !self.manifests.is_empty() {
            let done = self
                .manifests
                .iter()
                .filter(|(_, s)| {
                    s.eq_ignore_ascii_case("Succeeded") || s.eq_ignore_ascii_case("Completed")
                })
                .count();
            write!(f, " ({done}/{} manifests done", self.manifests.len())?;
            for (m, s) in &self.manifests {
                write!(f, "; {m}: {s}")?;
            }
            f.write_str(")")?;
        }
        Ok(())
    }
}

/// One poll of the operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PollResult {
    /// Still running.
    Running {
        /// What the body said.
        progress: ImportProgress,
        /// `Retry-After`, when sent.
        retry_after: Option<Duration>,
    },
    /// Succeeded.
    Succeeded,
}

/// How [`ArmClient::wait`] polls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitOptions {
    /// Give up after this long (the client deadline, `--timeout`). Default: none.
    pub deadline: Option<Duration>,
    /// First interval when the service sends no `Retry-After`. Default: 2 s.
    pub initial_interval: Duration,
    /// The interval doubles up to this. Default: 30 s.
    pub max_interval: Duration,
}

impl Default for WaitOptions {
    fn default() -> Self {
        Self {
            deadline: None,
            initial_interval: Duration::from_secs(2),
            max_interval: Duration::from_secs(30),
        }
    }
}

/// The shortest pause between two polls of an operation, whatever `Retry-After` says.
pub const MIN_POLL_INTERVAL: Duration = Duration::from_millis(500);

/// A terminal status of the async-operation guidelines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Terminal {
    Succeeded,
    Failed,
}

fn terminal(status: &str) -> Option<Terminal> {
    if status.eq_ignore_ascii_case("Succeeded") {
        Some(Terminal::Succeeded)
    } else if status.eq_ignore_ascii_case("Failed") || status.eq_ignore_ascii_case("Canceled") {
        Some(Terminal::Failed)
    } else {
        None
    }
}

impl ArmClient {
    /// `POST …/importImage`, retried as the policy says while nothing was started.
    pub async fn begin_import(
        &self,
        target: &RegistryResourceId,
        body: &ImportImageParameters,
    ) -> Result<ImportStart, AcrError> {
        self.begin_import_until(target, body, None).await
    }

    /// [`ArmClient::begin_import`] whose retries end by `deadline`.
    pub async fn begin_import_until(
        &self,
        target: &RegistryResourceId,
        body: &ImportImageParameters,
        deadline: Option<Instant>,
    ) -> Result<ImportStart, AcrError> {
        let url = self.resource_url(target.as_str(), &["importImage"], &self.api_version)?;
        let json = serde_json::to_vec(body).map_err(|e| AcrError::Protocol {
            url: redact(&url),
            reason: e.to_string(),
        })?;
        let answer = self
            .send_ok(
                "importImage",
                Method::POST,
                &url,
                Some(Bytes::from(json)),
                deadline,
            )
            .await?;
        if status(&answer) != http::StatusCode::ACCEPTED
            && status(&answer) != http::StatusCode::CREATED
        {
            return Ok(ImportStart::Done);
        }
        let header = |name: header::HeaderName| -> Result<Option<String>, AcrError> {
            let Some(v) = answer.response.headers().get(&name) else {
                return Ok(None);
            };
            let v = v.to_str().map_err(|_| AcrError::Protocol {
                url: redact(&url),
                reason: format!("the {name} header is not text ({})", answer.ids),
            })?;
            let absolute = self.endpoint.join(v).map_err(|e| AcrError::Protocol {
                url: redact(&url),
                reason: format!("invalid {name} `{v}`: {e} ({})", answer.ids),
            })?;
            self.same_origin(absolute.as_str())?;
            Ok(Some(absolute.to_string()))
        };
        let monitor = header(header::HeaderName::from_static(AZURE_ASYNC_OPERATION))?;
        let location = header(header::LOCATION)?;
        let operation_url = match (&monitor, &location) {
            (Some(m), Some(l)) => {
                self.remember_final_location(m, l);
                m.clone()
            }
            (Some(m), None) => m.clone(),
            (None, Some(l)) => l.clone(),
            (None, None) => {
                return Err(AcrError::Protocol {
                    url: redact(&url),
                    reason: format!(
                        "202 Accepted without an Azure-AsyncOperation or Location header ({})",
                        answer.ids
                    ),
                });
            }
        };
        Ok(ImportStart::Accepted {
            operation_url,
            retry_after: retry_after(answer.response.headers()),
        })
    }

    fn remember_final_location(&self, monitor: &str, location: &str) {
        self.final_locations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(monitor.to_owned(), location.to_owned());
    }

    fn final_location(&self, monitor: &str) -> Option<String> {
        self.final_locations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(monitor)
            .cloned()
    }

    /// One GET of the operation URL.
    pub async fn poll(&self, operation_url: &str) -> Result<PollResult, AcrError> {
        self.poll_until(operation_url, None).await
    }

    /// [`ArmClient::poll`] whose retries end by `deadline`.
    pub async fn poll_until(
        &self,
        operation_url: &str,
        deadline: Option<Instant>,
    ) -> Result<PollResult, AcrError> {
        let url = self.same_origin(operation_url)?;
        let answer = self.send(Method::GET, &url, None, deadline).await?;
        if !status(&answer).is_success() {
            return Err(arm_error("the import", &answer.response, &answer.ids));
        }
        interpret(&answer, &url)
    }

    /// Polls until the operation ends, honouring `Retry-After` and otherwise backing off from
    /// `initial_interval` to `max_interval`; `on_progress` sees each running poll. After a
    /// status monitor says `Succeeded`, the operation's `Location` (when the `202` named one)
    /// is read for the final result. Fails with [`AcrError::Deadline`] when `deadline` passes
    /// first (the operation keeps running on the service: `acr import status <url>` resumes).
    pub async fn wait(
        &self,
        operation_url: &str,
        options: &WaitOptions,
        on_progress: &mut (dyn FnMut(&ImportProgress) + Send),
    ) -> Result<(), AcrError> {
        let started = Instant::now();
        let deadline = options.deadline.map(|d| started + d);
        self.wait_one(operation_url, options, deadline, started, on_progress)
            .await?;
        if let Some(location) = self.final_location(operation_url)
            && location != operation_url
        {
            self.wait_one(&location, options, deadline, started, on_progress)
                .await?;
        }
        Ok(())
    }

    async fn wait_one(
        &self,
        url: &str,
        options: &WaitOptions,
        deadline: Option<Instant>,
        started: Instant,
        on_progress: &mut (dyn FnMut(&ImportProgress) + Send),
    ) -> Result<(), AcrError> {
        let mut interval = options.initial_interval;
        loop {
            let poll = match deadline {
                Some(d) => tokio::time::timeout_at(d, self.poll_until(url, Some(d)))
                    .await
                    .map_err(|_| deadline_error(url, started))?,
                None => self.poll_until(url, None).await,
            }?;
            let (progress, after) = match poll {
                PollResult::Succeeded => return Ok(()),
                PollResult::Running {
                    progress,
                    retry_after,
                } => (progress, retry_after),
            };
            on_progress(&progress);
            let pause = match after {
                // `Retry-After: 0` would make a busy loop of the poll: keep a floor.
                Some(d) => d.max(MIN_POLL_INTERVAL),
                None => {
                    let d = interval;
                    interval = (interval * 2).min(options.max_interval);
                    d
                }
            };
            if let Some(d) = deadline
                && Instant::now() + pause >= d
            {
                tokio::time::sleep_until(d).await;
                return Err(deadline_error(url, started));
            }
            tokio::time::sleep(pause).await;
        }
    }
}

/// What a successful answer of a poll means.
fn interpret(answer: &Answer, url: &url::Url) -> Result<PollResult, AcrError> {
    let body = answer.response.body();
    let running = |progress| PollResult::Running {
        progress,
        retry_after: retry_after(answer.response.headers()),
    };
    if body.iter().all(u8::is_ascii_whitespace) {
        // Location semantics: 202 is running, 200/201/204 is done.
        return Ok(if status(answer) == http::StatusCode::ACCEPTED {
            running(ImportProgress::default())
        } else {
            PollResult::Succeeded
        });
    }
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| AcrError::Protocol {
            url: redact(url),
            reason: format!(
                "the operation's status is not JSON ({e}): {} ({})",
                String::from_utf8_lossy(&body[..body.len().min(200)]),
                answer.ids
            ),
        })?;
    let status_text = value.get("status").and_then(|s| s.as_str());
    match status_text.map(terminal) {
        Some(Some(Terminal::Succeeded)) => Ok(PollResult::Succeeded),
        Some(Some(Terminal::Failed)) => {
            let detail: Detail = value
                .get("error")
                .cloned()
                .and_then(|e| serde_json::from_value(e).ok())
                .unwrap_or_default();
            let code = status(answer).as_u16();
            Err(error_from_detail("the import", code, detail, &answer.ids))
        }
        Some(None) => Ok(running(parse_progress(&value))),
        None if status(answer) == http::StatusCode::ACCEPTED => Ok(running(parse_progress(&value))),
        None => Ok(PollResult::Succeeded),
    }
}

fn deadline_error(operation_url: &str, started: Instant) -> AcrError {
    AcrError::Deadline {
        operation_url: operation_url.to_owned(),
        waited: started.elapsed(),
    }
}

/// The `status` and the per-manifest states (`"repo@sha256:…": "Pending"`) of a poll body.
fn parse_progress(value: &serde_json::Value) -> ImportProgress {
    let mut progress = ImportProgress::default();
    if let Some(map) = value.as_object() {
        for (k, v) in map {
            if k.eq_ignore_ascii_case("status") {
                progress.status = v.as_str().map(str::to_owned);
            } else if k.contains('@')
                && let Some(s) = v.as_str()
            {
                progress.manifests.push((k.clone(), s.to_owned()));
            }
        }
    }
    progress
}

#[cfg(test)]
#[path = "lro_tests.rs"]
mod tests;
