//! The real Keycloak of the local infrastructure (`scripts/keycloak.sh up`, run by
//! `scripts/test.sh` through `scripts/infra.sh`), with the project's realm
//! `deploy/compose/keycloak/gitfaas-realm.json`: tokens of its demo users, and the
//! admin REST API (bootstrap admin of the master realm) for what a test needs beside the
//! realm — another realm, a short-lived client, a redirect URI for a frontend on a
//! random port. Everything a test creates there carries a unique name.

use serde_json::{json, Value};

pub const REALM: &str = "gitfaas";
/// What the realm's clients put in `aud`, and where the roles are.
pub const AUDIENCE: &str = "gitfaas";
pub const ROLES_CLAIM: &str = "realm_access.roles";
/// The public clients of the realm: the command line one and the web app's.
pub const CLI_CLIENT: &str = "gitfaas-cli";
pub const WEB_CLIENT: &str = "gitfaas-web";

/// Keycloak's base URL (`GITFAAS_TEST_KEYCLOAK`, default `http://127.0.0.1:8180`).
pub fn base_url() -> String {
    std::env::var("GITFAAS_TEST_KEYCLOAK").unwrap_or_else(|_| "http://127.0.0.1:8180".into())
}

/// The password of alice, bob and admin (`GITFAAS_DEMO_PASSWORD` at import).
pub fn demo_password() -> String {
    std::env::var("GITFAAS_DEMO_PASSWORD").unwrap_or_else(|_| "gitfaas".into())
}

pub fn issuer_of(realm: &str) -> String {
    format!("{}/realms/{realm}", base_url())
}

pub fn issuer() -> String {
    issuer_of(REALM)
}

pub fn token_endpoint(realm: &str) -> String {
    format!("{}/protocol/openid-connect/token", issuer_of(realm))
}

/// Makes the frontend trust the realm, the way `scripts/stack.sh` and compose configure it.
pub fn use_keycloak(settings: &mut gitfaas_frontend::Settings) {
    crate::use_oidc(settings, &issuer());
    let auth = &mut settings.frontend.auth;
    auth.audience = Some(AUDIENCE.into());
    auth.roles_claim = ROLES_CLAIM.into();
}

/// An access token of a demo user of the realm (password grant, `gitfaas-cli`).
pub async fn token(user: &str) -> String {
    token_of(REALM, CLI_CLIENT, user).await
}

pub async fn token_of(realm: &str, client_id: &str, user: &str) -> String {
    let answer = password_grant(realm, client_id, user).await;
    answer["access_token"].as_str().unwrap_or_else(|| panic!("no token for {user}: {answer}")).to_owned()
}

/// The token endpoint's answer to a password grant (a JSON error included).
pub async fn password_grant(realm: &str, client_id: &str, user: &str) -> Value {
    let password = demo_password();
    let form = [("grant_type", "password"), ("client_id", client_id), ("username", user), ("password", &password)];
    reqwest::Client::new()
        .post(token_endpoint(realm))
        .form(&form)
        .send()
        .await
        .expect("keycloak's token endpoint (scripts/keycloak.sh up)")
        .json()
        .await
        .expect("token json")
}

/// The claims of a JWT, unverified (to look at what Keycloak issued).
pub fn claims(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("a jwt");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).expect("base64url payload");
    serde_json::from_slice(&bytes).expect("json claims")
}

/// The realm file as Keycloak imports it, placeholders replaced by their defaults.
pub fn realm_representation() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/compose/keycloak/gitfaas-realm.json");
    let text = std::fs::read_to_string(path)
        .expect("realm file")
        .replace("${GITFAAS_WEB_URL}", "http://127.0.0.1:8080")
        .replace("${GITFAAS_DEMO_PASSWORD}", &demo_password())
        .replace("${GITFAAS_SERVICE_CLIENT_SECRET}", "gitfaas-service-secret");
    serde_json::from_str(&text).expect("realm json")
}

/// The audience mapper every client of the realm carries.
pub fn audience_mapper() -> Value {
    json!({"name": "gitfaas-audience", "protocol": "openid-connect", "protocolMapper": "oidc-audience-mapper",
           "config": {"included.custom.audience": AUDIENCE, "access.token.claim": "true",
                      "id.token.claim": "false", "introspection.token.claim": "true"}})
}

/// The admin REST API, as the bootstrap admin (`GITFAAS_TEST_KEYCLOAK_ADMIN`, `admin:admin`).
pub struct Admin {
    http: reqwest::Client,
    token: String,
}

impl Admin {
    pub async fn login() -> Admin {
        let credentials = std::env::var("GITFAAS_TEST_KEYCLOAK_ADMIN").unwrap_or_else(|_| "admin:admin".into());
        let (user, password) = credentials.split_once(':').expect("GITFAAS_TEST_KEYCLOAK_ADMIN is user:password");
        let form = [("grant_type", "password"), ("client_id", "admin-cli"), ("username", user), ("password", password)];
        let http = reqwest::Client::new();
        let answer: Value = http.post(token_endpoint("master")).form(&form).send().await.unwrap().json().await.unwrap();
        let token = answer["access_token"].as_str().unwrap_or_else(|| panic!("admin login: {answer}")).to_owned();
        Admin { http, token }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<&Value>) -> reqwest::Response {
        let mut request =
            self.http.request(method, format!("{}/admin/realms{path}", base_url())).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.expect("keycloak admin api");
        assert!(response.status().is_success(), "admin api {path}: {}", response.status());
        response
    }

    /// Creates a realm from its full representation (what `--import-realm` reads).
    pub async fn create_realm(&self, representation: &Value) {
        self.call(reqwest::Method::POST, "", Some(representation)).await;
    }

    pub async fn delete_realm(&self, realm: &str) {
        self.call(reqwest::Method::DELETE, &format!("/{realm}"), None).await;
    }

    /// Creates a client; returns its internal id.
    pub async fn create_client(&self, realm: &str, representation: &Value) -> String {
        self.call(reqwest::Method::POST, &format!("/{realm}/clients"), Some(representation)).await;
        self.client(realm, representation["clientId"].as_str().unwrap()).await["id"].as_str().unwrap().to_owned()
    }

    pub async fn delete_client(&self, realm: &str, id: &str) {
        self.call(reqwest::Method::DELETE, &format!("/{realm}/clients/{id}"), None).await;
    }

    /// A client's representation, by its client id.
    pub async fn client(&self, realm: &str, client_id: &str) -> Value {
        let found: Value = self
            .call(reqwest::Method::GET, &format!("/{realm}/clients?clientId={client_id}"), None)
            .await
            .json()
            .await
            .unwrap();
        found[0].clone()
    }

    /// Lets `client_id` redirect to `origin/…` and answer CORS for it (`add`), or no more.
    pub async fn allow_origin(&self, realm: &str, client_id: &str, origin: &str, add: bool) {
        let mut client = self.client(realm, client_id).await;
        let redirect = format!("{origin}/*");
        for (field, value) in [("redirectUris", redirect.as_str()), ("webOrigins", origin)] {
            let list = client[field].as_array_mut().expect("a list");
            list.retain(|v| v != value);
            if add {
                list.push(json!(value));
            }
        }
        let id = client["id"].as_str().unwrap().to_owned();
        self.call(reqwest::Method::PUT, &format!("/{realm}/clients/{id}"), Some(&client)).await;
    }
}
