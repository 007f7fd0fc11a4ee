//! The web app: one page at `/` and its assets under `/app/`, compiled into the
//! binary (plain HTML, JS modules and CSS from `frontend/web`, no build step), and
//! the chart library they draw with (uPlot, vendored in `frontend/web/vendor`): the
//! page loads nothing from any other origin.
//!
//! The page is served without a token; everything it shows comes from the `/v1`
//! API, called with the bearer token the user signed in with. `GET /app/config.json`
//! tells the page how to sign in: the issuer and the public client for the
//! authorization code flow with PKCE, or nothing, and then it asks for a pasted token.
//! Every response carries a Content-Security-Policy that allows scripts, styles and
//! connections to this origin only, plus connections to the issuer (discovery and the
//! token request of the sign-in).

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use serde::Serialize;

use crate::problem::ApiError;
use crate::settings::{AuthMode, FrontendSettings};
use crate::AppState;

const INDEX_HTML: &str = include_str!("../../web/index.html");

/// `(name under /app/, content type, body)`.
const ASSETS: &[(&str, &str, &str)] = &[
    ("app.js", "text/javascript; charset=utf-8", include_str!("../../web/app.js")),
    ("api.js", "text/javascript; charset=utf-8", include_str!("../../web/api.js")),
    ("auth.js", "text/javascript; charset=utf-8", include_str!("../../web/auth.js")),
    ("jobs.js", "text/javascript; charset=utf-8", include_str!("../../web/jobs.js")),
    ("functions.js", "text/javascript; charset=utf-8", include_str!("../../web/functions.js")),
    ("triggers.js", "text/javascript; charset=utf-8", include_str!("../../web/triggers.js")),
    ("pipelines.js", "text/javascript; charset=utf-8", include_str!("../../web/pipelines.js")),
    ("app.css", "text/css; charset=utf-8", include_str!("../../web/app.css")),
    ("icon.svg", "image/svg+xml", include_str!("../../web/icon.svg")),
    ("charts.js", "text/javascript; charset=utf-8", include_str!("../../web/charts.js")),
    ("overview.js", "text/javascript; charset=utf-8", include_str!("../../web/overview.js")),
    ("operator.js", "text/javascript; charset=utf-8", include_str!("../../web/operator.js")),
    // uPlot 1.6.32 from npm, unchanged (MIT, web/vendor/uPlot.LICENSE; web/vendor/README.md)
    ("uPlot.iife.min.js", "text/javascript; charset=utf-8", include_str!("../../web/vendor/uPlot.iife.min.js")),
    ("uPlot.min.css", "text/css; charset=utf-8", include_str!("../../web/vendor/uPlot.min.css")),
    ("uPlot.LICENSE", "text/plain; charset=utf-8", include_str!("../../web/vendor/uPlot.LICENSE")),
];

/// What the page needs to sign in and to offer the runtimes; nothing secret.
#[derive(Serialize)]
pub struct WebConfig<'a> {
    /// `none` (every caller is one user: no sign-in) or `oidc`.
    pub auth: &'a str,
    pub issuer: Option<&'a str>,
    /// The public client for the authorization code flow; absent: paste a token.
    pub client_id: Option<&'a str>,
    pub scopes: &'a str,
    pub resource: Option<&'a str>,
    /// The audience the API checks, for display and for issuers that want it.
    pub audience: Option<&'a str>,
    pub runtimes: &'a [String],
    /// Where the token names its roles (a dotted path) and the operator's role: the page
    /// offers the operator view to a token that has it (the API checks it again).
    pub roles_claim: &'a str,
    pub admin_role: &'a str,
}

