//! Verification of OIDC bearer tokens (JWT access tokens).
//!
//! The issuer's metadata is discovered with `openidconnect` at start; its JWKS is
//! fetched then and cached. A token whose `kid` is unknown triggers one JWKS refresh,
//! at most once per `jwks_refresh_min_secs`, so keys rotated at the provider are
//! picked up without a restart while a flood of forged `kid`s cannot hammer it.
//! Only asymmetric algorithms are accepted: `none` and HMAC (which a confused
//! verifier could be tricked into keying with the public key) are refused, and so is
//! a header that marks any parameter critical (`crit`) or names a type (`typ`) other
//! than an access token's ([`check_header`]).
//!
//! A client sends the same token with every request until it expires, so a token
//! that verified is remembered by its SHA-256 ([`Verified`]): the same bytes
//! verify the same way against the same keys, and only the time checks (`exp`,
//! `nbf`) are made again on each use. Every JWKS refresh forgets them all, so a
//! key the provider withdrew stops its tokens at once.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use openidconnect::core::CoreProviderMetadata;
use openidconnect::IssuerUrl;
use serde_json::Value;
use tokio::sync::{Mutex, RwLock};

use crate::settings::OidcSettings;

const ACCEPTED: [Algorithm; 8] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
];

/// Why a bearer token was refused.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("malformed token: {0}")]
    Malformed(String),
    #[error("token algorithm {0:?} is not accepted")]
    Algorithm(Algorithm),
    #[error("token signed with an unknown key")]
    UnknownKey,
    #[error("invalid token: {0}")]
    Invalid(String),
    #[error("token is not meant for this service (audience)")]
    Audience,
    #[error("token header marks {0:?} critical; this service understands no critical header parameter")]
    Critical(Vec<String>),
    #[error("token type {0:?} is not an access token (at+jwt or JWT)")]
    Type(String),
}

/// What a verified token says about its bearer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claims {
    pub subject: String,
    pub name: Option<String>,
    pub roles: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error("oidc discovery of {issuer} failed: {detail}")]
    Discovery { issuer: String, detail: String },
    #[error("fetching the jwks failed: {0}")]
    Jwks(String),
}

pub struct OidcVerifier {
    settings: OidcSettings,
    jwks_uri: String,
    http: reqwest::Client,
    keys: RwLock<HashMap<String, (DecodingKey, Option<Algorithm>)>>,
    last_refresh: Mutex<Option<Instant>>,
    verified: std::sync::Mutex<HashMap<[u8; 32], Verified>>,
}

/// A token that verified: what it says, and the times it is valid between.
#[derive(Clone)]
struct Verified {
    claims: Claims,
    expires: i64,
    not_before: Option<i64>,
}

/// Most verified tokens remembered; past it the expired ones are dropped, and all
/// of them if that is not enough.
const MAX_VERIFIED: usize = 10_000;

impl Verified {
    fn valid_at(&self, now: i64, leeway: u64) -> bool {
        let leeway = i64::try_from(leeway).unwrap_or(i64::MAX);
        now <= self.expires.saturating_add(leeway)
            && self.not_before.is_none_or(|nbf| now.saturating_add(leeway) >= nbf)
    }
}

/// Adapts our reqwest client to the HTTP client interface of `openidconnect`.
async fn send(
    client: &reqwest::Client,
    request: http::Request<Vec<u8>>,
) -> Result<http::Response<Vec<u8>>, reqwest::Error> {
    let (parts, body) = request.into_parts();
    let response = client.request(parts.method, parts.uri.to_string()).headers(parts.headers).body(body).send().await?;
    let mut builder = http::Response::builder().status(response.status());
    for (name, value) in response.headers() {
        builder = builder.header(name, value);
    }
    let body = response.bytes().await?.to_vec();
    Ok(builder.body(body).expect("status and headers came from a valid response"))
}

