//! Frontend configuration (`config/frontend.yaml`, `GITFAAS__FRONTEND__*`).

use gitfaas_common::schema::Delivery;
use gitfaas_common::settings::{KafkaSettings, SettingsError, TelemetrySettings};
use serde::Deserialize;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub kafka: KafkaSettings,
    #[serde(default)]
    pub telemetry: TelemetrySettings,
    pub frontend: FrontendSettings,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrontendSettings {
    /// `host:port`; port 0 picks a free port.
    pub listen: String,
    pub redis_url: String,
    /// Prefix of every Redis key this frontend writes.
    pub key_prefix: String,
    /// Consumer group reading the results topic into Redis.
    pub group_id: String,
    pub max_body_bytes: usize,
    /// Largest `input` of a job, as JSON.
    pub max_input_bytes: usize,
    /// Jobs admitted and not yet finished beyond which submissions get 503.
    pub max_backlog: u64,
    /// Submissions per caller and window beyond which they get 429.
    pub rate_limit: RateLimit,
    /// How long an `Idempotency-Key` is remembered.
    pub idempotency_ttl_secs: u64,
    /// A job not started this long after submission ends as `expired` (0: never).
    #[serde(default)]
    pub job_ttl_secs: u64,
    pub limits: JobLimits,
    /// Repository schemes and hosts, data-link hosts, internal ranges allowed:
    /// the same shape, and the same checks, as `executor.policy`.
    #[serde(default)]
    pub policy: gitfaas_common::policy::PolicySettings,
    /// The executors' X25519 public key (base64), published at
    /// `GET /v1/keys/executor` and used to seal credentials sent in the clear.
    /// Without it, jobs cannot carry credentials.
    #[serde(default)]
    pub executor_public_key: Option<String>,
    /// Runtimes a job may name.
    pub runtimes: Vec<String>,
    pub auth: AuthSettings,
    /// Event websockets one caller may hold open at once (more get 429).
    #[serde(default = "default_event_streams")]
    pub max_event_streams_per_caller: usize,
    /// The web app served at `/`.
    #[serde(default)]
    pub web: WebSettings,
    /// Partitions of the jobs topic one function's jobs go to (see `affinity`): 0
    /// places jobs by their id (no affinity); the partition count spreads every
    /// function everywhere.
    #[serde(default = "default_affinity_spread")]
    pub affinity_spread: u32,
    /// The processing guarantees jobs may ask for, and how an at-most-once run's
    /// lost executor is noticed.
    #[serde(default)]
    pub delivery: DeliverySettings,
    /// Live logs: the bytes kept per job (`max_bytes_per_job`; the chunking fields
    /// are the executor's and unused here).
    #[serde(default)]
    pub logs: gitfaas_common::logs::LogLimits,
    /// Schedule and topic triggers.
    #[serde(default)]
    pub triggers: TriggerSettings,
}

/// Which topics a topic trigger may read and write, and how schedules fire.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriggerSettings {
    /// Topics a trigger may bind as input or output: exact names, or prefixes
    /// ending in `*`. None by default; gitfaas's own topics never. Each such topic
    /// belongs to the first owner whose trigger binds it: no other owner's
    /// trigger may read or write it.
    #[serde(default)]
    pub allowed_topics: Vec<String>,
    /// Topics any owner's trigger may bind, owned by none (e.g. a feed every
    /// tenant reads): the operator's explicit exception to ownership.
    #[serde(default)]
    pub shared_topics: Vec<String>,
    /// Triggers one owner may have (each topic trigger is a reader on every frontend).
    #[serde(default = "default_max_triggers")]
    pub max_per_owner: usize,
}

impl Default for TriggerSettings {
    fn default() -> Self {
        Self { allowed_topics: Vec::new(), shared_topics: Vec::new(), max_per_owner: default_max_triggers() }
    }
}

fn default_max_triggers() -> usize {
    100
}

impl TriggerSettings {
    /// Whether a trigger may bind `topic` at all (one to own, or a shared one).
    pub fn allows(&self, topic: &str) -> bool {
        matches_any(&self.allowed_topics, topic) || self.is_shared(topic)
    }

