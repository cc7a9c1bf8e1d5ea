//! The ACR token service: `/oauth2/exchange`, `/oauth2/token`, and the request router.

use super::*;

use super::acr::*;
use super::acr_data::*;

pub(super) async fn acr_handle(state: &AcrState, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    if *lock(&state.firewall) && !path.starts_with("/oauth2/") {
        // ACR's answer to a client outside its network rules, before any credential check.
        return acr_error(
            StatusCode::FORBIDDEN,
            "DENIED",
            "client with IP '127.0.0.1' is not allowed access. Refer https://aka.ms/acr/firewall to grant access.",
        );
    }
    let listing = path.strip_prefix("/acr/v1/").and_then(|p| {
        p.strip_suffix("/_manifests")
            .map(|r| (r, Listing::Manifests))
            .or_else(|| p.strip_suffix("/_tags").map(|r| (r, Listing::Tags)))
    });
    if let Some((repo, listing)) = listing {
        let response = acr_metadata(state, &req, repo, listing).await;
        lock(&state.log).push(AcrRequest::other(req.method(), &path, &response));
        return response;
    }
    if path != "/oauth2/exchange" && path != "/oauth2/token" {
        let method = req.method().clone();
        let response = forward(state.upstream, req).await;
        lock(&state.log).push(AcrRequest::other(&method, &path, &response));
        return response;
    }
    let req = FormRequest::read(req).await;
    let (method, params) = (&req.method, &req.params);
    let get = |k: &str| req.param(k).map(str::to_owned);
    let mut record = AcrRequest {
        method: method.to_string(),
        path: path.clone(),
        grant_type: get("grant_type"),
        service: get("service"),
        username: get("username"),
        requested: req.scopes(),
        granted: Vec::new(),
        subject: None,
        status: 0,
        error: None,
    };
    let result = if path == "/oauth2/exchange" {
        exchange(state, method, params, &mut record)
    } else {
        let auth = req.header(header::AUTHORIZATION);
        token(state, method, auth, params, &mut record)
    };
    let response = match result {
        Ok(body) => json_response(StatusCode::OK, &body),
        Err((status, code, message)) => {
            record.error = Some(message.clone());
            acr_error(status, code, &message)
        }
    };
    record.status = response.status().as_u16();
    lock(&state.log).push(record);
    response
}

