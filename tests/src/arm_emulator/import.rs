//! `importImage`: the body, the authorization checks, the operation, and the import itself,
//! performed for real with acr-import-transfer.

use std::sync::Arc;
use std::time::Duration;

use acr_import_auth::{Credential, NULL_GUID_USERNAME, Secret, StaticCredentials};
use acr_import_reference::{Repository, RepositoryReference, Tag, TagOrDigest};
use acr_import_transfer::{
    Copier, CopyOptions, Endpoint, RetryPolicy, Source, Target, TransferError, Transport,
};
use http::StatusCode;
use serde_json::Value;

use super::operations::{OpStatus, Operation};
use super::routes::{Caller, REGISTRY_READ, Reply, Req, error, forbidden, not_found};
use super::{ArmRegistry, State, WriteBudget, guid, lock};

/// The action `importImage` needs on the target.
const IMPORT_IMAGE: &str = "Microsoft.ContainerRegistry/registries/importImage/action";

/// The parsed, validated body.
pub(super) struct ImportBody {
    source_image: String,
    resource_id: Option<String>,
    registry_uri: Option<String>,
    credentials: Option<(Option<String>, String)>,
    target_tags: Vec<String>,
    untagged: Vec<String>,
    force: bool,
}

fn invalid(message: impl Into<String>) -> Reply {
    error(StatusCode::BAD_REQUEST, "InvalidRequestContent", message)
}

/// ARM's refusal of a member the type does not have.
fn only_members(
    obj: &serde_json::Map<String, Value>,
    allowed: &[&str],
    type_name: &str,
) -> Result<(), Reply> {
    match obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(invalid(format!(
            "Could not find member '{k}' on object of type '{type_name}'."
        ))),
        None => Ok(()),
    }
}

/// `value` as an object of `type_name` with no member outside `allowed`; `missing` when it is
/// absent or no object.
fn object_of<'a>(
    value: Option<&'a Value>,
    missing: &str,
    allowed: &[&str],
    type_name: &str,
) -> Result<&'a serde_json::Map<String, Value>, Reply> {
    let obj = value
        .and_then(Value::as_object)
        .ok_or_else(|| invalid(missing))?;
    only_members(obj, allowed, type_name)?;
    Ok(obj)
}

/// The string member `key` of `obj`, when given.
fn string_member(obj: &serde_json::Map<String, Value>, key: &str) -> Option<String> {
    obj.get(key).and_then(Value::as_str).map(str::to_owned)
}

/// ARM's `400 InvalidParameters`.
fn invalid_parameters(message: impl Into<String>) -> Reply {
    error(StatusCode::BAD_REQUEST, "InvalidParameters", message)
}

pub(super) fn parse_body(value: &Value) -> Result<ImportBody, Reply> {
    let obj = object_of(
        Some(value),
        "The request content is not a JSON object.",
        &["source", "targetTags", "untaggedTargetRepositories", "mode"],
        "ImportImageParameters",
    )?;
    let source = object_of(
        obj.get("source"),
        "The 'source' field is required.",
        &["sourceImage", "resourceId", "registryUri", "credentials"],
        "ImportSource",
    )?;
    let Some(source_image) = source.get("sourceImage").and_then(Value::as_str) else {
        return Err(invalid("The 'source.sourceImage' field is required."));
    };
    if source_image.parse::<RepositoryReference>().is_err() {
        return Err(invalid_parameters(format!(
            "The source image '{source_image}' is invalid."
        )));
    }
    let resource_id = string_member(source, "resourceId");
    let registry_uri = string_member(source, "registryUri");
    if resource_id.is_some() == registry_uri.is_some() {
        return Err(invalid_parameters(
            "Exactly one of 'source.resourceId' and 'source.registryUri' must be given.",
        ));
    }
    let credentials = match source.get("credentials") {
        None | Some(Value::Null) => None,
        Some(c) => {
            if resource_id.is_some() {
                return Err(invalid_parameters(
                    "'source.credentials' can only be used with 'source.registryUri'.",
                ));
            }
            let Some(password) = c.get("password").and_then(Value::as_str) else {
                return Err(invalid(
                    "The 'source.credentials.password' field is required.",
                ));
            };
            Some((
                c.get("username").and_then(Value::as_str).map(str::to_owned),
                password.to_owned(),
            ))
        }
    };
    let strings = |k: &str| -> Result<Vec<String>, Reply> {
        match obj.get(k) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| invalid(format!("'{k}' must be a list of strings.")))
                })
                .collect(),
            Some(_) => Err(invalid(format!("'{k}' must be a list of strings."))),
        }
    };
    let target_tags = strings("targetTags")?;
    let untagged = strings("untaggedTargetRepositories")?;
    let force = match obj.get("mode").and_then(Value::as_str) {
        None | Some("NoForce") => false,
        Some("Force") => true,
        Some(other) => {
            return Err(invalid(format!(
                "Requested value '{other}' was not found for 'mode' (Force, NoForce)."
            )));
        }
    };
    Ok(ImportBody {
        source_image: source_image.to_owned(),
        resource_id,
        registry_uri,
        credentials,
        target_tags,
        untagged,
        force,
    })
}

