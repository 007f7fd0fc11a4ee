//! Who is calling. Handlers take a [`Caller`] (or [`Admin`]) argument; how it is
//! established — no authentication, or OIDC bearer tokens — is decided by the
//! [`Authenticator`] in the app data, so handlers do not change when auth does.
//! (The extractors that answer a refusal over HTTP are the routes', in
//! `routes/callers.rs`.)

use std::sync::Arc;

use actix_web::http::header;
use actix_web::HttpRequest;
use gitfaas_common::Owner;

use crate::oidc::{Claims, OidcVerifier, TokenError};
use crate::settings::{AuthMode, AuthSettings};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub subject: String,
    pub name: Option<String>,
    pub roles: Vec<String>,
}

impl Caller {
    pub fn owner(&self) -> Owner {
        Owner { subject: self.subject.clone(), name: self.name.clone() }
    }
}

impl From<Claims> for Caller {
    fn from(claims: Claims) -> Self {
        Self { subject: claims.subject, name: claims.name, roles: claims.roles }
    }
}

/// Why a request was not authenticated.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("missing bearer token")]
    Missing,
    #[error(transparent)]
    Token(#[from] TokenError),
}

/// A caller holding the operator role.
pub struct Admin(pub Caller);

#[derive(Clone)]
pub enum Authenticator {
    Anonymous { subject: String },
    Oidc(Arc<OidcVerifier>),
}

impl Authenticator {
    pub async fn from_settings(settings: &AuthSettings) -> anyhow::Result<Self> {
        Ok(match settings.mode {
            AuthMode::None => {
                tracing::warn!(subject = %settings.subject, "authentication is disabled: every caller is the same user");
                Authenticator::Anonymous { subject: settings.subject.clone() }
            }
            AuthMode::Oidc => Authenticator::Oidc(Arc::new(OidcVerifier::discover(settings.oidc()?).await?)),
        })
    }

    pub fn admin_role(&self) -> &str {
        match self {
            Authenticator::Anonymous { .. } => "admin",
            Authenticator::Oidc(verifier) => verifier.admin_role(),
        }
    }

    /// Whether `caller` holds the operator role.
    pub fn is_admin(&self, caller: &Caller) -> bool {
        caller.roles.iter().any(|r| r == self.admin_role())
    }

    /// Authenticates a bearer token (`token` is whatever follows `Bearer `).
    pub async fn authenticate_token(&self, token: Option<&str>) -> Result<Caller, AuthError> {
        match self {
            Authenticator::Anonymous { subject } => {
                Ok(Caller { subject: subject.clone(), name: None, roles: vec!["admin".into()] })
            }
            Authenticator::Oidc(verifier) => {
                let token = token.ok_or(AuthError::Missing)?;
                let claims = verifier.verify(token).await.map_err(|e| {
                    tracing::info!(error = %e, "token refused");
                    AuthError::from(e)
                })?;
                Ok(Caller::from(claims))
            }
        }
    }
}

pub fn bearer(request: &HttpRequest) -> Option<String> {
    let value = request.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_owned())
}
