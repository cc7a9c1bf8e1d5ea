//! ARM error answers (`{error:{code,message,details}}`, the `ErrorResponse` of the ARM common
//! types) as [`AcrError::Arm`]: which side of an import failed, and what to do next.
//!
//! `importImage` reports every failure as `Operation registries-<guid> failed. Resource <target
//! id> <detail>`, naming the target even when the source failed; the detail is what tells the
//! sides apart. The texts matched here are those users reported and the reference collects
//! (`UNAUTHORIZED` / `DENIED` from the source registry, `Unable to find manifest`, the RFC 7233
//! range failures, the linked-scope authorization text, NoForce conflicts).

use bytes::Bytes;

use super::RequestIds;
use crate::{AcrError, ArmContext, Side};

/// Turns an ARM error response into an [`AcrError::Arm`].
pub(crate) fn arm_error(
    operation: &str,
    response: &http::Response<Bytes>,
    ids: &RequestIds,
) -> AcrError {
    #[derive(serde::Deserialize, Default)]
    struct Body {
        #[serde(default)]
        error: Option<Detail>,
    }
    let status = response.status().as_u16();
    let parsed: Body = serde_json::from_slice(response.body()).unwrap_or_default();
    match parsed.error {
        Some(detail) => error_from_detail(operation, status, detail, ids),
        None => {
            let message: String = String::from_utf8_lossy(response.body())
                .chars()
                .take(500)
                .collect();
            build(
                operation,
                status,
                format!("HTTP{status}"),
                message,
                Vec::new(),
                ids,
            )
        }
    }
}

/// One `error` object (of an error answer, or of a failed operation's status body).
#[derive(serde::Deserialize, Default, Debug)]
pub(crate) struct Detail {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    details: Vec<Detail>,
}

/// An [`AcrError::Arm`] from an `error` object.
pub(crate) fn error_from_detail(
    operation: &str,
    status: u16,
    d: Detail,
    ids: &RequestIds,
) -> AcrError {
    let details = d
        .details
        .into_iter()
        .map(|x| format!("{}: {}", x.code, x.message))
        .collect();
    build(operation, status, d.code, d.message, details, ids)
}

fn build(
    operation: &str,
    status: u16,
    code: String,
    message: String,
    details: Vec<String>,
    ids: &RequestIds,
) -> AcrError {
    let (side, hint) = classify(status, &code, &message, &details);
    AcrError::Arm {
        operation: operation.to_owned(),
        status,
        code,
        message,
        side,
        hint,
        context: Box::new(ArmContext {
            details,
            registry: None,
            ids: ids.clone(),
        }),
    }
}

/// An ARM error as the classification rules read it.
struct Facts<'a> {
    status: u16,
    code: &'a str,
    /// Code, message and details, lowercase.
    text: String,
}

impl Facts<'_> {
    /// Whether the text holds any of `words`.
    fn has(&self, words: &[&str]) -> bool {
        words.iter().any(|w| self.text.contains(w))
    }
}