    /// Whether `topic` is shared by every owner (no one owns it).
    pub fn is_shared(&self, topic: &str) -> bool {
        matches_any(&self.shared_topics, topic)
    }
}

fn matches_any(patterns: &[String], topic: &str) -> bool {
    patterns.iter().any(|allowed| match allowed.strip_suffix('*') {
        Some(prefix) => topic.starts_with(prefix),
        None => topic == allowed,
    })
}

/// Which delivery modes a job may name, and when the executor of a running
/// at-most-once job counts as lost.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliverySettings {
    /// Modes a job may ask for; the default mode must be among them for jobs that name none.
    #[serde(default = "default_delivery_modes")]
    pub allowed: Vec<Delivery>,
    /// A running at-most-once job ends `failed` ("executor lost…") once its executor
    /// sent no heartbeat for this long, announced it stopped this long ago, or came
    /// back as a new process. Heartbeats go every 2 s: the default is 3 of them.
    #[serde(default = "default_executor_lost_after")]
    pub executor_lost_after_secs: u64,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        Self { allowed: default_delivery_modes(), executor_lost_after_secs: default_executor_lost_after() }
    }
}

fn default_delivery_modes() -> Vec<Delivery> {
    vec![Delivery::AtMostOnce, Delivery::AtLeastOnce]
}
fn default_executor_lost_after() -> u64 {
    6
}

/// How the web app signs users in: the authorization code flow with PKCE, in the
/// browser, against `auth.issuer`, as the public client `client_id`. Without a
/// client id the page only offers pasting an access token.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebSettings {
    /// A public client of the issuer whose redirect URIs allow this frontend's `/`
    /// (Keycloak realm of `deploy/compose`: `gitfaas-web`).
    #[serde(default)]
    pub client_id: Option<String>,
    /// Space-separated scopes the page asks for.
    #[serde(default = "default_web_scopes")]
    pub scopes: String,
    /// Resource indicator (RFC 8707) sent with the authorization and token requests,
    /// for issuers that bind the audience that way; Keycloak needs none.
    #[serde(default)]
    pub resource: Option<String>,
}

impl Default for WebSettings {
    fn default() -> Self {
        Self { client_id: None, scopes: default_web_scopes(), resource: None }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    pub requests: u64,
    pub window_secs: u64,
    /// Jobs of one owner queued or running at once, whatever made them (requests,
    /// triggers, pipelines): one owner cannot fill the shared backlog alone.
    #[serde(default = "default_max_unfinished")]
    pub max_unfinished: u64,
}

fn default_max_unfinished() -> u64 {
    1000
}

/// Defaults for what a request leaves out, and the most it may ask for.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobLimits {
    pub timeout_secs: u32,
    pub max_timeout_secs: u32,
    pub memory_mb: u32,
    pub max_memory_mb: u32,
    pub cpu_millis: u32,
    pub max_cpu_millis: u32,
    pub pids: u32,
    pub max_pids: u32,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// No authentication: every caller is `subject`, with the admin role. Local use only.
    None,
    /// OIDC bearer tokens (JWT access tokens) from `issuer`.
    Oidc,
}

/// One flat section, so that `GITFAAS__FRONTEND__AUTH__MODE=oidc` plus the OIDC keys
/// switch a deployment over without editing files.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    /// `oidc` unless set: running without authentication must be chosen explicitly.
    #[serde(default = "default_mode")]
    pub mode: AuthMode,
    /// The caller's identity when `mode` is `none`.
    #[serde(default = "default_subject")]
    pub subject: String,
    /// Issuer URL; its `/.well-known/openid-configuration` is discovered at start.
    #[serde(default)]
    pub issuer: Option<String>,
    /// The value that must appear in one of `audience_claims`.
    #[serde(default)]
    pub audience: Option<String>,
    /// Claims searched for the audience: `aud`, and `azp` for Keycloak's shape.
    #[serde(default = "default_audience_claims")]
    pub audience_claims: Vec<String>,
    /// Dotted path of the roles claim: `roles`, `realm_access.roles`, or `scope`.
    #[serde(default = "default_roles_claim")]
    pub roles_claim: String,
    #[serde(default = "default_admin_role")]
    pub admin_role: String,
    #[serde(default = "default_leeway")]
    pub leeway_secs: u64,
    /// Least time between two JWKS refreshes caused by unknown key ids.
    #[serde(default = "default_refresh")]
    pub jwks_refresh_min_secs: u64,
}

