//! Signing in: the OAuth 2.0 device authorization grant (RFC 8628) or the client
//! credentials grant against the issuer's discovered endpoints, and the token cache
//! (`tokens.json` in the config directory, mode 0600) that every other command reads,
//! refreshed with the refresh token when the access token is about to expire.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api::{self, read_json, transport};
use crate::args::LoginArgs;
use crate::config::{self, Context, DEFAULT_CLIENT_ID};
use crate::error::CliError;
use crate::show::err;

const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// A token this close to its expiry is refreshed before use.
const EXPIRY_MARGIN_SECS: i64 = 30;

/// What `tokens.json` holds.
#[derive(Debug, Serialize, Deserialize)]
struct Cached {
    issuer: String,
    client_id: String,
    token_endpoint: String,
    grant: String,
    access_token: String,
    refresh_token: Option<String>,
    /// Unix seconds.
    expires_at: i64,
}

/// The endpoints of `{issuer}/.well-known/openid-configuration` the CLI uses.
#[derive(Debug, Deserialize)]
struct Discovery {
    token_endpoint: String,
    device_authorization_endpoint: Option<String>,
}

fn cache_path() -> Result<PathBuf, CliError> {
    Ok(config::dir()?.join("tokens.json"))
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn login_err(e: impl std::fmt::Display) -> CliError {
    CliError::Login(e.to_string())
}

/// `gitfaas login`: signs in and caches the tokens.
pub async fn login(ctx: &Context, args: LoginArgs) -> Result<(), CliError> {
    let issuer = match args.issuer.or_else(|| ctx.file.issuer.clone()) {
        Some(issuer) => issuer,
        None => api::advertised_issuer(&ctx.api, ctx.timeouts)
            .await?
            .ok_or_else(|| login_err(format!("the frontend at {} names no issuer; pass --issuer", ctx.api)))?,
    };
    let issuer = issuer.trim_end_matches('/').to_owned();
    let client_id = args.client_id.or_else(|| ctx.file.client_id.clone()).unwrap_or_else(|| DEFAULT_CLIENT_ID.into());
    let http = ctx.timeouts.plain_client();
    let discovery: Discovery = get_json(&http, &format!("{issuer}/.well-known/openid-configuration")).await?;
    let (grant, answer) = if args.client_credentials {
        let secret = args.client_secret.ok_or_else(|| {
            CliError::Usage("--client-credentials needs --client-secret (or GITFAAS_CLIENT_SECRET)".into())
        })?;
        let form = [("grant_type", "client_credentials"), ("scope", args.scope.as_str())];
        let answer = token_request(&http, &discovery.token_endpoint, &client_id, Some(&secret), &form).await?;
        ("client_credentials", answer.map_err(|e| login_err(e.describe()))?)
    } else {
        let endpoint = discovery.device_authorization_endpoint.as_deref().ok_or_else(|| {
            login_err(format!("{issuer} offers no device authorization endpoint; try --client-credentials"))
        })?;
        ("device", device_flow(&http, endpoint, &discovery.token_endpoint, &client_id, &args.scope).await?)
    };
    let cached = Cached::from_answer(issuer, client_id, discovery.token_endpoint, grant, &answer, None)?;
    store(&cached)?;
    err!("logged in to {} as {}", cached.issuer, subject_of(&cached.access_token));
    Ok(())
}

/// `gitfaas logout`: whether there was a session to forget.
pub fn logout() -> Result<bool, CliError> {
    match std::fs::remove_file(cache_path()?) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(CliError::Config(format!("removing the token cache: {e}"))),
    }
}

/// The token for the API: `--token`/`GITFAAS_TOKEN`, else the cached one, refreshed
/// when it is about to expire.
pub async fn access_token(ctx: &Context) -> Result<String, CliError> {
    if let Some(token) = &ctx.token {
        return Ok(token.clone());
    }
    let path = cache_path()?;
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(CliError::NotLoggedIn),
        Err(e) => return Err(CliError::Config(format!("{}: {e}", path.display()))),
    };
    let cached: Cached = serde_json::from_str(&text).map_err(|_| CliError::NotLoggedIn)?;
    if cached.expires_at - EXPIRY_MARGIN_SECS > now() {
        return Ok(cached.access_token);
    }
    let refreshed = refresh(&cached, &ctx.timeouts.plain_client()).await?;
    store(&refreshed)?;
    Ok(refreshed.access_token)
}

async fn refresh(cached: &Cached, http: &reqwest::Client) -> Result<Cached, CliError> {
    let secret = std::env::var("GITFAAS_CLIENT_SECRET").ok().filter(|s| !s.is_empty());
    let answer = match (&cached.refresh_token, cached.grant.as_str(), &secret) {
        (Some(refresh), _, _) => {
            let form = [("grant_type", "refresh_token"), ("refresh_token", refresh.as_str())];
            token_request(http, &cached.token_endpoint, &cached.client_id, secret.as_deref(), &form).await?
        }
        // a client credentials login holds no refresh token: it is simply repeated
        (None, "client_credentials", Some(secret)) => {
            let form = [("grant_type", "client_credentials")];
            token_request(http, &cached.token_endpoint, &cached.client_id, Some(secret), &form).await?
        }
        _ => return Err(CliError::Login("the session expired and cannot be refreshed".into())),
    };
    let answer = answer.map_err(|e| CliError::Login(format!("refreshing the session: {}", e.describe())))?;
    Cached::from_answer(
        cached.issuer.clone(),
        cached.client_id.clone(),
        cached.token_endpoint.clone(),
        &cached.grant,
        &answer,
        cached.refresh_token.clone(),
    )
}

