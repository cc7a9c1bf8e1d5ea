//! The operation an `importImage` starts, as its two URLs answer it: `Location` (the
//! operation's result: `202` while running, then `200` or an error) and, when the `202` named
//! one, the `Azure-AsyncOperation` status monitor (`200` with `{"status": "InProgress" |
//! "Succeeded" | "Failed", "error"?}`), per learn.microsoft.com/azure/azure-resource-manager/
//! management/async-operations.

use std::sync::Arc;

use http::StatusCode;
use serde_json::{Value, json};

use super::routes::{Caller, Reply, error, wrong_tenant};
use super::{State, lock};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum OpStatus {
    Running,
    Succeeded,
    Failed { code: String, message: String },
}

pub(super) struct Operation {
    pub(super) tenant: String,
    pub(super) status: OpStatus,
    pub(super) polls: usize,
    pub(super) manifests: Vec<(String, String)>,
    /// A poll has told the caller it ended.
    pub(super) reported: bool,
}

/// A fault injected in front of the operation, if one is due.
fn injected(state: &State) -> Option<Reply> {
    let mut faults = lock(&state.faults);
    if faults.polls.0 == 0 {
        return None;
    }
    faults.polls.0 -= 1;
    let status = StatusCode::from_u16(faults.polls.1).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let code = if status == StatusCode::TOO_MANY_REQUESTS {
        "TooManyRequests"
    } else {
        "ServiceUnavailable"
    };
    let mut reply = error(
        status,
        code,
        "The service is temporarily unavailable (injected).",
    );
    if status == StatusCode::TOO_MANY_REQUESTS {
        reply.2.push(("retry-after", "0".to_owned()));
    }
    Some(reply)
}

/// What the operation's state is at this poll; counts the poll.
enum Seen {
    Running(Value),
    Succeeded,
    Failed(String, String),
}

fn look(state: &State, caller: &Caller, op: &str) -> Result<Seen, Reply> {
    let needed = *lock(&state.polls_before_done);
    let stalled = *lock(&state.stalled);
    let mut ops = lock(&state.operations);
    let Some(o) = ops.get_mut(op) else {
        return Err(error(
            StatusCode::NOT_FOUND,
            "OperationNotFound",
            format!("The operation '{op}' was not found."),
        ));
    };
    if !o.tenant.eq_ignore_ascii_case(&caller.tid) {
        return Err(wrong_tenant("The access token is from the wrong issuer."));
    }
    let ended = !stalled && o.polls >= needed && o.status != OpStatus::Running;
    if ended && !o.reported {
        o.reported = true;
        let mut outstanding = lock(&state.outstanding);
        outstanding.0 = outstanding.0.saturating_sub(1);
    }
    Ok(match &o.status {
        OpStatus::Succeeded if !stalled && o.polls >= needed => Seen::Succeeded,
        OpStatus::Failed { code, message } if !stalled && o.polls >= needed => {
            Seen::Failed(code.clone(), message.clone())
        }
        status => {
            let succeeded = *status == OpStatus::Succeeded;
            o.polls += 1;
            let mut body = json!({"status": "Accepted"});
            for (m, s) in &o.manifests {
                body[m] = json!(if succeeded { "Succeeded" } else { s.as_str() });
            }
            Seen::Running(body)
        }
    })
}

/// `GET …/operationResults/{op}` (the `Location`).
pub(super) fn poll(state: &Arc<State>, caller: &Caller, op: &str) -> Reply {
    if let Some(reply) = injected(state) {
        return reply;
    }
    let retry = *lock(&state.retry_after);
    match look(state, caller, op) {
        Err(reply) => reply,
        Ok(Seen::Succeeded) => (StatusCode::OK, Value::Null, Vec::new()),
        Ok(Seen::Failed(code, message)) => error(StatusCode::BAD_REQUEST, &code, message),
        Ok(Seen::Running(body)) => {
            let mut faults = lock(&state.faults);
            if faults.nonterminal_200s.0 > 0 {
                // A front end that answers 200 before the operation is done: only the status
                // in the body says it is not.
                faults.nonterminal_200s.0 -= 1;
                let status = faults.nonterminal_200s.1.clone();
                return (
                    StatusCode::OK,
                    json!({ "status": status }),
                    vec![("retry-after", retry.to_string())],
                );
            }
            (
                StatusCode::ACCEPTED,
                body,
                vec![("retry-after", retry.to_string())],
            )
        }
    }
}

/// `GET …/operationStatuses/{op}` (the `Azure-AsyncOperation` status monitor).
pub(super) fn status_monitor(state: &Arc<State>, caller: &Caller, op: &str) -> Reply {
    if let Some(reply) = injected(state) {
        return reply;
    }
    let retry = *lock(&state.retry_after);
    let id = format!("{}/operationStatuses/{op}", lock(&state.endpoint));
    match look(state, caller, op) {
        Err(reply) => reply,
        Ok(Seen::Succeeded) => (
            StatusCode::OK,
            json!({"id": id, "name": op, "status": "Succeeded"}),
            Vec::new(),
        ),
        Ok(Seen::Failed(code, message)) => (
            StatusCode::OK,
            json!({"id": id, "name": op, "status": "Failed", "error": {"code": code, "message": message}}),
            Vec::new(),
        ),
        Ok(Seen::Running(progress)) => {
            let mut body = progress;
            body["status"] = json!("InProgress");
            body["id"] = json!(id);
            body["name"] = json!(op);
            (
                StatusCode::OK,
                body,
                vec![("retry-after", retry.to_string())],
            )
        }
    }
}
