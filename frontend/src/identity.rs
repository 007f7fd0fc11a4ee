//! Who is calling. Handlers take a [`Caller`] (or [`Admin`]) argument; how it is
//! established — no authentication, or OIDC bearer tokens — is decided by the
//! [`Authenticator`] in the app data, so handlers do not change when auth does.

use std::sync::Arc;

use actix_web::http::header;
use actix_web::{dev::Payload, web, FromRequest, HttpRequest};
use futures::future::LocalBoxFuture;
use gitfaas_common::Owner;

use crate::oidc::{Claims, OidcVerifier, TokenError};
use crate::problem::ApiError;
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

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> Self {
        ApiError::Unauthorized(error.to_string())
    }
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

    fn admin_role(&self) -> &str {
        match self {
            Authenticator::Anonymous { .. } => "admin",
            Authenticator::Oidc(verifier) => verifier.admin_role(),
        }
    }

    /// Authenticates a bearer token (`token` is whatever follows `Bearer `).
    pub async fn authenticate_token(&self, token: Option<&str>) -> Result<Caller, ApiError> {
        match self {
            Authenticator::Anonymous { subject } => {
                Ok(Caller { subject: subject.clone(), name: None, roles: vec!["admin".into()] })
            }
            Authenticator::Oidc(verifier) => {
                let token = token.ok_or(AuthError::Missing)?;
                let claims = verifier.verify(token).await.map_err(|e| {
                    tracing::info!(error = %e, "token refused");
                    ApiError::from(AuthError::from(e))
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

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let authenticator = request.app_data::<web::Data<Authenticator>>().cloned();
        let token = bearer(request);
        Box::pin(async move {
            let authenticator =
                authenticator.ok_or_else(|| ApiError::Internal(anyhow::anyhow!("no authenticator configured")))?;
            authenticator.authenticate_token(token.as_deref()).await
        })
    }
}

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let caller = Caller::from_request(request, payload);
        let authenticator = request.app_data::<web::Data<Authenticator>>().cloned();
        Box::pin(async move {
            let caller = caller.await?;
            let role = authenticator.as_ref().map_or("admin", |a| a.admin_role());
            if caller.roles.iter().any(|r| r == role) {
                Ok(Admin(caller))
            } else {
                Err(ApiError::Forbidden)
            }
        })
    }
}
