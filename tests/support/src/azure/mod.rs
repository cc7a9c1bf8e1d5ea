//! A local Azure emulator: Azure AD (Entra ID) token endpoints and an Azure Container Registry
//! login server in front of a real distribution registry.
//!
//! Both follow the documented contracts strictly and decide nothing for the client: a request
//! that Azure would refuse is refused, with Azure's error shape.
//!
//! # [`AadEmulator`]
//!
//! HTTPS on `127.0.0.1:0` with a test CA made by rcgen ([`AadEmulator::ca_pem`],
//! [`AadEmulator::write_ca_file`]; the leaf certificate names `127.0.0.1` and `localhost`).
//!
//! `POST /{tenant}/oauth2/v2.0/token`, form-encoded, `grant_type=client_credentials`,
//! `client_id`, `scope` (exactly one, ending with `/.default`, whose resource is one of
//! [`ARM_AUDIENCE`], [`ARM_AUDIENCE_LEGACY`] or [`ACR_AUDIENCE`]) and one client credential:
//!
//! - `client_secret` for applications registered with [`AadEmulatorBuilder::client_secret`];
//! - `client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer` (RFC 7523,
//!   the value Azure AD and azure_identity use) with `client_assertion`:
//!   - for [`AadEmulatorBuilder::client_certificate`] applications, an RS256 JWT whose header
//!     names the registered certificate (`x5t` = base64url SHA-1 of its DER, or `x5t#S256`;
//!     at least one, and each present must match), signed by the certificate's key, with
//!     `aud` = this token endpoint's URL, `iss` = `sub` = the client ID, `exp` in the future,
//!     `nbf` not in the future (5 minutes of skew), and a `jti`;
//!   - for [`AadEmulatorBuilder::federated`] applications (workload identity), the assertion
//!     is compared verbatim with the registered federated token: the emulator plays the role
//!     of the external issuer whose token Azure AD would validate.
//!
//! Errors are Azure AD's JSON (`{"error":"invalid_client","error_description":"AADSTS7000215:
//! …","error_codes":[7000215],…}`): unknown tenant (400 `invalid_request`, AADSTS90002),
//! unknown client or client of another tenant (400 `unauthorized_client`, AADSTS700016), wrong
//! secret (401 `invalid_client`, AADSTS7000215), bad assertion (401 `invalid_client`,
//! AADSTS700027 / AADSTS700024 / AADSTS70021), scope without `/.default` (400 `invalid_scope`,
//! AADSTS1002012), unknown resource (400 `invalid_resource`, AADSTS500011).
//!
//! Access tokens are ES256 JWTs signed by a key of the emulator's own
//! ([`AadEmulator::verify_access_token`]) with `aud` (the resource, e.g.
//! `https://management.azure.com`), `iss`, `tid`, `oid`, `sub`, `appid`, `azp`, `iat`, `nbf`,
//! `exp`; the response carries `token_type`, `expires_in` and `ext_expires_in`.
//! [`AadEmulator::set_token_lifetime`] makes later tokens short-lived or already expired.
//!
//! azure_identity 1.0 requests nothing else from the authority (no OpenID discovery, no
//! instance discovery: its credentials post straight to the token endpoint), so nothing else
//! is served: any other path is a 404.
//!
//! The App Service managed-identity endpoint ([`AadEmulatorBuilder::managed_identity`]) is
//! plain http on its own port ([`AadEmulator::identity_endpoint`]): `GET /msi/token?
//! api-version=2019-08-01&resource=<resource>[&client_id=…]` with `X-IDENTITY-HEADER`, answered
//! `{"access_token","expires_on":"<epoch seconds>","resource","token_type":"Bearer",
//! "client_id"}`.
//!
//! # [`AcrEmulator`]
//!
//! One loopback port is the login server `127.0.0.1:<port>`: `/oauth2/exchange` and
//! `/oauth2/token` are its token service; everything else is forwarded to a real distribution
//! registry started with token auth (realm `http://127.0.0.1:<port>/oauth2/token`, service =
//! the login server, issuer [`ACR_ISSUER`]) that verifies the tokens this service signs.
//!
//! - `POST /oauth2/exchange` (form `grant_type=access_token`, `service`, optional `tenant`,
//!   `access_token`): the Azure AD token must verify against the [`AadEmulator`]'s key, be
//!   unexpired, have an ARM audience (unless [`AcrEmulatorBuilder::authentication_as_arm`] is
//!   off, [`AcrEmulator::set_authentication_as_arm`]) or the ACR audience, and `tid` = the
//!   registry's tenant; its `oid` must hold a role assignment that reaches the registry's data
//!   ([`Rbac`], shared with an ARM emulator; [`AcrRole`] is a shorthand). Answer:
//!   `{"refresh_token": <JWT, grant_type "refresh_token", exp>}`.
//!   Refusals are 401 with `{"errors":[{"code":"UNAUTHORIZED","message":…}]}`.
//! - `/oauth2/token`: `POST` with `grant_type=refresh_token` (an exchanged refresh token) or
//!   `grant_type=password` (`username`, `password`), or `GET` with `Authorization: Basic`.
//!   Usernames: a service principal's appId with its client secret (its tenant must be the
//!   registry's), the admin user, a repository-scoped token with its scope map, or the null GUID
//!   with a refresh token as password. Access granted = requested ∩ allowed, where an Azure AD
//!   principal is allowed what its role assignments give on each repository (the registry's
//!   ABAC mode and repository conditions included, see [`Rbac`]); the response is
//!   `{"access_token": <JWT>}` with no `expires_in` (as ACR); claims `iss` = [`ACR_ISSUER`],
//!   `aud` = login server, `sub`, `tenant`, `grant_type`, `access`, `exp`. Wrong credentials:
//!   401.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::rbac::{Rbac, RepositoryCondition, RoleDefinition};
use crate::registry::{Registry, TokenAuthSettings};
use crate::serve::{FormRequest, ServerTask, serve_http1_with};
use crate::token::{Access, Grant, TokenIssuer, intersect};
use crate::util::{parse_form, random_guid as guid, random_hex, unix_now};

