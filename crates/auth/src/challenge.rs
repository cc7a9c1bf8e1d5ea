//! `WWW-Authenticate` challenges (RFC 7235 §4.1, RFC 6750 §3).
//!
//! Registries answer an unauthenticated request with `401` and one or more challenges:
//! `Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="…"` or
//! `Basic realm="Registry Realm"`. This module reads them without I/O: the RFC 7235 syntax is
//! `http-auth`'s parser, the choice of challenge and its parameters are ours.

use std::collections::BTreeMap;

use crate::AuthError;

/// The authentication scheme a registry asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// `Basic`: send the username and password with every request.
    Basic {
        /// The realm, informational only.
        realm: Option<String>,
    },
    /// `Bearer`: get a token from `realm` and send it.
    Bearer(BearerChallenge),
}

/// The parameters of a `Bearer` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BearerChallenge {
    /// The token endpoint.
    pub realm: String,
    /// The `service` the token is for (passed back to the realm).
    pub service: Option<String>,
    /// The scope the registry says the request needs (space-separated scopes).
    pub scope: Option<String>,
    /// The RFC 6750 `error` code, such as `insufficient_scope` or `invalid_token`.
    pub error: Option<String>,
}

/// A scheme and its parameters (names lowercased), as one challenge of a header.
pub type RawChallenge = (String, BTreeMap<String, String>);

/// Longest header this parser looks at; anything longer is refused as malformed.
const MAX_HEADER: usize = 8 * 1024;

/// Parses every challenge in one header value (RFC 7235 syntax, with `http-auth`).
///
/// Unknown schemes are kept (the caller skips them); an empty result means the header holds
/// none. A header that is not a challenge list is [`AuthError::MalformedChallenge`], except
/// that one offering only schemes this crate does not answer (`Negotiate <token68>`, which
/// the RFC 7235 parameter syntax does not cover) is [`AuthError::UnsupportedChallenge`].
pub fn parse_all(header: &str) -> Result<Vec<RawChallenge>, AuthError> {
    if header.len() > MAX_HEADER {
        return Err(malformed(header, "header is longer than 8 KiB"));
    }
    let challenges = http_auth::parse_challenges(header).map_err(|e| {
        let supported = header
            .split(|c: char| c == ',' || c.is_ascii_whitespace())
            .any(|word| word.eq_ignore_ascii_case("bearer") || word.eq_ignore_ascii_case("basic"));
        if supported {
            // The parser's message is "<what> at byte <n>: <the header, marked>"; the header
            // is shown once already.
            let text = e.to_string();
            malformed(header, text.split(": ").next().unwrap_or(&text))
        } else {
            AuthError::UnsupportedChallenge {
                schemes: header
                    .split_whitespace()
                    .next()
                    .unwrap_or("none")
                    .to_owned(),
            }
        }
    })?;
    Ok(challenges
        .into_iter()
        .map(|c| {
            let params = c
                .params
                .iter()
                .map(|(name, value)| (name.to_ascii_lowercase(), value.to_unescaped()))
                .collect();
            (c.scheme.to_owned(), params)
        })
        .collect())
}

/// Picks the challenge to answer from all `WWW-Authenticate` values of a response: `Bearer`
/// before `Basic`.
pub fn select<'a>(headers: impl IntoIterator<Item = &'a str>) -> Result<Challenge, AuthError> {
    let mut basic = None;
    let mut seen = Vec::new();
    for header in headers {
        for (scheme, params) in parse_all(header)? {
            if scheme.eq_ignore_ascii_case("bearer") {
                let realm = params
                    .get("realm")
                    .filter(|r| !r.is_empty())
                    .ok_or_else(|| malformed(header, "Bearer challenge without a realm"))?;
                return Ok(Challenge::Bearer(BearerChallenge {
                    realm: realm.clone(),
                    service: params.get("service").cloned(),
                    scope: params.get("scope").cloned(),
                    error: params.get("error").cloned(),
                }));
            }
            if scheme.eq_ignore_ascii_case("basic") {
                basic = Some(Challenge::Basic {
                    realm: params.get("realm").cloned(),
                });
            }
            seen.push(scheme);
        }
    }
    basic.ok_or_else(|| AuthError::UnsupportedChallenge {
        schemes: if seen.is_empty() {
            "none".to_owned()
        } else {
            seen.join(", ")
        },
    })
}

