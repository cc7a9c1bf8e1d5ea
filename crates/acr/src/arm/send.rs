//! Sending one ARM request: the bearer token, a client request id, and the Azure SDK retry
//! policy.
//!
//! The policy is the one the Azure SDKs apply to ARM (azure-core's `RetryPolicy`, the Go SDK's
//! `policy.RetryOptions`): the status codes 408, 429, 500, 502, 503 and 504, and any error answer
//! with `Retry-After`, are tried again — a POST too, since ARM answers those before anything is
//! started (a started `importImage` answers 202) — after `Retry-After` when the service sends
//! it, otherwise after an exponential back-off. A `Retry-After` that would end past the
//! caller's deadline stops the retries: the answer is reported as it is.
//!
//! Every request carries `x-ms-client-request-id` (a new GUID per request, the same for its
//! retries), and [`RequestIds`] keeps what ARM answered in `x-ms-request-id` and
//! `x-ms-correlation-request-id`, so a failure can be traced by Azure support
//! (learn.microsoft.com/rest/api/azure/#request-header, …/azure-resource-manager/management/
//! request-limits-and-throttling).

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode, header};
use tokio::time::Instant;
use url::Url;

use super::{ArmClient, redact};
use crate::AcrError;

/// The client request id header (sent).
pub const CLIENT_REQUEST_ID: &str = "x-ms-client-request-id";
/// ARM's own request id (answered).
pub const REQUEST_ID: &str = "x-ms-request-id";
/// ARM's correlation id (answered).
pub const CORRELATION_REQUEST_ID: &str = "x-ms-correlation-request-id";

/// The status codes the Azure SDKs retry.
const RETRY_STATUS: [u16; 6] = [408, 429, 500, 502, 503, 504];

/// How [`ArmClient`] retries transient answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first try (0: none). Default: 3.
    pub max_retries: u32,
    /// The first back-off when no `Retry-After` is sent; it doubles each retry. Default: 800 ms.
    pub initial_delay: Duration,
    /// The longest back-off. Default: 60 s.
    pub max_delay: Duration,
    /// The longest `Retry-After` honoured when the caller has no deadline. Default: 120 s.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 3,
            initial_delay: Duration::from_millis(800),
            max_delay: Duration::from_secs(60),
            max_retry_after: Duration::from_secs(120),
        }
    }
}

impl RetryPolicy {
    /// No retries.
    pub fn none() -> Self {
        Self {
            max_retries: 0,
            ..Self::default()
        }
    }

    /// The back-off before retry `n` (1-based).
    fn backoff(&self, n: u32) -> Duration {
        let factor = 2u32.saturating_pow(n.saturating_sub(1));
        self.initial_delay
            .saturating_mul(factor)
            .min(self.max_delay)
    }
}

/// The ids of one ARM request: the one sent, and those ARM answered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestIds {
    /// `x-ms-client-request-id` (sent).
    pub client: String,
    /// `x-ms-request-id` (answered).
    pub request: Option<String>,
    /// `x-ms-correlation-request-id` (answered).
    pub correlation: Option<String>,
}

impl fmt::Display for RequestIds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "x-ms-client-request-id {}", self.client)?;
        if let Some(r) = &self.request {
            write!(f, ", x-ms-request-id {r}")?;
        }
        if let Some(c) = &self.correlation {
            write!(f, ", x-ms-correlation-request-id {c}")?;
        }
        Ok(())
    }
}

/// An answer and the ids of the request that got it.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) response: http::Response<Bytes>,
    pub(crate) ids: RequestIds,
}

