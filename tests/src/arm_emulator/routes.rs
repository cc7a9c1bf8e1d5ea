//! The HTTP side of the ARM emulator: TLS, the request log and ids, api-versions, bearer
//! tokens, and the read operations (subscriptions, registries, permissions).

use std::sync::Arc;

use acr_import_testsupport::{ARM_AUDIENCE, ARM_AUDIENCE_LEGACY, FormRequest};
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use serde_json::{Value, json};

use super::{
    ArmRegistry, ArmRequest, PERMISSIONS_API_VERSION, SUBSCRIPTIONS_API_VERSION, State,
    Subscription, guid, lock,
};

/// The read action on registries.
pub(super) const REGISTRY_READ: &str = "Microsoft.ContainerRegistry/registries/read";
/// The action the permissions API needs.
const PERMISSIONS_READ: &str = "Microsoft.Authorization/permissions/read";

/// Status, JSON body (`Null`: none) and extra headers.
pub(super) type Reply = (StatusCode, Value, Vec<(&'static str, String)>);

/// ARM's error answer.
pub(super) fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Reply {
    (
        status,
        json!({"error": {"code": code, "message": message.into()}}),
        Vec::new(),
    )
}

/// ARM's `401 InvalidAuthenticationTokenTenant`: the token's tenant is not the resource's.
pub(super) fn wrong_tenant(message: impl Into<String>) -> Reply {
    error(
        StatusCode::UNAUTHORIZED,
        "InvalidAuthenticationTokenTenant",
        message,
    )
}

pub(super) fn query_param(query: &str, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// One request, read whole.
pub(super) struct Req {
    pub(super) method: Method,
    pub(super) path: String,
    /// The path's segments, as sent.
    pub(super) segments: Vec<String>,
    /// The path's segments, lowercased for matching (ARM paths ignore case).
    pub(super) lower: Vec<String>,
    pub(super) query: String,
    pub(super) api_version: Option<String>,
    pub(super) auth: Option<String>,
    pub(super) content_type: Option<String>,
    pub(super) body: Bytes,
}

pub(super) async fn handle(state: Arc<State>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let req = FormRequest::read(req).await;
    let header = |name: &str| req.header(name).map(str::to_owned);
    let client_request_id = header("x-ms-client-request-id");
    let segments: Vec<String> = req
        .path
        .trim_start_matches('/')
        .split('/')
        .map(str::to_owned)
        .collect();
    let r = Req {
        lower: segments.iter().map(|s| s.to_ascii_lowercase()).collect(),
        segments,
        api_version: query_param(&req.query, "api-version"),
        auth: header("authorization"),
        content_type: header("content-type"),
        method: req.method,
        path: req.path,
        query: req.query,
        body: req.body,
    };
    let (status, value, headers) = route(&state, &r).await;
    lock(&state.log).push(ArmRequest {
        method: r.method.to_string(),
        path: r.path,
        api_version: r.api_version,
        client_request_id,
        status: status.as_u16(),
        code: value["error"]["code"].as_str().map(str::to_owned),
        at: std::time::Instant::now(),
    });
    let bytes = if value.is_null() {
        Bytes::new()
    } else {
        Bytes::from(value.to_string())
    };
    let mut resp = Response::new(Full::new(bytes));
    *resp.status_mut() = status;
    let fixed = [
        ("content-type", "application/json; charset=utf-8".to_owned()),
        ("x-ms-request-id", guid()),
        ("x-ms-correlation-request-id", guid()),
    ];
    for (k, v) in fixed.into_iter().chain(headers) {
        if let Ok(v) = header::HeaderValue::from_str(&v) {
            resp.headers_mut().insert(k, v);
        }
    }
    resp
}

/// The caller: object ID and tenant.
pub(super) struct Caller {
    pub(super) oid: String,
    pub(super) tid: String,
}

fn authenticate(state: &State, auth: Option<&str>) -> Result<Caller, Reply> {
    let Some(token) = auth.and_then(|a| a.strip_prefix("Bearer ")) else {
        return Err(error(
            StatusCode::UNAUTHORIZED,
            "AuthenticationFailed",
            "Authentication failed. The 'Authorization' header is missing.",
        ));
    };
    let claims = state.verifier.verify(token).map_err(|e| {
        error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            format!("The access token is invalid: {e}"),
        )
    })?;
    let aud = claims["aud"]
        .as_str()
        .unwrap_or_default()
        .trim_end_matches('/');
    if aud != ARM_AUDIENCE && aud != ARM_AUDIENCE_LEGACY {
        return Err(error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationTokenAudience",
            format!("The access token has been obtained for wrong audience or resource '{aud}'."),
        ));
    }
    Ok(Caller {
        oid: claims["oid"].as_str().unwrap_or_default().to_owned(),
        tid: claims["tid"].as_str().unwrap_or_default().to_owned(),
    })
}

impl State {
    pub(super) fn subscription(&self, id: &str) -> Option<&Subscription> {
        self.subscriptions
            .iter()
            .find(|s| s.id.eq_ignore_ascii_case(id))
    }

    pub(super) fn check_subscription(&self, caller: &Caller, id: &str) -> Result<(), Reply> {
        let Some(sub) = self.subscription(id) else {
            return Err(error(
                StatusCode::NOT_FOUND,
                "SubscriptionNotFound",
                format!("The subscription '{id}' could not be found."),
            ));
        };
        if !sub.tenant.eq_ignore_ascii_case(&caller.tid) {
            return Err(wrong_tenant(format!(
                "The access token is from the wrong issuer. It must match the tenant associated with subscription '{id}'."
            )));
        }
        Ok(())
    }

    /// Whether `scope`'s subscription is in the caller's tenant (assignments of other tenants
    /// never apply).
    fn same_tenant(&self, caller: &Caller, scope: &str) -> bool {
        let sub = scope.split('/').nth(2).unwrap_or_default();
        self.subscription(sub)
            .is_some_and(|s| s.tenant.eq_ignore_ascii_case(&caller.tid))
    }

    /// Whether the caller may perform `action` at `scope`.
    pub(super) fn allows(&self, caller: &Caller, scope: &str, action: &str) -> bool {
        self.same_tenant(caller, scope) && self.rbac.allows_action(&caller.oid, scope, action)
    }

    pub(super) fn registry_by_id(&self, sub: &str, rg: &str, name: &str) -> Option<ArmRegistry> {
        lock(&self.registries)
            .iter()
            .find(|r| {
                r.subscription.eq_ignore_ascii_case(sub)
                    && r.resource_group.eq_ignore_ascii_case(rg)
                    && r.name.eq_ignore_ascii_case(name)
            })
            .cloned()
    }

    pub(super) fn registry_by_login_server(&self, host: &str) -> Option<ArmRegistry> {
        lock(&self.registries)
            .iter()
            .find(|r| r.login_server.eq_ignore_ascii_case(host))
            .cloned()
    }
}

/// The api-version a path needs.
fn wanted_api_version<'a>(state: &'a State, lower: &[String]) -> &'a str {
    if lower == ["subscriptions"] {
        SUBSCRIPTIONS_API_VERSION
    } else if lower.len() >= 2
        && lower[lower.len() - 2] == "microsoft.authorization"
        && lower[lower.len() - 1] == "permissions"
    {
        PERMISSIONS_API_VERSION
    } else {
        state.api_version.as_str()
    }
}