/// RFC 8628: asks for a device code, tells the user where to approve it, and polls
/// the token endpoint at the interval the server asks for until approved.
async fn device_flow(
    http: &reqwest::Client,
    endpoint: &str,
    token_endpoint: &str,
    client_id: &str,
    scope: &str,
) -> Result<Value, CliError> {
    let form = [("client_id", client_id), ("scope", scope)];
    let response = http.post(endpoint).form(&form).send().await.map_err(|e| unreachable(endpoint, &e))?;
    let device: Value = read_json(endpoint, response).await?;
    let field = |name: &str| device[name].as_str().map(str::to_owned);
    let (Some(device_code), Some(user_code), Some(uri)) =
        (field("device_code"), field("user_code"), field("verification_uri"))
    else {
        return Err(login_err(format!("the device authorization endpoint answered {device}")));
    };
    err!("to sign in, open: {uri}");
    err!("and enter the code: {user_code}");
    if let Some(complete) = field("verification_uri_complete") {
        err!("(or open {complete})");
    }
    err!("waiting for the approval…");
    let mut interval = device["interval"].as_u64().unwrap_or(5).max(1);
    let deadline = now() + device["expires_in"].as_i64().unwrap_or(600);
    let form = [("grant_type", DEVICE_GRANT), ("device_code", device_code.as_str())];
    while now() < deadline {
        tokio::time::sleep(Duration::from_secs(interval)).await;
        match token_request(http, token_endpoint, client_id, None, &form).await? {
            Ok(answer) => return Ok(answer),
            Err(e) if e.error == "authorization_pending" => {}
            Err(e) if e.error == "slow_down" => interval += 5,
            Err(e) => return Err(login_err(e.describe())),
        }
    }
    Err(login_err("the device code expired before it was approved"))
}

/// An OAuth error answer (RFC 6749 §5.2).
struct OAuthError {
    error: String,
    description: Option<String>,
}

impl OAuthError {
    fn describe(&self) -> String {
        match &self.description {
            Some(d) => format!("{} ({d})", self.error),
            None => self.error.clone(),
        }
    }
}

/// Posts a token request; the client authenticates with basic auth when it has a secret.
async fn token_request(
    http: &reqwest::Client,
    endpoint: &str,
    client_id: &str,
    secret: Option<&str>,
    form: &[(&str, &str)],
) -> Result<Result<Value, OAuthError>, CliError> {
    let mut request = http.post(endpoint).form(form);
    request = match secret {
        Some(secret) => request.basic_auth(client_id, Some(secret)),
        None => request.form(&[form, &[("client_id", client_id)]].concat()),
    };
    let response = request.send().await.map_err(|e| unreachable(endpoint, &e))?;
    let answer: Value = read_json(endpoint, response).await?;
    if answer["access_token"].is_string() {
        return Ok(Ok(answer));
    }
    let error = answer["error"].as_str().unwrap_or("invalid answer").to_owned();
    Ok(Err(OAuthError { error, description: answer["error_description"].as_str().map(str::to_owned) }))
}

async fn get_json<T: serde::de::DeserializeOwned>(http: &reqwest::Client, url: &str) -> Result<T, CliError> {
    let response = http.get(url).send().await.map_err(|e| unreachable(url, &e))?;
    if !response.status().is_success() {
        return Err(login_err(format!("{url} answered {}", response.status())));
    }
    read_json(url, response).await
}

fn unreachable(url: &str, e: &reqwest::Error) -> CliError {
    transport(url, e)
}

impl Cached {
    fn from_answer(
        issuer: String,
        client_id: String,
        token_endpoint: String,
        grant: &str,
        answer: &Value,
        previous_refresh: Option<String>,
    ) -> Result<Self, CliError> {
        let access_token = answer["access_token"].as_str().ok_or_else(|| login_err("no access token"))?.to_owned();
        let expires_in = answer["expires_in"].as_i64().unwrap_or(300);
        // a refresh answer may omit the refresh token: the old one stays valid then
        let refresh_token = answer["refresh_token"].as_str().map(str::to_owned).or(previous_refresh);
        let grant = grant.to_owned();
        Ok(Self {
            issuer,
            client_id,
            token_endpoint,
            grant,
            access_token,
            refresh_token,
            expires_at: now() + expires_in,
        })
    }
}

/// Writes the cache readable by its owner only (0600; the directory 0700).
fn store(cached: &Cached) -> Result<(), CliError> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    let path = cache_path()?;
    let dir = path.parent().expect("a config directory");
    let io = |e: std::io::Error| CliError::Config(format!("writing {}: {e}", path.display()));
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(io)?;
    let temp = dir.join(".tokens.json.new");
    let _ = std::fs::remove_file(&temp);
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&temp).map_err(io)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    file.write_all(&serde_json::to_vec_pretty(cached).expect("tokens serialise")).map_err(io)?;
    file.sync_all().map_err(io)?;
    std::fs::rename(&temp, &path).map_err(io)
}

/// Who a token names (`preferred_username`, else `sub`), read without verifying it:
/// only to tell the user who they logged in as.
fn subject_of(token: &str) -> String {
    use base64::Engine;
    let claims = token
        .split('.')
        .nth(1)
        .and_then(|p| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(p).ok())
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
        .unwrap_or(Value::Null);
    let name = claims["preferred_username"].as_str().or(claims["sub"].as_str());
    name.unwrap_or("an unknown subject").to_owned()
}