/// ARM's throttling answer: `429 TooManyRequests` with `Retry-After: retry_after` (seconds).
fn too_many_requests(message: &str, retry_after: String) -> Reply {
    let mut reply = error(StatusCode::TOO_MANY_REQUESTS, "TooManyRequests", message);
    reply.2.push(("retry-after", retry_after));
    reply
}

/// `POST …/importImage`: validates, authorizes, starts the operation.
pub(super) fn import_image(
    state: &Arc<State>,
    caller: &Caller,
    sub: &str,
    rg: &str,
    name: &str,
    r: &Req,
) -> Reply {
    let value: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    lock(&state.bodies).push(value.clone());
    {
        // ARM's throttling answers before the request reaches the service: nothing starts.
        let mut faults = lock(&state.faults);
        if faults.throttled_imports.0 > 0 {
            faults.throttled_imports.0 -= 1;
            return too_many_requests(
                "The request is being throttled (injected).",
                faults.throttled_imports.1.to_string(),
            );
        }
    }
    let left = match lock(&state.faults).writes.as_mut().map(WriteBudget::take) {
        None => None,
        Some(Ok(left)) => Some(left),
        Some(Err(wait)) => {
            let mut reply = too_many_requests(
                "The request is being throttled as the limit has been reached for operation type - Write.",
                wait.as_secs_f64().ceil().max(1.0).to_string(),
            );
            reply.2.push((
                "x-ms-ratelimit-remaining-subscription-writes",
                "0".to_owned(),
            ));
            return reply;
        }
    };
    let mut reply = authorized_import(state, caller, sub, rg, name, r, &value);
    if let Some(left) = left {
        reply.2.push((
            "x-ms-ratelimit-remaining-subscription-writes",
            left.to_string(),
        ));
    }
    if reply.0 == StatusCode::ACCEPTED {
        let mut o = lock(&state.outstanding);
        o.0 += 1;
        o.1 = o.1.max(o.0);
    }
    reply
}

/// `importImage` past ARM's throttling: checks, authorization, then the operation.
fn authorized_import(
    state: &Arc<State>,
    caller: &Caller,
    sub: &str,
    rg: &str,
    name: &str,
    r: &Req,
    value: &Value,
) -> Reply {
    if let Err(reply) = state.check_subscription(caller, sub) {
        return reply;
    }
    if !r
        .content_type
        .as_deref()
        .is_some_and(|c| c.starts_with("application/json"))
    {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            "The content media type is not supported: use application/json.",
        );
    }
    let Some(target) = state.registry_by_id(sub, rg, name) else {
        return not_found(rg, name);
    };
    if !state.allows(caller, &target.id(), IMPORT_IMAGE) {
        return forbidden(caller, IMPORT_IMAGE, &target.id());
    }
    let parsed = match parse_body(value) {
        Ok(b) => b,
        Err(reply) => return reply,
    };
    if !["basic", "standard", "premium"].contains(&target.sku.to_ascii_lowercase().as_str()) {
        return error(
            StatusCode::BAD_REQUEST,
            "ImportNotSupported",
            "Imports are only supported for managed registries.",
        );
    }
    let source_registry = match &parsed.resource_id {
        Some(id) => match linked_source(state, caller, &target, id) {
            Ok(found) => found,
            Err(reply) => return reply,
        },
        None => None,
    };
    start(state, caller, sub, target, source_registry, parsed)
}