async fn route(state: &Arc<State>, r: &Req) -> Reply {
    let wanted = wanted_api_version(state, &r.lower);
    match r.api_version.as_deref() {
        None => {
            return error(
                StatusCode::BAD_REQUEST,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            );
        }
        Some(v) if v != wanted => {
            return error(
                StatusCode::BAD_REQUEST,
                "InvalidApiVersionParameter",
                format!("The api-version '{v}' is invalid. The supported versions are '{wanted}'."),
            );
        }
        _ => {}
    }
    let caller = match authenticate(state, r.auth.as_deref()) {
        Ok(c) => c,
        Err(reply) => return reply,
    };
    let l: Vec<&str> = r.lower.iter().map(String::as_str).collect();
    let s = &r.segments;
    const CR: &str = "microsoft.containerregistry";
    match (&r.method, l.as_slice()) {
        (&Method::GET, ["subscriptions"]) => subscriptions(state, &caller),
        (&Method::GET, ["subscriptions", _, "providers", CR, "registries"]) => {
            list_registries(state, &caller, &s[1], &r.path, &r.query)
        }
        (
            &Method::GET,
            [
                "subscriptions",
                _,
                "resourcegroups",
                _,
                "providers",
                CR,
                "registries",
                _,
            ],
        ) => get_registry(state, &caller, &s[1], &s[3], &s[7]),
        (&Method::GET, [.., "providers", "microsoft.authorization", "permissions"]) => {
            permissions(state, &caller, &s[..s.len() - 3].join("/"))
        }
        (
            &Method::POST,
            [
                "subscriptions",
                _,
                "resourcegroups",
                _,
                "providers",
                CR,
                "registries",
                _,
                "importimage",
            ],
        ) => super::import::import_image(state, &caller, &s[1], &s[3], &s[7], r),
        (
            &Method::GET,
            [
                "subscriptions",
                _,
                "providers",
                CR,
                "locations",
                _,
                "operationresults",
                _,
            ],
        ) => super::operations::poll(state, &caller, &s[7]),
        (
            &Method::GET,
            [
                "subscriptions",
                _,
                "providers",
                CR,
                "locations",
                _,
                "operationstatuses",
                _,
            ],
        ) => super::operations::status_monitor(state, &caller, &s[7]),
        _ => error(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!(
                "No HTTP resource was found that matches {} {}.",
                r.method, r.path
            ),
        ),
    }
}