impl<'a> WebConfig<'a> {
    pub fn of(settings: &'a FrontendSettings) -> Self {
        let oidc = settings.auth.mode == AuthMode::Oidc;
        Self {
            auth: if oidc { "oidc" } else { "none" },
            issuer: settings.auth.issuer.as_deref().filter(|_| oidc),
            client_id: settings.web.client_id.as_deref().filter(|_| oidc),
            scopes: &settings.web.scopes,
            resource: settings.web.resource.as_deref(),
            audience: settings.auth.audience.as_deref().filter(|_| oidc),
            runtimes: &settings.runtimes,
            roles_claim: &settings.auth.roles_claim,
            admin_role: &settings.auth.admin_role,
        }
    }
}

/// The page's Content-Security-Policy: this origin only, plus the issuer's origin
/// for the sign-in's discovery and token requests.
pub fn content_security_policy(settings: &FrontendSettings) -> String {
    let issuer = WebConfig::of(settings)
        .issuer
        .and_then(|issuer| url::Url::parse(issuer).ok())
        .map(|url| url.origin())
        .filter(url::Origin::is_tuple)
        .map(|origin| format!(" {}", origin.ascii_serialization()))
        .unwrap_or_default();
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'{issuer}; \
         form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )
}

fn page_response(settings: &FrontendSettings, content_type: &str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, content_type))
        .insert_header((header::CONTENT_SECURITY_POLICY, content_security_policy(settings)))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        // the sign-in's authorization code arrives in the page's query string
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(body)
}

/// `GET /`: the page.
pub async fn index(state: web::Data<AppState>) -> HttpResponse {
    page_response(&state.settings, "text/html; charset=utf-8", INDEX_HTML)
}

/// `GET /app/{name}`: a script, the style sheet or the icon.
pub async fn asset(name: web::Path<String>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let (_, content_type, body) =
        ASSETS.iter().find(|(asset, _, _)| *asset == name.as_str()).ok_or(ApiError::NoRoute)?;
    Ok(page_response(&state.settings, content_type, body))
}

/// `GET /app/config.json`: how the page signs in.
pub async fn config(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .json(WebConfig::of(&state.settings))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Settings;

    fn settings() -> FrontendSettings {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
        let settings: Settings = gitfaas_common::settings::load_from(&dir, "frontend").expect("frontend config");
        settings.frontend
    }

    #[test]
    fn the_shipped_config_file_loads_with_the_web_defaults() {
        let settings = settings();
        assert_eq!(settings.web.client_id, None);
        assert_eq!(settings.web.scopes, "openid");
    }

    #[test]
    fn without_oidc_the_page_is_told_there_is_nothing_to_sign_in_to() {
        let mut settings = settings();
        settings.auth.mode = AuthMode::None;
        settings.auth.issuer = Some("https://id.example.org/realms/x".into());
        settings.web.client_id = Some("gitfaas-web".into());
        let config = WebConfig::of(&settings);
        assert_eq!((config.auth, config.issuer, config.client_id), ("none", None, None));
        assert!(content_security_policy(&settings).contains("connect-src 'self';"));
    }

    #[test]
    fn the_policy_allows_connections_to_the_issuer_origin_only() {
        let mut settings = settings();
        settings.auth.mode = AuthMode::Oidc;
        settings.auth.issuer = Some("https://id.example.org:8443/realms/gitfaas".into());
        let policy = content_security_policy(&settings);
        assert!(policy.contains("connect-src 'self' https://id.example.org:8443;"), "{policy}");
        assert!(policy.contains("script-src 'self';"), "{policy}");
        assert!(!policy.contains("unsafe"), "{policy}");
    }

    #[test]
    fn every_asset_the_page_names_is_served() {
        for name in ["app.js", "app.css", "icon.svg", "uPlot.iife.min.js", "uPlot.min.css"] {
            assert!(INDEX_HTML.contains(&format!("/app/{name}")), "index.html names {name}");
        }
        for (name, _, body) in ASSETS {
            for import in body.lines().filter_map(|l| l.split("from './").nth(1)) {
                let imported = import.split('\'').next().unwrap();
                assert!(ASSETS.iter().any(|(n, _, _)| *n == imported), "{name} imports {imported}, which is served");
            }
        }
    }
}