/// The linked-scope check of a `resourceId` source: the caller must be able to read it.
fn linked_source(
    state: &State,
    caller: &Caller,
    target: &ArmRegistry,
    id: &str,
) -> Result<Option<ArmRegistry>, Reply> {
    let parts: Vec<&str> = id.trim_start_matches('/').split('/').collect();
    let found = (parts.len() == 8 && parts[6].eq_ignore_ascii_case("registries"))
        .then(|| state.registry_by_id(parts[1], parts[3], parts[7]))
        .flatten();
    let readable = found
        .as_ref()
        .is_some_and(|r| state.allows(caller, &r.id(), REGISTRY_READ));
    if !readable {
        return Err(error(
            StatusCode::FORBIDDEN,
            "AuthorizationFailed",
            format!(
                "The client with object id '{}' has permission to perform action '{IMPORT_IMAGE}' on scope '{}'; however, it does not have permission to perform action 'read' on the linked scope(s) '{id}' or the linked scope(s) are invalid.",
                caller.oid,
                target.id()
            ),
        ));
    }
    Ok(found)
}

/// Creates the operation, answers `202`, and runs the import in the background.
fn start(
    state: &Arc<State>,
    caller: &Caller,
    sub: &str,
    target: ArmRegistry,
    source_registry: Option<ArmRegistry>,
    parsed: ImportBody,
) -> Reply {
    let op = format!("registries-{}", guid());
    lock(&state.operations).insert(
        op.clone(),
        Operation {
            tenant: caller.tid.clone(),
            status: OpStatus::Running,
            polls: 0,
            manifests: Vec::new(),
            reported: false,
        },
    );
    let base = format!(
        "{}/subscriptions/{sub}/providers/Microsoft.ContainerRegistry/locations/{}",
        lock(&state.endpoint),
        target.location.to_ascii_uppercase(),
    );
    let location = format!(
        "{base}/operationResults/{op}?api-version={}",
        state.api_version
    );
    let source_tenant = source_registry.as_ref().and_then(|r| {
        state
            .subscription(&r.subscription)
            .map(|s| s.tenant.clone())
    });
    let cross_tenant = source_tenant.is_some_and(|t| !t.eq_ignore_ascii_case(&caller.tid));
    // The service reads the source on the caller's behalf: the caller's pull on the
    // repository (conditions included) decides, when the import runs.
    let caller_may_pull = source_registry.as_ref().is_none_or(|s| {
        let repo = parsed
            .source_image
            .parse::<RepositoryReference>()
            .map(|r| r.repository().to_string())
            .unwrap_or_default();
        state
            .rbac
            .allows_repository(&caller.oid, &s.id(), &repo, "pull")
    });
    let task_state = state.clone();
    let op_id = op.clone();
    // The copy engine's futures are not `Send` for every lifetime, so the operation runs on a
    // thread of its own with its own runtime, as the service runs it apart from ARM.
    std::thread::spawn(move || {
        let result = if !caller_may_pull {
            Err(unauthorized_pull(&parsed.source_image))
        } else {
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt.block_on(perform(
                    &task_state,
                    &op_id,
                    &target,
                    source_registry.as_ref(),
                    cross_tenant,
                    &parsed,
                )),
                Err(e) => Err(fail("InternalServerError", e.to_string())),
            }
        };
        finish(&task_state, &op_id, &target, result);
    });
    let retry = *lock(&state.retry_after);
    let mut headers = vec![("location", location), ("retry-after", retry.to_string())];
    if *lock(&state.async_operation_header) {
        headers.push((
            "azure-asyncoperation",
            format!(
                "{base}/operationStatuses/{op}?api-version={}",
                state.api_version
            ),
        ));
    }
    (StatusCode::ACCEPTED, Value::Null, headers)
}

/// Records how the operation ended.
fn finish(state: &State, op_id: &str, target: &ArmRegistry, result: Result<(), Failure>) {
    let mut ops = lock(&state.operations);
    if let Some(o) = ops.get_mut(op_id) {
        o.status = match result {
            Ok(()) => {
                for m in &mut o.manifests {
                    m.1 = "Succeeded".to_owned();
                }
                OpStatus::Succeeded
            }
            Err((code, detail)) => OpStatus::Failed {
                code,
                message: format!(
                    "Operation {op_id} failed. Resource {} {detail}",
                    target.id()
                ),
            },
        };
    }
}

type Failure = (String, String);

fn fail(code: &str, detail: impl Into<String>) -> Failure {
    (code.to_owned(), detail.into())
}