fn subscriptions(state: &State, caller: &Caller) -> Reply {
    let value: Vec<Value> = state
        .subscriptions
        .iter()
        .filter(|s| s.tenant.eq_ignore_ascii_case(&caller.tid))
        .filter(|s| {
            state
                .rbac
                .has_any_under(&caller.oid, &format!("/subscriptions/{}", s.id))
        })
        .map(|s| {
            json!({"id": format!("/subscriptions/{}", s.id), "subscriptionId": s.id, "tenantId": s.tenant,
                   "displayName": s.name, "state": "Enabled"})
        })
        .collect();
    (StatusCode::OK, json!({ "value": value }), Vec::new())
}

fn list_registries(state: &State, caller: &Caller, sub: &str, path: &str, query: &str) -> Reply {
    if let Err(r) = state.check_subscription(caller, sub) {
        return r;
    }
    let readable: Vec<Value> = lock(&state.registries)
        .iter()
        .filter(|r| r.subscription.eq_ignore_ascii_case(sub))
        .filter(|r| state.allows(caller, &r.id(), REGISTRY_READ))
        .map(ArmRegistry::to_json)
        .collect();
    let skip: usize = query_param(query, "$skipToken")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let page: Vec<Value> = readable
        .iter()
        .skip(skip)
        .take(state.page_size)
        .cloned()
        .collect();
    let mut out = json!({ "value": page });
    if skip + state.page_size < readable.len() {
        out["nextLink"] = json!(format!(
            "{}{path}?api-version={}&$skipToken={}",
            lock(&state.endpoint),
            state.api_version,
            skip + state.page_size
        ));
    }
    (StatusCode::OK, out, Vec::new())
}

pub(super) fn not_found(rg: &str, name: &str) -> Reply {
    error(
        StatusCode::NOT_FOUND,
        "ResourceNotFound",
        format!(
            "The Resource 'Microsoft.ContainerRegistry/registries/{name}' under resource group '{rg}' was not found."
        ),
    )
}

/// ARM's 403 for an action the caller may not perform.
pub(super) fn forbidden(caller: &Caller, action: &str, scope: &str) -> Reply {
    error(
        StatusCode::FORBIDDEN,
        "AuthorizationFailed",
        format!(
            "The client with object id '{}' does not have authorization to perform action '{action}' over scope '{scope}' or the scope is invalid.",
            caller.oid
        ),
    )
}

fn get_registry(state: &State, caller: &Caller, sub: &str, rg: &str, name: &str) -> Reply {
    if let Err(r) = state.check_subscription(caller, sub) {
        return r;
    }
    let Some(reg) = state.registry_by_id(sub, rg, name) else {
        return not_found(rg, name);
    };
    if !state.allows(caller, &reg.id(), REGISTRY_READ) {
        return forbidden(caller, REGISTRY_READ, &reg.id());
    }
    (StatusCode::OK, reg.to_json(), Vec::new())
}

/// `GET {scope}/providers/Microsoft.Authorization/permissions`: the caller's own permissions,
/// one entry per role assignment that applies at `scope`.
fn permissions(state: &State, caller: &Caller, scope: &str) -> Reply {
    let scope = format!("/{scope}");
    let parts: Vec<&str> = scope.split('/').collect();
    if parts.len() < 3 || !parts[1].eq_ignore_ascii_case("subscriptions") {
        return error(
            StatusCode::BAD_REQUEST,
            "InvalidScope",
            format!("The scope '{scope}' is not a valid scope."),
        );
    }
    if let Err(r) = state.check_subscription(caller, parts[2]) {
        return r;
    }
    // A registry scope must name a registry that exists.
    if parts.len() == 9 && state.registry_by_id(parts[2], parts[4], parts[8]).is_none() {
        return not_found(parts[4], parts[8]);
    }
    if state.rbac.denies(&caller.oid, &scope, PERMISSIONS_READ) {
        return forbidden(caller, PERMISSIONS_READ, &scope);
    }
    let value = state.rbac.permissions(&caller.oid, &scope);
    (StatusCode::OK, json!({ "value": value }), Vec::new())
}