/// The Azure Resource Manager audience.
pub const ARM_AUDIENCE: &str = "https://management.azure.com";
/// The older ARM audience, still accepted by ACR.
pub const ARM_AUDIENCE_LEGACY: &str = "https://management.core.windows.net";
/// The Azure Container Registry audience.
pub const ACR_AUDIENCE: &str = "https://containerregistry.azure.net";
/// The `iss` of ACR's tokens (and the registry's `auth.token.issuer`).
pub const ACR_ISSUER: &str = "Azure Container Registry";
/// The client assertion type of RFC 7523, as Azure AD requires it.
pub const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// The username ACR reads as "the password is a refresh token".
pub const NULL_GUID: &str = "00000000-0000-0000-0000-000000000000";

/// Allowed clock skew for assertion `nbf`.
pub(super) const SKEW_SECS: i64 = 300;

pub(super) const TEST_RSA_KEY_1: &str = include_str!("../testdata/client-rsa-key-1.pem");
pub(super) const TEST_RSA_KEY_2: &str = include_str!("../testdata/client-rsa-key-2.pem");

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

// ---------------------------------------------------------------------------------------------
// TLS
// ---------------------------------------------------------------------------------------------

/// A CA and a server certificate for `127.0.0.1` / `localhost` signed by it.
pub(super) struct TestTls {
    ca_pem: String,
    config: Arc<rustls::ServerConfig>,
}

pub(super) fn test_tls() -> anyhow::Result<TestTls> {
    let ca_key = rcgen::KeyPair::generate().context("CA key")?;
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    ca_params.distinguished_name.push(
        rcgen::DnType::CommonName,
        "acr-import test CA (Azure emulator)",
    );
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).context("CA cert")?;

    let leaf_key = rcgen::KeyPair::generate().context("leaf key")?;
    let mut leaf_params = rcgen::CertificateParams::new(vec!["localhost".to_string()])?;
    leaf_params
        .subject_alt_names
        .push(rcgen::SanType::IpAddress("127.0.0.1".parse()?));
    leaf_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "127.0.0.1");
    leaf_params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let leaf = leaf_params.signed_by(&leaf_key, &ca).context("leaf cert")?;

    let chain = vec![leaf.der().clone(), ca.der().clone()];
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into());
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TestTls {
        ca_pem: ca.pem(),
        config: Arc::new(config),
    })
}

/// A JSON response, as Azure sends it.
pub(super) fn json_response(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    crate::serve::json_response(status, body, "application/json; charset=utf-8")
}

mod aad;
mod acr;
mod acr_data;
mod acr_service;
mod certs;

use aad::*;
use acr_service::*;
use certs::*;

pub use aad::{AadEmulator, AadEmulatorBuilder, AadRequest, AadTokenVerifier};
pub use acr::{AcrEmulator, AcrEmulatorBuilder, AcrHandle, AcrRequest, AcrRole};
pub use certs::TestClientCertificate;