fn malformed(header: &str, reason: &str) -> AuthError {
    let mut shown: String = header.chars().take(200).collect();
    if shown.len() < header.len() {
        shown.push('…');
    }
    AuthError::MalformedChallenge {
        header: shown,
        reason: reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bearer(h: &str) -> BearerChallenge {
        match select([h]).unwrap() {
            Challenge::Bearer(b) => b,
            other => panic!("expected bearer, got {other:?}"),
        }
    }

    #[test]
    fn docker_hub_challenge() {
        let b = bearer(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull""#,
        );
        assert_eq!(b.realm, "https://auth.docker.io/token");
        assert_eq!(b.service.as_deref(), Some("registry.docker.io"));
        assert_eq!(b.scope.as_deref(), Some("repository:library/nginx:pull"));
    }

    #[test]
    fn insufficient_scope_and_spaces() {
        let b = bearer(
            r#"Bearer realm = "https://r.example/oauth2/token" , service="r.example", scope="repository:a:pull,push repository:b:pull", error="insufficient_scope""#,
        );
        assert_eq!(b.error.as_deref(), Some("insufficient_scope"));
        assert_eq!(
            b.scope.as_deref(),
            Some("repository:a:pull,push repository:b:pull")
        );
    }

    #[test]
    fn escaped_quotes() {
        let b = bearer(r#"Bearer realm="https://x/\"t\"""#);
        assert_eq!(b.realm, r#"https://x/"t""#);
    }

    #[test]
    fn bearer_preferred_over_basic_in_one_header() {
        let c = select([r#"Basic realm="x", Bearer realm="https://t/token",service="s""#]).unwrap();
        assert!(matches!(c, Challenge::Bearer(b) if b.realm == "https://t/token"));
    }

    #[test]
    fn bearer_preferred_over_basic_across_headers() {
        let c = select([
            r#"Basic realm="Registry Realm""#,
            r#"Bearer realm="https://t""#,
        ])
        .unwrap();
        assert!(matches!(c, Challenge::Bearer(_)));
        let c = select([r#"Basic realm="Registry Realm""#]).unwrap();
        assert_eq!(
            c,
            Challenge::Basic {
                realm: Some("Registry Realm".into())
            }
        );
    }

    #[test]
    fn bad_input_is_a_typed_error() {
        assert!(matches!(
            select([r#"Bearer service="x""#]),
            Err(AuthError::MalformedChallenge { .. })
        ));
        assert!(matches!(
            select([r#"Bearer realm="unterminated"#]),
            Err(AuthError::MalformedChallenge { .. })
        ));
        assert!(matches!(
            select(["Negotiate abc"]),
            Err(AuthError::UnsupportedChallenge { .. })
        ));
        assert!(matches!(
            select([""]),
            Err(AuthError::UnsupportedChallenge { .. })
        ));
        // RFC 7235 wants a URL quoted: a token cannot hold `:` or `/`.
        assert!(matches!(
            select(["Bearer realm=https://t/token"]),
            Err(AuthError::MalformedChallenge { .. })
        ));
    }

    #[test]
    fn unknown_schemes_next_to_known_ones_are_skipped() {
        let c = select([r#"Negotiate, Basic realm="r""#]).unwrap();
        assert_eq!(
            c,
            Challenge::Basic {
                realm: Some("r".into())
            }
        );
        let all = parse_all(r#"NTLM, Bearer REALM="https://t", Service=s"#).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[1].1.get("realm").map(String::as_str), Some("https://t"));
        assert_eq!(all[1].1.get("service").map(String::as_str), Some("s"));
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in ".{0,300}") {
            let _ = select([s.as_str()]);
        }

        #[test]
        fn never_panics_on_challenge_like_input(
            s in r#"(Bearer|Basic|bearer)? ?((realm|service|scope|error)=("[^"]{0,20}"?|[a-z:/]{0,10}),? ?){0,5}"#
        ) {
            let _ = select([s.as_str()]);
        }

        #[test]
        fn quoted_values_round_trip(realm in r#"[ -~]{1,40}"#, service in "[a-z.]{1,20}") {
            let escaped = realm.replace('\\', "\\\\").replace('"', "\\\"");
            let header = format!(r#"Bearer realm="{escaped}",service="{service}""#);
            let b = bearer(&header);
            proptest::prop_assert_eq!(b.realm, realm);
            proptest::prop_assert_eq!(b.service, Some(service));
        }
    }
}