/// A classification rule: when it applies, the side the error is about, and what to do next.
type Rule = (fn(&Facts) -> bool, Side, &'static str);

/// The rules, in order: the first that applies decides.
const RULES: &[Rule] = &[
    (
        |f| f.has(&["linked scope"]),
        Side::Source,
        "you need read access to the source registry as well (ARM's linked-scope check): assign yourself Reader (or Container Registry Data Importer and Data Reader) on the source",
    ),
    (
        |f| f.code.starts_with("InvalidAuthenticationToken") || f.status == 401,
        Side::Unknown,
        "Azure Resource Manager did not accept the token: check AZURE_TENANT_ID / the signed-in account, and that the subscription belongs to that tenant",
    ),
    (
        |f| f.code == "AuthorizationFailed",
        Side::Target,
        "you need Microsoft.ContainerRegistry/registries/importImage/action on the target: role Container Registry Data Importer and Data Reader, or Contributor",
    ),
    (
        |f| {
            f.has(&["already exists"])
                || f.code.eq_ignore_ascii_case("Conflict")
                || f.code == "TagAlreadyExists"
        },
        Side::Target,
        "a target tag already exists and the import ran in NoForce mode: pass --force to move it",
    ),
    (
        |f| {
            f.has(&["imports are only supported for managed registries"])
                || f.code == "ImportNotSupported"
        },
        Side::Target,
        "the target's SKU cannot import: upgrade it (az acr update -n <target> --sku Standard)",
    ),
    (
        |f| f.has(&["quota"]),
        Side::Target,
        "the target registry is out of storage or another quota: free space or raise the SKU",
    ),
    (
        |f| f.has(&["exportpolicy", "export policy"]),
        Side::Source,
        "the source's export policy is disabled: az acr update -n <source> --allow-exports true",
    ),
    (
        |f| f.has(&["toomanyrequests", "rate limit"]),
        Side::Source,
        "the source registry rate-limited the import service (Docker Hub counts anonymous pulls): pass credentials for it with --username/--password",
    ),
    (
        |f| {
            f.has(&[
                "network rules",
                "not allowed access",
                "public network access",
            ])
        },
        Side::Unknown,
        "a registry's firewall refused the import service: allow trusted services on it (az acr update -n <registry> --allow-trusted-services true), and name a source with public access disabled by resource ID",
    ),
    (
        |f| f.has(&["unauthorized", "denied", "forbidden"]),
        Side::Source,
        "the service could not pull from the source: name an Azure source with --registry (Azure AD), or pass its credentials with --username/--password; Docker Hub official images need the library/ prefix",
    ),
    (
        |f| {
            f.has(&[
                "unable to find manifest",
                "manifest_unknown",
                "name_unknown",
                "not found in source",
            ])
        },
        Side::Source,
        "the source image does not exist: check the repository, tag or digest",
    ),
    (
        |f| {
            f.has(&[
                "rfc 7233",
                "unexpected length of body",
                "error copying blobs",
                "docker-content-digest",
            ])
        },
        Side::Source,
        "the source registry does not serve what the import service needs (Range requests, digests): retry, or use --mode client",
    ),
    (
        |f| f.code == "ResourceNotFound" || f.status == 404,
        Side::Unknown,
        "check the registry name, resource group and --subscription",
    ),
    (
        |f| f.code == "InvalidParameters" || f.code == "InvalidRequestContent" || f.status == 400,
        Side::Unknown,
        "check --source, --image and --repository",
    ),
    (
        |f| f.status == 429 || f.status >= 500,
        Side::Unknown,
        "the service is busy or failing: retry later (give Azure support the request ids below)",
    ),
];

/// Which side an ARM error is about, and what to do next.
pub fn classify(status: u16, code: &str, message: &str, details: &[String]) -> (Side, String) {
    let facts = Facts {
        status,
        code,
        text: format!("{code} {message} {}", details.join(" ")).to_ascii_lowercase(),
    };
    RULES
        .iter()
        .find(|(applies, ..)| applies(&facts))
        .map_or((Side::Unknown, String::new()), |(_, side, hint)| {
            (*side, (*hint).to_owned())
        })
}

impl AcrError {
    /// Names the registry an `importImage` failure is about: the source's or the target's, by
    /// the side the error was classified to, or — for a firewall refusal, whose side is not in
    /// the code — by which login server the message names. Other errors are returned as they
    /// are.
    pub fn with_import_registries(
        mut self,
        target: (&str, &str),
        source: Option<(&str, &str)>,
    ) -> AcrError {
        if let AcrError::Arm {
            message,
            side,
            context,
            ..
        } = &mut self
            && context.registry.is_none()
        {
            let mentions = |login_server: &str| {
                !login_server.is_empty()
                    && message
                        .to_ascii_lowercase()
                        .contains(&format!("access to {}", login_server.to_ascii_lowercase()))
            };
            *side = match (*side, source) {
                (Side::Unknown, Some((_, ls))) if mentions(ls) => Side::Source,
                (Side::Unknown, _) if mentions(target.1) => Side::Target,
                (s, _) => s,
            };
            context.registry = match side {
                Side::Target => Some(target.0.to_owned()),
                Side::Source => source.map(|(name, _)| name.to_owned()),
                Side::Unknown => None,
            };
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_classification() {
        let cases: &[(u16, &str, &str, Side, &str)] = &[
            (
                403,
                "AuthorizationFailed",
                "The client 'x' with object id 'y' has permission to perform action 'Microsoft.ContainerRegistry/registries/importImage/action' on scope 't'; however, it does not have permission to perform action 'read' on the linked scope(s) 's'",
                Side::Source,
                "Reader",
            ),
            (
                403,
                "AuthorizationFailed",
                "does not have authorization to perform action 'Microsoft.ContainerRegistry/registries/importImage/action'",
                Side::Target,
                "Data Importer",
            ),
            (
                409,
                "Conflict",
                "Tag app:v1 already exists in target registry",
                Side::Target,
                "--force",
            ),
            (
                400,
                "InvalidParameters",
                "Operation registries-1 failed. Resource /x Invalid message Unauthorized Unauthorized {\"errors\":[{\"code\":\"UNAUTHORIZED\"}]}",
                Side::Source,
                "library/",
            ),
            (
                400,
                "InvalidParameters",
                "Unable to find manifest digest Repo: app Tag: nope",
                Side::Source,
                "does not exist",
            ),
            (
                400,
                "InvalidParameters",
                "Error copying blobs",
                Side::Source,
                "--mode client",
            ),
            (
                400,
                "InvalidParameters",
                "Invalid message TooManyRequests {\"errors\":[{\"code\":\"TOOMANYREQUESTS\"}]}",
                Side::Source,
                "--username",
            ),
            (
                400,
                "ImportNotSupported",
                "Imports are only supported for managed registries.",
                Side::Target,
                "--sku",
            ),
            (
                401,
                "InvalidAuthenticationTokenTenant",
                "wrong issuer",
                Side::Unknown,
                "tenant",
            ),
            (
                404,
                "ResourceNotFound",
                "not found",
                Side::Unknown,
                "--subscription",
            ),
            (400, "InvalidParameters", "bad", Side::Unknown, "--source"),
            (503, "ServiceUnavailable", "x", Side::Unknown, "retry"),
        ];
        for (status, code, message, side, hint) in cases {
            let (s, h) = classify(*status, code, message, &[]);
            assert_eq!(s, *side, "{code}: {message}");
            assert!(h.contains(hint), "{code}: {h}");
        }
    }

    fn error(status: u16, body: &str) -> AcrError {
        let response = http::Response::builder()
            .status(status)
            .body(Bytes::from(body.to_owned()))
            .unwrap();
        let ids = RequestIds {
            client: "c1".into(),
            request: Some("r1".into()),
            correlation: Some("k1".into()),
        };
        arm_error("importImage", &response, &ids)
    }

    #[test]
    fn failures_name_the_side_registry_operation_code_and_ids() {
        let e = error(
            400,
            r#"{"error":{"code":"InvalidParameters","message":"Operation registries-1 failed. Resource /t Unable to find manifest digest Repo: app Tag: v9"}}"#,
        )
        .with_import_registries(
            ("targetreg", "targetreg.azurecr.io"),
            Some(("sourcereg", "sourcereg.azurecr.io")),
        );
        let text = e.to_string();
        for want in [
            "importImage failed on the source side (sourcereg)",
            "HTTP 400 InvalidParameters",
            "does not exist",
            "x-ms-client-request-id c1",
            "x-ms-request-id r1",
            "x-ms-correlation-request-id k1",
        ] {
            assert!(text.contains(want), "{want}: {text}");
        }
        // A firewall refusal names the registry whose login server the message names.
        let e = error(
            400,
            r#"{"error":{"code":"InvalidParameters","message":"Access to sourcereg.azurecr.io denied: the source registry's network rules do not allow trusted services."}}"#,
        )
        .with_import_registries(
            ("targetreg", "targetreg.azurecr.io"),
            Some(("sourcereg", "sourcereg.azurecr.io")),
        );
        assert!(
            e.to_string().contains("on the source side (sourcereg)"),
            "{e}"
        );
        let e = error(
            400,
            r#"{"error":{"code":"InvalidParameters","message":"Access to targetreg.azurecr.io denied: client is not allowed access by the registry's network rules"}}"#,
        )
        .with_import_registries(("targetreg", "targetreg.azurecr.io"), None);
        assert!(
            e.to_string().contains("on the target side (targetreg)"),
            "{e}"
        );
        // Without a JSON error: the status is the code.
        let e = error(502, "<html>bad gateway</html>");
        assert!(e.to_string().contains("HTTP 502 HTTP502"), "{e}");
    }
}