pub(super) type AcrResult = Result<Value, (StatusCode, &'static str, String)>;

pub(super) fn unauthorized(message: String) -> (StatusCode, &'static str, String) {
    (StatusCode::UNAUTHORIZED, "UNAUTHORIZED", message)
}

pub(super) fn exchange(
    state: &AcrState,
    method: &Method,
    params: &[(String, String)],
    record: &mut AcrRequest,
) -> AcrResult {
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    if *method != Method::POST {
        return Err((
            StatusCode::METHOD_NOT_ALLOWED,
            "UNSUPPORTED",
            "use POST".into(),
        ));
    }
    match get("grant_type") {
        Some("access_token") => {}
        other => {
            return Err((
                StatusCode::BAD_REQUEST,
                "UNSUPPORTED_GRANT_TYPE",
                format!("grant type {other:?} is not supported: use access_token"),
            ));
        }
    }
    if get("service") != Some(state.login_server.as_str()) {
        return Err((
            StatusCode::BAD_REQUEST,
            "INVALID_SERVICE",
            format!("service must be {}", state.login_server),
        ));
    }
    let Some(token) = get("access_token") else {
        return Err((
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST",
            "access_token is required".into(),
        ));
    };
    let claims = state
        .aad
        .signer
        .verify_signature(token)
        .map_err(|_| unauthorized("the Azure AD token's signature is invalid".into()))?;
    if claims["exp"].as_i64().is_none_or(|exp| exp <= unix_now()) {
        return Err(unauthorized("the Azure AD token has expired".into()));
    }
    let aud = claims["aud"]
        .as_str()
        .unwrap_or_default()
        .trim_end_matches('/');
    let arm = aud == ARM_AUDIENCE || aud == ARM_AUDIENCE_LEGACY;
    if !(aud == ACR_AUDIENCE || (arm && *lock(&state.arm_audience))) {
        return Err(unauthorized(format!(
            "the Azure AD token's audience {aud} is not accepted by this registry{}",
            if arm {
                " (authentication as ARM is disabled: use https://containerregistry.azure.net)"
            } else {
                ""
            }
        )));
    }
    let tid = claims["tid"].as_str().unwrap_or_default();
    if tid != state.tenant {
        return Err(unauthorized(format!(
            "the Azure AD token is from tenant {tid}, not the registry's tenant"
        )));
    }
    if let Some(t) = get("tenant")
        && t != state.tenant
    {
        return Err(unauthorized(format!(
            "tenant {t} is not the registry's tenant"
        )));
    }
    let oid = claims["oid"].as_str().unwrap_or_default().to_string();
    record.subject = Some(oid.clone());
    if !state.rbac.has_data_access(&oid, &state.scope()) {
        return Err(unauthorized(format!(
            "the principal {oid} has no role assignment on registry {} that reaches its data",
            state.login_server
        )));
    }
    let refresh = refresh_token_for(state, &oid)
        .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", e.to_string()))?;
    Ok(json!({ "refresh_token": refresh }))
}

/// Who is asking, and what they may do.
pub(super) struct Caller {
    pub(super) subject: String,
    pub(super) rights: Rights,
    pub(super) grant_type: &'static str,
}

pub(super) fn caller_from_password(
    state: &AcrState,
    user: &str,
    pass: &str,
) -> Result<Caller, String> {
    if user == NULL_GUID {
        return caller_from_refresh(state, pass);
    }
    if let Some((admin, password)) = &state.admin
        && admin == user
    {
        return if password == pass {
            Ok(Caller {
                subject: user.to_string(),
                rights: Rights::Fixed(everything()),
                grant_type: "password",
            })
        } else {
            Err("invalid username or password".into())
        };
    }
    if let Some(token) = state.tokens.get(user) {
        return if token.password == pass {
            Ok(Caller {
                subject: user.to_string(),
                rights: Rights::Fixed(token.grants.clone()),
                grant_type: "password",
            })
        } else {
            Err("invalid username or password".into())
        };
    }
    let app = state.aad.apps.iter().find(|a| {
        a.client_id == user && matches!(&a.credential, AppCredential::Secret(s) if s == pass)
    });
    let Some(app) = app else {
        return Err("invalid username or password".into());
    };
    if app.tenant != state.tenant {
        return Err(format!(
            "service principal {user} is from another tenant than the registry"
        ));
    }
    if !state.rbac.has_data_access(&app.object_id, &state.scope()) {
        return Err(format!(
            "service principal {user} has no role assignment on the registry"
        ));
    }
    Ok(Caller {
        subject: app.object_id.clone(),
        rights: Rights::Principal(app.object_id.clone()),
        grant_type: "password",
    })
}

pub(super) fn caller_from_refresh(state: &AcrState, refresh: &str) -> Result<Caller, String> {
    let claims = state
        .issuer
        .verify(refresh)
        .map_err(|_| "invalid or expired refresh token".to_string())?;
    if claims["grant_type"] != "refresh_token" || claims["aud"] != state.login_server.as_str() {
        return Err("the token is not a refresh token of this registry".into());
    }
    let oid = claims["sub"].as_str().unwrap_or_default().to_string();
    if !state.rbac.has_data_access(&oid, &state.scope()) {
        return Err(format!("the principal {oid} has no role assignment"));
    }
    Ok(Caller {
        subject: oid.clone(),
        rights: Rights::Principal(oid),
        grant_type: "refresh_token",
    })
}

pub(super) fn parse_basic(value: &str) -> Option<(String, String)> {
    let (scheme, rest) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(rest.trim()).ok()?).ok()?;
    let (u, p) = decoded.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

pub(super) fn token(
    state: &AcrState,
    method: &Method,
    auth: Option<&str>,
    params: &[(String, String)],
    record: &mut AcrRequest,
) -> AcrResult {
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    match get("service") {
        Some(s) if s == state.login_server => {}
        other => {
            return Err((
                StatusCode::BAD_REQUEST,
                "INVALID_SERVICE",
                format!("service {other:?} is not {}", state.login_server),
            ));
        }
    }
    let caller = if *method == Method::GET {
        match auth {
            Some(a) => {
                let (user, pass) = parse_basic(a)
                    .ok_or_else(|| unauthorized("use Basic authentication".into()))?;
                record.username = Some(user.clone());
                caller_from_password(state, &user, &pass).map_err(unauthorized)?
            }
            None if state.anonymous_pull => Caller {
                subject: String::new(),
                rights: Rights::Fixed(vec![Grant::pull_all()]),
                grant_type: "anonymous",
            },
            None => return Err(unauthorized("authentication required".into())),
        }
    } else if *method == Method::POST {
        match get("grant_type") {
            Some("refresh_token") => {
                let refresh = get("refresh_token").ok_or_else(|| {
                    (
                        StatusCode::BAD_REQUEST,
                        "INVALID_REQUEST",
                        "refresh_token is required".to_string(),
                    )
                })?;
                caller_from_refresh(state, refresh).map_err(unauthorized)?
            }
            Some("password") => {
                let (Some(user), Some(pass)) = (get("username"), get("password")) else {
                    return Err((
                        StatusCode::BAD_REQUEST,
                        "INVALID_REQUEST",
                        "username and password are required".into(),
                    ));
                };
                caller_from_password(state, user, pass).map_err(unauthorized)?
            }
            other => {
                return Err((
                    StatusCode::BAD_REQUEST,
                    "UNSUPPORTED_GRANT_TYPE",
                    format!("grant type {other:?} is not supported"),
                ));
            }
        }
    } else {
        return Err((
            StatusCode::METHOD_NOT_ALLOWED,
            "UNSUPPORTED",
            "use GET or POST".into(),
        ));
    };
    let granted = intersect(
        &record.requested,
        &caller.rights.grants(state, &record.requested),
    );
    let mut claims = state
        .issuer
        .claims(&caller.subject, &granted, state.access_lifetime);
    claims["tenant"] = json!(state.tenant);
    claims["grant_type"] = json!(caller.grant_type);
    let token = state
        .issuer
        .sign_claims(&claims)
        .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", e.to_string()))?;
    record.subject = Some(caller.subject);
    record.granted = granted;
    Ok(json!({ "access_token": token }))
}