/// The OIDC part of [`AuthSettings`], complete.
#[derive(Clone, Debug)]
pub struct OidcSettings {
    pub issuer: String,
    pub audience: String,
    pub audience_claims: Vec<String>,
    pub roles_claim: String,
    pub admin_role: String,
    pub leeway_secs: u64,
    pub jwks_refresh_min_secs: u64,
}

impl AuthSettings {
    /// Settings for OIDC mode; an error names what is missing.
    pub fn oidc(&self) -> Result<OidcSettings, SettingsError> {
        let missing = |key: &str| {
            SettingsError::Invalid(format!(
                "frontend.auth.{key} is required when mode is oidc (the default); \
                 set frontend.auth.mode: none to run without authentication"
            ))
        };
        Ok(OidcSettings {
            issuer: self.issuer.clone().ok_or_else(|| missing("issuer"))?,
            audience: self.audience.clone().ok_or_else(|| missing("audience"))?,
            audience_claims: self.audience_claims.clone(),
            roles_claim: self.roles_claim.clone(),
            admin_role: self.admin_role.clone(),
            leeway_secs: self.leeway_secs,
            jwks_refresh_min_secs: self.jwks_refresh_min_secs,
        })
    }
}

fn default_event_streams() -> usize {
    8
}
fn default_affinity_spread() -> u32 {
    2
}
fn default_web_scopes() -> String {
    "openid".into()
}
fn default_mode() -> AuthMode {
    AuthMode::Oidc
}
fn default_subject() -> String {
    "anonymous".into()
}
fn default_audience_claims() -> Vec<String> {
    vec!["aud".into(), "azp".into()]
}
fn default_roles_claim() -> String {
    "roles".into()
}
fn default_admin_role() -> String {
    "admin".into()
}
fn default_leeway() -> u64 {
    30
}
fn default_refresh() -> u64 {
    10
}

impl Settings {
    pub fn load() -> Result<Self, SettingsError> {
        let settings: Self = gitfaas_common::settings::load("frontend")?;
        settings.validate()?;
        Ok(settings)
    }

    pub fn validate(&self) -> Result<(), SettingsError> {
        let l = &self.frontend.limits;
        let pairs = [
            ("timeout_secs", l.timeout_secs, l.max_timeout_secs),
            ("memory_mb", l.memory_mb, l.max_memory_mb),
            ("cpu_millis", l.cpu_millis, l.max_cpu_millis),
            ("pids", l.pids, l.max_pids),
        ];
        self.frontend.policy.validate().map_err(|e| SettingsError::Invalid(format!("frontend.{e}")))?;
        self.frontend.logs.validate().map_err(|e| SettingsError::Invalid(format!("frontend.{e}")))?;
        if let Some(key) = &self.frontend.executor_public_key {
            gitfaas_common::sealed::seal(key, b"{}")
                .map_err(|e| SettingsError::Invalid(format!("frontend.executor_public_key: {e}")))?;
        }
        if self.frontend.auth.mode == AuthMode::Oidc {
            self.frontend.auth.oidc()?;
        } else if self.frontend.web.client_id.is_some() {
            return Err(SettingsError::Invalid("frontend.web.client_id needs frontend.auth.mode oidc".into()));
        }
        if self.frontend.delivery.allowed.is_empty() || self.frontend.delivery.executor_lost_after_secs == 0 {
            return Err(SettingsError::Invalid(
                "frontend.delivery.allowed must name a mode and executor_lost_after_secs be at least 1".into(),
            ));
        }
        for (name, default, max) in pairs {
            if default == 0 || default > max {
                return Err(SettingsError::Invalid(format!("frontend.limits.{name} must be between 1 and max_{name}")));
            }
        }
        Ok(())
    }
}