/// Reads `Retry-After` (delta seconds; an HTTP date counts as "unknown").
pub(crate) fn retry_after(headers: &http::HeaderMap) -> Option<Duration> {
    headers
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// Whether an answer is one the policy tries again.
fn transient(response: &http::Response<Bytes>) -> bool {
    let status = response.status();
    RETRY_STATUS.contains(&status.as_u16())
        || (!status.is_success() && response.headers().contains_key(header::RETRY_AFTER))
}

/// A random (version 4) GUID, for `x-ms-client-request-id`.
pub(crate) fn new_request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn header_value(response: &http::Response<Bytes>, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

impl ArmClient {
    /// Sends one request with the retry policy; `deadline` bounds the waits between tries.
    pub(crate) async fn send(
        &self,
        method: Method,
        url: &Url,
        body: Option<Bytes>,
        deadline: Option<Instant>,
    ) -> Result<Answer, AcrError> {
        let client_id = new_request_id();
        let mut retries = 0;
        loop {
            let token = self.bearer().await?;
            let mut builder = http::Request::builder()
                .method(method.clone())
                .uri(url.as_str())
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .header(header::ACCEPT, "application/json")
                .header(CLIENT_REQUEST_ID, client_id.as_str());
            if body.is_some() {
                builder = builder.header(header::CONTENT_TYPE, "application/json");
            }
            let request = builder
                .body(body.clone().unwrap_or_default())
                .map_err(|e| AcrError::Http {
                    url: redact(url),
                    message: e.to_string(),
                    client_request_id: client_id.clone(),
                })?;
            let wait = match self.http.exchange(request).await {
                Ok(response) => {
                    self.observe_throttle(&response);
                    let after = retry_after(response.headers());
                    if !transient(&response) || retries >= self.retry.max_retries {
                        let ids = RequestIds {
                            client: client_id,
                            request: header_value(&response, REQUEST_ID),
                            correlation: header_value(&response, CORRELATION_REQUEST_ID),
                        };
                        return Ok(Answer { response, ids });
                    }
                    let wait = match after {
                        Some(a) if deadline.is_none() && a > self.retry.max_retry_after => {
                            return Ok(self.give_up(response, client_id, "Retry-After too long"));
                        }
                        Some(a) => a,
                        None => self.retry.backoff(retries + 1),
                    };
                    if deadline.is_some_and(|d| Instant::now() + wait >= d) {
                        return Ok(self.give_up(response, client_id, "past the deadline"));
                    }
                    tracing::debug!(
                        status = response.status().as_u16(),
                        %method,
                        url = %redact(url),
                        "ARM answered a transient status; retrying in {wait:?}"
                    );
                    wait
                }
                // No answer: a GET is tried again; a POST may have arrived, so it is not.
                Err(e) if method == Method::GET && retries < self.retry.max_retries => {
                    let wait = self.retry.backoff(retries + 1);
                    if deadline.is_some_and(|d| Instant::now() + wait >= d) {
                        return Err(self.http_error(url, &e.to_string(), &client_id));
                    }
                    tracing::debug!(url = %redact(url), "no answer from ARM ({e}); retrying in {wait:?}");
                    wait
                }
                Err(e) => return Err(self.http_error(url, &e.to_string(), &client_id)),
            };
            retries += 1;
            tokio::time::sleep(wait).await;
        }
    }

    fn give_up(&self, response: http::Response<Bytes>, client: String, why: &str) -> Answer {
        tracing::debug!(
            status = response.status().as_u16(),
            "not retrying the ARM request: {why}"
        );
        let ids = RequestIds {
            client,
            request: header_value(&response, REQUEST_ID),
            correlation: header_value(&response, CORRELATION_REQUEST_ID),
        };
        Answer { response, ids }
    }

    fn http_error(&self, url: &Url, message: &str, client_id: &str) -> AcrError {
        AcrError::Http {
            url: redact(url),
            message: message.to_owned(),
            client_request_id: client_id.to_owned(),
        }
    }

    /// A request whose answer must be a success; `operation` names it in the error.
    pub(crate) async fn send_ok(
        &self,
        operation: &str,
        method: Method,
        url: &Url,
        body: Option<Bytes>,
        deadline: Option<Instant>,
    ) -> Result<Answer, AcrError> {
        let answer = self.send(method, url, body, deadline).await?;
        if answer.response.status().is_success() {
            Ok(answer)
        } else {
            Err(super::errors::arm_error(
                operation,
                &answer.response,
                &answer.ids,
            ))
        }
    }
}

/// `StatusCode` of an answer, for matching.
pub(crate) fn status(answer: &Answer) -> StatusCode {
    answer.response.status()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = RetryPolicy::default();
        assert_eq!(p.backoff(1), Duration::from_millis(800));
        assert_eq!(p.backoff(2), Duration::from_millis(1600));
        assert_eq!(p.backoff(3), Duration::from_millis(3200));
        assert_eq!(p.backoff(30), Duration::from_secs(60));
        assert_eq!(RetryPolicy::none().max_retries, 0);
    }

    #[test]
    fn request_ids_are_guids_and_print_what_was_answered() {
        let a = new_request_id();
        let b = new_request_id();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        let ids = RequestIds {
            client: a.clone(),
            request: None,
            correlation: Some("k".into()),
        };
        assert_eq!(
            ids.to_string(),
            format!("x-ms-client-request-id {a}, x-ms-correlation-request-id k")
        );
    }

    #[test]
    fn transient_answers() {
        let r = |status: u16, retry_after: bool| {
            let mut b = http::Response::builder().status(status);
            if retry_after {
                b = b.header("retry-after", "1");
            }
            b.body(Bytes::new()).unwrap()
        };
        for s in RETRY_STATUS {
            assert!(transient(&r(s, false)), "{s}");
        }
        for s in [400, 401, 403, 404, 409, 501] {
            assert!(!transient(&r(s, false)), "{s}");
        }
        assert!(transient(&r(409, true)));
        assert!(
            !transient(&r(202, true)),
            "a 202 with Retry-After is progress"
        );
    }
}
