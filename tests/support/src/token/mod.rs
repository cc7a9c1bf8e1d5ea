//! A token issuer (ES256 JWTs that distribution 2.8 accepts) and a token
//! server implementing the distribution token-auth endpoint.
//!
//! The token format follows distribution's `docs/spec/auth/jwt.md`: the JOSE
//! header carries `x5c` with the DER of a self-signed certificate that is also
//! the registry's `rootcertbundle`; the claim set has `iss`, `sub`, `aud`
//! (a single string — distribution 2.8 does not accept an array), `exp`,
//! `nbf`, `iat`, `jti` and `access`.
//!
//! The server implements `GET /token` (docs/spec/auth/token.md) and
//! `POST /token` (docs/spec/auth/oauth.md) with a table of users and
//! per-user grants; the issued access is the intersection of what was asked
//! for and what the user may do, like real token services.

mod access;
mod issuer;
mod server;

pub use access::{Access, Grant, intersect, parse_scopes};
pub use issuer::{TokenIssuer, decode_claims_unverified};
pub use server::{TokenRequest, TokenServer, TokenServerBuilder, basic_auth};