/// What the service reports when the source refuses it the pull.
fn unauthorized_pull(source_image: &str) -> Failure {
    let repo = source_image
        .split(['@', ':'])
        .next()
        .unwrap_or(source_image);
    fail(
        "InvalidParameters",
        format!(
            "Invalid message Unauthorized Unauthorized {{\"errors\":[{{\"code\":\"UNAUTHORIZED\",\"message\":\"authentication required\",\"detail\":[{{\"Type\":\"repository\",\"Name\":\"{repo}\",\"Action\":\"pull\"}}]}}]}}"
        ),
    )
}

pub(super) async fn perform(
    state: &Arc<State>,
    op: &str,
    target: &ArmRegistry,
    source_registry: Option<&ArmRegistry>,
    cross_tenant: bool,
    body: &ImportBody,
) -> Result<(), Failure> {
    if target.restricted() && !target.trusted_services {
        return Err(fail(
            "InvalidParameters",
            format!(
                "Access to {} denied: client is not allowed access by the registry's network rules (trusted services are not allowed).",
                target.login_server
            ),
        ));
    }
    let (source_host, source_credential) =
        source_endpoint(state, source_registry, cross_tenant, body)?;
    let mut credentials = StaticCredentials::new();
    if let Some(c) = &target.service_credential {
        credentials.insert(&target.login_server, c.clone());
    }
    if let Some(c) = source_credential {
        credentials.insert(&source_host, c);
    }
    let transport = Transport::builder()
        .credentials(Arc::new(credentials))
        .proxy_from_env(false)
        .retry(RetryPolicy::none())
        .connect_timeout(Duration::from_secs(5))
        .idle_timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| fail("InternalServerError", e.to_string()))?;
    let with_scheme = |h: &str| {
        let host = h.rsplit_once(':').map_or(h, |(a, _)| a);
        if acr_import_auth::is_loopback_host(host) {
            format!("http://{h}")
        } else {
            h.to_owned()
        }
    };
    let src_reg = transport
        .registry(&with_scheme(&source_host))
        .map_err(|e| fail("InvalidParameters", e.to_string()))?;
    let dst_reg = transport
        .registry(&with_scheme(&target.login_server))
        .map_err(|e| fail("InternalServerError", e.to_string()))?;
    let image: RepositoryReference = body
        .source_image
        .parse()
        .map_err(|_| fail("InvalidParameters", "invalid source image"))?;
    let invalid = |e: acr_import_reference::ReferenceError| fail("InvalidParameter", e.to_string());
    let repo = image.repository().clone();
    let source_tag = image.tag().cloned();
    let reference: TagOrDigest = match (image.digest(), &source_tag) {
        (Some(d), _) => d.clone().into(),
        (None, Some(t)) => t.clone().into(),
        (None, None) => Tag::latest().into(),
    };
    let head = src_reg
        .head_manifest(&repo, &reference)
        .await
        .map_err(|e| pull_failure(&e, repo.as_str(), reference.as_str()))?;
    let Some(head) = head else {
        return Err(fail(
            "InvalidParameters",
            format!("Unable to find manifest digest Repo: {repo} Tag: {reference}"),
        ));
    };
    let digest = head
        .digest
        .map_or_else(|| reference.to_string(), |d| d.to_string());
    if let Some(o) = lock(&state.operations).get_mut(op) {
        o.manifests = vec![(format!("{repo}@{digest}"), "Pending".to_owned())];
    }
    let default_tag = || source_tag.clone().unwrap_or_else(Tag::latest);
    let mut targets: Vec<(Repository, Option<Tag>)> = Vec::new();
    for t in &body.target_tags {
        let (r, tag) = match t.rsplit_once(':') {
            Some((r, tag)) if !tag.contains('/') => {
                (r.parse().map_err(invalid)?, tag.parse().map_err(invalid)?)
            }
            _ => (t.parse().map_err(invalid)?, default_tag()),
        };
        targets.push((r, Some(tag)));
    }
    for r in &body.untagged {
        targets.push((r.parse().map_err(invalid)?, None));
    }
    if targets.is_empty() {
        targets.push((repo.clone(), Some(default_tag())));
    }
    if !body.force {
        for (r, tag) in &targets {
            if let Some(tag) = tag
                && dst_reg
                    .head_manifest(r, &tag.clone().into())
                    .await
                    .map_err(|e| fail("InternalServerError", e.to_string()))?
                    .is_some()
            {
                return Err(fail(
                    "Conflict",
                    format!(
                        "Tag {r}:{tag} already exists in target registry (mode NoForce); use Force mode to overwrite it."
                    ),
                ));
            }
        }
    }
    let source = Source {
        endpoint: Endpoint::registry(src_reg, repo.clone()),
        reference: reference.clone(),
    };
    let mut endpoints = Vec::new();
    for (r, tag) in targets {
        endpoints.push(Target {
            endpoint: Endpoint::registry(dst_reg.clone(), r),
            tag,
        });
    }
    let targets = endpoints;
    let copier = Copier::new(CopyOptions {
        force: true,
        referrers: false,
        ..CopyOptions::default()
    });
    let report = copier
        .copy(&source, &targets)
        .await
        .map_err(|e| pull_failure(&e, repo.as_str(), reference.as_str()))?;
    if let Some(o) = lock(&state.operations).get_mut(op) {
        o.manifests = report
            .manifests
            .iter()
            .map(|m| (format!("{repo}@{}", m.digest), "Pending".to_owned()))
            .collect();
    }
    Ok(())
}

