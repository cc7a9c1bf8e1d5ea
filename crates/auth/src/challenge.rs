//! `WWW-Authenticate` challenges (RFC 7235 §4.1, RFC 6750 §3).
//!
//! Registries answer an unauthenticated request with `401` and one or more challenges:
//! `Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="…"` or
//! `Basic realm="Registry Realm"`. This module parses them without I/O.

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

/// Parses every challenge in one header value.
///
/// Unknown schemes are skipped; an empty result means none was understood.
pub fn parse_all(header: &str) -> Result<Vec<RawChallenge>, AuthError> {
    if header.len() > MAX_HEADER {
        return Err(malformed(header, "header is longer than 8 KiB"));
    }
    let mut out: Vec<RawChallenge> = Vec::new();
    let mut p = Parser {
        s: header.as_bytes(),
        i: 0,
    };
    loop {
        p.skip_ws_and_commas();
        if p.done() {
            break;
        }
        let scheme = p
            .token()
            .ok_or_else(|| malformed(header, "expected a scheme name"))?;
        let mut params = BTreeMap::new();
        // Parameters follow until a token that is not followed by `=`: the next scheme.
        loop {
            p.skip_ws_and_commas();
            if p.done() {
                break;
            }
            let name_start = p.i;
            let name = p
                .token()
                .ok_or_else(|| malformed(header, "expected a parameter name"))?;
            p.skip_ws();
            if p.peek() != Some(b'=') {
                p.i = name_start;
                break;
            }
            p.i += 1;
            p.skip_ws();
            let value = if p.peek() == Some(b'"') {
                p.quoted()
                    .ok_or_else(|| malformed(header, "unterminated quoted string"))?
            } else {
                p.token()
                    .ok_or_else(|| malformed(header, "expected a parameter value"))?
                    .to_owned()
            };
            params.insert(name.to_ascii_lowercase(), value);
        }
        out.push((scheme.to_owned(), params));
    }
    Ok(out)
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

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Parser<'a> {
    fn done(&self) -> bool {
        self.i >= self.s.len()
    }
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
    }
    fn skip_ws_and_commas(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b',')) {
            self.i += 1;
        }
    }
    /// RFC 7230 `token` characters, plus `/` and `=`-free token68 tails are not needed here.
    fn token(&mut self) -> Option<&'a str> {
        let start = self.i;
        while let Some(c) = self.peek() {
            let ok = c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~/:".contains(&c);
            if !ok {
                break;
            }
            self.i += 1;
        }
        if self.i == start {
            None
        } else {
            std::str::from_utf8(&self.s[start..self.i]).ok()
        }
    }
    fn quoted(&mut self) -> Option<String> {
        debug_assert_eq!(self.peek(), Some(b'"'));
        self.i += 1;
        let mut out = Vec::new();
        loop {
            let c = self.peek()?;
            self.i += 1;
            match c {
                b'"' => return String::from_utf8(out).ok(),
                b'\\' => {
                    out.push(self.peek()?);
                    self.i += 1;
                }
                _ => out.push(c),
            }
        }
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
