//! Who is calling. Handlers take a [`Caller`] argument; how it is established
//! (no authentication, or OIDC bearer tokens) is decided by the [`Authenticator`]
//! in the app data, so handlers do not change when authentication does.

use std::future::{ready, Ready};

use actix_web::{dev::Payload, web, FromRequest, HttpRequest};
use gitfaas_common::Owner;

use crate::problem::ApiError;
use crate::settings::AuthSettings;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub subject: String,
    pub name: Option<String>,
}

impl Caller {
    pub fn owner(&self) -> Owner {
        Owner { subject: self.subject.clone(), name: self.name.clone() }
    }
}

#[derive(Clone, Debug)]
pub enum Authenticator {
    Anonymous { subject: String },
}

impl Authenticator {
    pub fn from_settings(settings: &AuthSettings) -> Self {
        match settings {
            AuthSettings::None { subject } => Authenticator::Anonymous { subject: subject.clone() },
        }
    }

    fn authenticate(&self, _request: &HttpRequest) -> Result<Caller, ApiError> {
        match self {
            Authenticator::Anonymous { subject } => Ok(Caller { subject: subject.clone(), name: None }),
        }
    }
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let result = match request.app_data::<web::Data<Authenticator>>() {
            Some(authenticator) => authenticator.authenticate(request),
            None => Err(ApiError::Internal(anyhow::anyhow!("no authenticator configured"))),
        };
        ready(result)
    }
}