/// Where the service pulls from, and with which credential: the documented source rules first.
fn source_endpoint(
    state: &Arc<State>,
    source_registry: Option<&ArmRegistry>,
    cross_tenant: bool,
    body: &ImportBody,
) -> Result<(String, Option<Credential>), Failure> {
    Ok(match (source_registry, &body.registry_uri) {
        (Some(s), _) => {
            if s.restricted() && !s.trusted_services {
                return Err(fail(
                    "InvalidParameters",
                    format!(
                        "Access to {} denied: the source registry's network rules do not allow trusted services.",
                        s.login_server
                    ),
                ));
            }
            if !s.public_network_access && cross_tenant {
                return Err(fail(
                    "InvalidParameters",
                    format!(
                        "Access to {} denied: cross-tenant import from a registry with public network access disabled is not supported.",
                        s.login_server
                    ),
                ));
            }
            if !s.export_policy_enabled {
                return Err(fail(
                    "InvalidParameters",
                    format!(
                        "Access to {} denied: the export policy of the source registry is disabled.",
                        s.login_server
                    ),
                ));
            }
            (s.login_server.clone(), s.service_credential.clone())
        }
        (None, Some(uri)) => {
            if let Some(known) = state.registry_by_login_server(uri) {
                if !known.public_network_access {
                    return Err(fail(
                        "InvalidParameters",
                        format!(
                            "Access to {uri} denied: public network access is disabled; name the source by resource ID."
                        ),
                    ));
                }
                if !known.export_policy_enabled {
                    return Err(fail(
                        "InvalidParameters",
                        format!(
                            "Access to {uri} denied: the export policy of the source registry is disabled."
                        ),
                    ));
                }
            }
            let credential = body.credentials.as_ref().map(|(u, p)| {
                Credential::from_username_password(
                    u.clone().unwrap_or_else(|| NULL_GUID_USERNAME.to_owned()),
                    Secret::new(p.clone()),
                )
            });
            (uri.clone(), credential)
        }
        (None, None) => return Err(fail("InvalidParameters", "no source")),
    })
}

fn pull_failure(e: &TransferError, repo: &str, reference: &str) -> Failure {
    match e {
        TransferError::Unauthorized(_)
        | TransferError::Auth { .. }
        | TransferError::ScopeDenied { .. } => fail(
            "InvalidParameters",
            format!(
                "Invalid message Unauthorized Unauthorized {{\"errors\":[{{\"code\":\"UNAUTHORIZED\",\"message\":\"authentication required\",\"detail\":[{{\"Type\":\"repository\",\"Name\":\"{repo}\",\"Action\":\"pull\"}}]}}]}}"
            ),
        ),
        TransferError::Forbidden(_) => fail(
            "InvalidParameters",
            "Invalid message Forbidden Forbidden {\"errors\":[{\"code\":\"DENIED\"}]}",
        ),
        TransferError::NotFound(_) => fail(
            "InvalidParameters",
            format!("Unable to find manifest digest Repo: {repo} Tag: {reference}"),
        ),
        other => fail("InvalidParameters", format!("Error copying blobs: {other}")),
    }
}