impl OidcVerifier {
    pub async fn discover(settings: OidcSettings) -> Result<Self, DiscoveryError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| DiscoveryError::Jwks(e.to_string()))?;
        let discovery_error = |detail: String| DiscoveryError::Discovery { issuer: settings.issuer.clone(), detail };
        let issuer = IssuerUrl::new(settings.issuer.clone()).map_err(|e| discovery_error(e.to_string()))?;
        let client = |request| send(&http, request);
        let metadata = CoreProviderMetadata::discover_async(issuer, &client)
            .await
            .map_err(|e| discovery_error(format!("{e}: {:?}", std::error::Error::source(&e))))?;
        let jwks_uri = metadata.jwks_uri().url().to_string();
        let verifier = Self {
            settings,
            jwks_uri,
            http,
            keys: RwLock::new(HashMap::new()),
            last_refresh: Mutex::new(None),
            verified: std::sync::Mutex::default(),
        };
        verifier.refresh().await?;
        Ok(verifier)
    }

    async fn refresh(&self) -> Result<(), DiscoveryError> {
        let set: JwkSet = self
            .http
            .get(&self.jwks_uri)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| DiscoveryError::Jwks(e.to_string()))?
            .json()
            .await
            .map_err(|e| DiscoveryError::Jwks(e.to_string()))?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            let (Some(kid), Ok(key)) = (jwk.common.key_id.clone(), DecodingKey::from_jwk(jwk)) else { continue };
            let alg = jwk.common.key_algorithm.and_then(|a| a.to_string().parse().ok());
            keys.insert(kid, (key, alg));
        }
        tracing::info!(keys = keys.len(), "jwks loaded");
        let mut current = self.keys.write().await;
        *current = keys;
        // under the write lock: no token verified with the old keys is remembered after
        self.verified.lock().expect("verified tokens lock").clear();
        Ok(())
    }

    /// Refreshes the JWKS unless that was done less than the minimum interval ago.
    async fn refresh_rate_limited(&self) {
        let mut last = self.last_refresh.lock().await;
        let min = Duration::from_secs(self.settings.jwks_refresh_min_secs);
        if last.is_some_and(|t| t.elapsed() < min) {
            return;
        }
        *last = Some(Instant::now());
        if let Err(error) = self.refresh().await {
            tracing::warn!(%error, "jwks refresh failed");
        }
    }

    /// The claims of a valid token: remembered when it verified before and is
    /// still within its times, else verified in full.
    pub async fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let now = chrono::Utc::now().timestamp();
        let leeway = self.settings.leeway_secs;
        let remembered = self.verified.lock().expect("verified tokens lock").get(&digest).cloned();
        if let Some(verified) = remembered.filter(|v| v.valid_at(now, leeway)) {
            return Ok(verified.claims);
        }
        self.verify_in_full(token, digest, now).await
    }

    /// Remembers a token that verified. Called with the keys read-locked, so that
    /// a refresh cannot clear the remembered tokens between its check and this.
    fn remember(&self, digest: [u8; 32], verified: Verified, now: i64) {
        let mut remembered = self.verified.lock().expect("verified tokens lock");
        if remembered.len() >= MAX_VERIFIED {
            remembered.retain(|_, v| v.valid_at(now, self.settings.leeway_secs));
            if remembered.len() >= MAX_VERIFIED {
                remembered.clear();
            }
        }
        remembered.insert(digest, verified);
    }

    /// Every check of the token against the keys; remembered when it passes.
    async fn verify_in_full(&self, token: &str, digest: [u8; 32], now: i64) -> Result<Claims, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| TokenError::Malformed(e.to_string()))?;
        check_header(&header)?;
        let kid = header.kid.clone().ok_or(TokenError::UnknownKey)?;
        if !self.keys.read().await.contains_key(&kid) {
            self.refresh_rate_limited().await;
        }
        let keys = self.keys.read().await;
        let (key, key_alg) = keys.get(&kid).ok_or(TokenError::UnknownKey)?;
        if key_alg.is_some_and(|a| a != header.alg) {
            return Err(TokenError::Algorithm(header.alg));
        }
        let mut validation = Validation::new(header.alg);
        validation.leeway = self.settings.leeway_secs;
        validation.set_issuer(&[&self.settings.issuer]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        validation.validate_nbf = true;
        validation.validate_aud = false; // checked below: Keycloak puts the client in `azp`
        let data =
            jsonwebtoken::decode::<Value>(token, key, &validation).map_err(|e| TokenError::Invalid(e.to_string()))?;
        let claims = data.claims;
        if !self.audience_matches(&claims) {
            return Err(TokenError::Audience);
        }
        let subject =
            claims["sub"].as_str().filter(|s| !s.is_empty()).ok_or_else(|| TokenError::Invalid("no sub".into()))?;
        let claims_of = Claims {
            subject: subject.to_owned(),
            name: claims["preferred_username"].as_str().map(str::to_owned),
            roles: roles(&claims, &self.settings.roles_claim),
        };
        // `exp` is required and was checked above
        let time = |name: &str| claims[name].as_f64().map(|t| t as i64);
        let expires = time("exp").ok_or_else(|| TokenError::Invalid("no exp".into()))?;
        self.remember(digest, Verified { claims: claims_of.clone(), expires, not_before: time("nbf") }, now);
        drop(keys);
        Ok(claims_of)
    }

    fn audience_matches(&self, claims: &Value) -> bool {
        let wanted = &self.settings.audience;
        self.settings.audience_claims.iter().any(|claim| match &claims[claim.as_str()] {
            Value::String(s) => s == wanted,
            Value::Array(items) => items.iter().any(|i| i.as_str() == Some(wanted)),
            _ => false,
        })
    }

    pub fn admin_role(&self) -> &str {
        &self.settings.admin_role
    }
}

