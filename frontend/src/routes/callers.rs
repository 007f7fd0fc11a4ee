//! How a handler's [`Caller`] and [`Admin`] arguments are taken from a request
//! ([`crate::identity`] says who is calling; here a refusal becomes its answer).

use actix_web::{dev::Payload, web, FromRequest, HttpRequest};
use futures::future::LocalBoxFuture;

use crate::identity::{bearer, Admin, Authenticator, Caller};
use crate::problem::ApiError;

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let authenticator = request.app_data::<web::Data<Authenticator>>().cloned();
        let token = bearer(request);
        Box::pin(async move {
            let authenticator =
                authenticator.ok_or_else(|| ApiError::Internal(anyhow::anyhow!("no authenticator configured")))?;
            Ok(authenticator.authenticate_token(token.as_deref()).await?)
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
            let admin = match &authenticator {
                Some(authenticator) => authenticator.is_admin(&caller),
                None => caller.roles.iter().any(|r| r == "admin"),
            };
            if admin {
                Ok(Admin(caller))
            } else {
                Err(ApiError::Forbidden)
            }
        })
    }
}
