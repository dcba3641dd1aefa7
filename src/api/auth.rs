//! Bearer-token checks. Reads need the admin token; ingestion takes the
//! ingest token or the admin one. Tokens are compared in constant time and
//! never logged (their `Debug` is redacted).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use subtle::ConstantTimeEq;

use super::error::ApiError;

/// A secret token; `Debug` never shows it.
#[derive(Clone)]
pub struct Token(String);

impl Token {
    pub fn new(value: String) -> Self {
        Self(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    fn matches(&self, candidate: &str) -> bool {
        self.0.as_bytes().ct_eq(candidate.as_bytes()).into()
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

#[derive(Debug, Clone)]
pub struct Auth {
    pub admin: Token,
    pub ingest: Token,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Admin,
    Ingest,
}

impl Auth {
    /// Which role a presented token has, if any. Both comparisons always run.
    pub fn role(&self, presented: &str) -> Option<Role> {
        let admin = self.admin.matches(presented);
        let ingest = self.ingest.matches(presented);
        if admin {
            Some(Role::Admin)
        } else if ingest {
            Some(Role::Ingest)
        } else {
            None
        }
    }

    pub fn require_admin(&self, presented: Option<&str>) -> Result<(), ApiError> {
        match presented.map(|t| self.role(t)) {
            Some(Some(Role::Admin)) => Ok(()),
            Some(Some(Role::Ingest)) => Err(ApiError::Forbidden(
                "the ingest token cannot read analytics; use the admin token".to_string(),
            )),
            Some(None) => Err(ApiError::Unauthorized("invalid token".to_string())),
            None => Err(missing()),
        }
    }

    pub fn require_ingest(&self, presented: Option<&str>) -> Result<(), ApiError> {
        match presented.map(|t| self.role(t)) {
            Some(Some(_)) => Ok(()),
            Some(None) => Err(ApiError::Unauthorized("invalid token".to_string())),
            None => Err(missing()),
        }
    }
}

fn missing() -> ApiError {
    ApiError::Unauthorized("missing token: send Authorization: Bearer <token>".to_string())
}

/// The token of `Authorization: Bearer <token>`.
pub fn bearer(request: &Request) -> Option<&str> {
    let value = request
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The subprotocol a WebSocket client offers beside its token, and the one
/// the server selects (so the token is never echoed back).
pub const WS_PROTOCOL: &str = "ragpulse";
/// The prefix of the subprotocol that carries the token: `bearer.<token>`.
pub const WS_TOKEN_PREFIX: &str = "bearer.";

/// The token of a `Sec-WebSocket-Protocol: ragpulse, bearer.<token>` header:
/// a browser's WebSocket cannot set `Authorization`, and a token in the URL
/// ends up in the access logs of every proxy on the way.
pub fn protocol_token(request: &Request) -> Option<&str> {
    request
        .headers()
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .find_map(|protocol| protocol.trim().strip_prefix(WS_TOKEN_PREFIX))
}

/// The `token` query parameter, for browsers that cannot set headers
/// (WebSocket, EventSource).
pub fn query_token(request: &Request) -> Option<String> {
    let query = request.uri().query()?;
    form_urlencoded::parse(query.as_bytes())
        .filter(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned())
        .last()
}

pub async fn admin_only(
    State(auth): State<Arc<Auth>>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    auth.require_admin(bearer(&request))?;
    Ok(next.run(request).await)
}

/// For the live feed: `Authorization`, else the WebSocket subprotocol
/// `bearer.<token>`, else `?token=`.
pub async fn admin_header_or_query(
    State(auth): State<Arc<Auth>>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let presented = bearer(&request)
        .or_else(|| protocol_token(&request))
        .map(str::to_string)
        .or_else(|| query_token(&request));
    auth.require_admin(presented.as_deref())?;
    Ok(next.run(request).await)
}

pub async fn ingest_only(
    State(auth): State<Arc<Auth>>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    auth.require_ingest(bearer(&request))?;
    Ok(next.run(request).await)
}

/// A strong random token: 32 bytes from the OS, hex, with a readable prefix.
pub fn generate_token(prefix: &str) -> Result<Token, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(Token(format!("{prefix}{}", hex::encode(bytes))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> Auth {
        Auth {
            admin: Token::new("admin-secret".into()),
            ingest: Token::new("ingest-secret".into()),
        }
    }

    #[test]
    fn roles_follow_the_token() {
        let a = auth();
        assert!(a.require_admin(Some("admin-secret")).is_ok());
        assert!(matches!(
            a.require_admin(Some("ingest-secret")),
            Err(ApiError::Forbidden(_))
        ));
        assert!(matches!(
            a.require_admin(Some("admin-secre")),
            Err(ApiError::Unauthorized(_))
        ));
        assert!(matches!(
            a.require_admin(None),
            Err(ApiError::Unauthorized(_))
        ));
        assert!(a.require_ingest(Some("ingest-secret")).is_ok());
        assert!(a.require_ingest(Some("admin-secret")).is_ok());
        assert!(matches!(
            a.require_ingest(Some("")),
            Err(ApiError::Unauthorized(_))
        ));
    }

    #[test]
    fn debug_never_shows_the_secret() {
        assert!(!format!("{:?}", auth()).contains("secret"));
    }

    #[test]
    fn generated_tokens_are_long_and_distinct() {
        let a = generate_token("rp_admin_").unwrap();
        let b = generate_token("rp_admin_").unwrap();
        assert_eq!(a.expose().len(), "rp_admin_".len() + 64);
        assert_ne!(a.expose(), b.expose());
    }
}