/// The JOSE header's own checks, before any key is looked at: an accepted
/// algorithm; no `crit` at all (RFC 7515 §4.1.11: a recipient must refuse a token
/// naming a critical extension it does not understand, and we understand none —
/// an empty list is refused too, producers must not send one); and where `typ` is
/// set, an access token's type: `at+jwt` (RFC 9068) or `JWT` (RFC 7519), compared
/// as media types are (case-insensitive, `application/` optional, RFC 7515
/// §4.1.9), so a token of another kind (`dpop+jwt`, `logout+jwt`, …) signed by the
/// same key is not taken for one.
fn check_header(header: &jsonwebtoken::Header) -> Result<(), TokenError> {
    if !ACCEPTED.contains(&header.alg) {
        return Err(TokenError::Algorithm(header.alg));
    }
    if let Some(critical) = &header.crit {
        // named in the 401's detail: a few of them, cut short
        return Err(TokenError::Critical(critical.iter().take(4).map(|c| c.chars().take(64).collect()).collect()));
    }
    if let Some(typ) = &header.typ {
        let lower = typ.to_ascii_lowercase();
        let media = lower.strip_prefix("application/").unwrap_or(&lower);
        if media != "at+jwt" && media != "jwt" {
            return Err(TokenError::Type(typ.chars().take(64).collect()));
        }
    }
    Ok(())
}

/// Roles at a dotted claim path: an array of strings (`realm_access.roles`) or a
/// space-separated string (`scope`).
pub fn roles(claims: &Value, path: &str) -> Vec<String> {
    let value = path.split('.').fold(claims, |v, key| &v[key]);
    match value {
        Value::Array(items) => items.iter().filter_map(|i| i.as_str().map(str::to_owned)).collect(),
        Value::String(s) => s.split_whitespace().map(str::to_owned).collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn roles_come_from_nested_arrays_or_scope_strings() {
        let claims = json!({"realm_access": {"roles": ["user", "admin"]}, "scope": "jobs admin"});
        assert_eq!(roles(&claims, "realm_access.roles"), ["user", "admin"]);
        assert_eq!(roles(&claims, "scope"), ["jobs", "admin"]);
        assert!(roles(&claims, "missing.path").is_empty());
    }

    fn header(edit: impl FnOnce(&mut jsonwebtoken::Header)) -> Result<(), TokenError> {
        let mut header = jsonwebtoken::Header::new(Algorithm::RS256);
        edit(&mut header);
        check_header(&header)
    }

    #[test]
    fn a_header_with_any_critical_parameter_is_refused() {
        assert!(header(|_| {}).is_ok());
        assert!(matches!(header(|h| h.crit = Some(vec!["exp".into()])), Err(TokenError::Critical(c)) if c == ["exp"]));
        assert!(matches!(header(|h| h.crit = Some(vec![])), Err(TokenError::Critical(_))), "an empty list too");
    }

    #[test]
    fn a_header_type_is_an_access_tokens_or_absent() {
        for typ in ["at+jwt", "application/at+jwt", "AT+JWT", "Application/At+Jwt", "JWT", "jwt", "application/jwt"] {
            assert!(header(|h| h.typ = Some(typ.into())).is_ok(), "{typ}");
        }
        assert!(header(|h| h.typ = None).is_ok(), "a provider that sets no typ");
        for typ in
            ["dpop+jwt", "logout+jwt", "secevent+jwt", "JOSE", "JOSE+JSON", "", "at+jwt ", "text/jwt", "application/"]
        {
            assert!(matches!(header(|h| h.typ = Some(typ.into())), Err(TokenError::Type(_))), "{typ:?}");
        }
        assert!(matches!(header(|h| h.alg = Algorithm::HS256), Err(TokenError::Algorithm(_))));
    }

    #[test]
    fn a_remembered_token_is_valid_only_between_its_times_with_the_leeway() {
        let claims = Claims { subject: "alice".into(), name: None, roles: vec![] };
        let verified = Verified { claims, expires: 1_000, not_before: Some(500) };
        assert!(verified.valid_at(700, 0));
        assert!(verified.valid_at(1_005, 5) && !verified.valid_at(1_006, 5), "expired past the leeway");
        assert!(verified.valid_at(495, 5) && !verified.valid_at(494, 5), "not yet valid before nbf less the leeway");
        let no_nbf = Verified { not_before: None, ..verified };
        assert!(no_nbf.valid_at(0, 0));
    }
}
