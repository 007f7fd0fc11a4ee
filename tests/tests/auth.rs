//! Bearer tokens from two real OpenID providers: Keycloak with the project's realm
//! (users, roles in `realm_access.roles`, another realm, the wrong client, expiry,
//! tampering, the device authorization grant) and the npm test provider, whose key the
//! tests hold to forge every kind of bad token (claims, algorithms, `crit` and `typ`
//! headers); key rotation at the provider without a
//! frontend restart.

use gitfaas_tests::{keycloak, unique, use_oidc, Provider, Stack};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

fn claims(provider: &Provider) -> Value {
    let now = chrono_now();
    json!({"sub": "mallory", "iss": provider.issuer, "aud": gitfaas_tests::oidc::AUDIENCE,
           "iat": now, "exp": now + 600, "roles": ["user", "admin"]})
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

fn forge(provider: &Provider, edit: impl FnOnce(&mut Value)) -> String {
    let mut c = claims(provider);
    edit(&mut c);
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(provider.kid.clone());
    jsonwebtoken::encode(&header, &c, &EncodingKey::from_rsa_pem(&provider.private_pem).unwrap()).unwrap()
}

/// A token the provider's key signed, with its header edited.
fn forge_header(provider: &Provider, edit: impl FnOnce(&mut Header)) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(provider.kid.clone());
    edit(&mut header);
    jsonwebtoken::encode(&header, &claims(provider), &EncodingKey::from_rsa_pem(&provider.private_pem).unwrap())
        .unwrap()
}

fn b64(bytes: &[u8]) -> String {
    use std::fmt::Write;
    // base64url without padding, by hand: the tests need it for two crafted tokens only
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            let _ = write!(out, "{}", ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

async fn status_of(stack: &Stack, token: Option<&str>) -> (u16, Value, Option<String>) {
    let mut request = reqwest::Client::new().get(stack.url("/v1/jobs"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let www = response.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_owned());
    let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
    let body: Value = response.json().await.unwrap();
    if status == 401 {
        assert_eq!(content_type, "application/problem+json");
    }
    (status, body, www)
}

#[tokio::test(flavor = "multi_thread")]
async fn every_kind_of_bad_token_is_refused_with_a_401_problem() {
    let stack = Stack::start(false);
    let provider = Provider::shared();
    let valid = provider.token("alice").await;

    let mut tampered = valid.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    let (header, payload) = {
        let mut parts = valid.split('.');
        (parts.next().unwrap().to_owned(), parts.next().unwrap().to_owned())
    };
    let _ = header;
    let alg_none = format!("{}.{payload}.", b64(br#"{"alg":"none","typ":"JWT"}"#));
    let hs256_with_public_key = {
        let mut h = Header::new(Algorithm::HS256);
        h.kid = Some(provider.kid.clone());
        jsonwebtoken::encode(&h, &claims(provider), &EncodingKey::from_secret(&provider.public_pem)).unwrap()
    };
    let cases: Vec<(&str, Option<String>)> = vec![
        ("no token", None),
        ("garbage", Some("not-a-jwt".into())),
        ("expired", Some(forge(provider, |c| c["exp"] = json!(chrono_now() - 3600)))),
        ("not yet valid", Some(forge(provider, |c| c["nbf"] = json!(chrono_now() + 3600)))),
        ("wrong issuer", Some(forge(provider, |c| c["iss"] = json!("http://127.0.0.1:1/evil")))),
        ("wrong audience", Some(forge(provider, |c| c["aud"] = json!("someone-else")))),
        ("bad signature", Some(tampered)),
        ("alg none", Some(alg_none)),
        ("hs256 keyed with the public key", Some(hs256_with_public_key)),
    ];
    for (what, token) in cases {
        let (status, body, www) = status_of(&stack, token.as_deref()).await;
        assert_eq!(status, 401, "{what}: {body}");
        assert_eq!(body["type"], "https://gitfaas.dev/problems/unauthorized", "{what}");
        assert!(www.is_some_and(|w| w.starts_with("Bearer")), "{what}");
    }
    let (status, body, _) = status_of(&stack, Some(&valid)).await;
    assert_eq!(status, 200, "valid token: {body}");
    let forged_but_well_formed = forge(provider, |_| {});
    assert_eq!(status_of(&stack, Some(&forged_but_well_formed)).await.0, 200, "signed by the provider's key");
    let azp_shape = forge(provider, |c| {
        c["aud"] = json!("account");
        c["azp"] = json!(gitfaas_tests::oidc::AUDIENCE);
    });
    assert_eq!(status_of(&stack, Some(&azp_shape)).await.0, 200, "keycloak's azp shape");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_with_a_critical_header_parameter_or_another_type_is_refused_every_time() {
    let stack = Stack::start(false);
    let provider = Provider::shared();
    let issued = provider.token("alice").await;
    let issued_header: Value = {
        use base64::Engine;
        let part = issued.split('.').next().unwrap();
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    };
    assert_eq!(issued_header["typ"], "at+jwt", "the provider issues RFC 9068 access tokens");
    assert_eq!(status_of(&stack, Some(&issued)).await.0, 200);

    let refused = [
        ("an unknown critical parameter", forge_header(provider, |h| h.crit = Some(vec!["gitfaas-unknown".into()]))),
        ("a critical registered parameter", forge_header(provider, |h| h.crit = Some(vec!["exp".into()]))),
        ("an empty critical list", forge_header(provider, |h| h.crit = Some(vec![]))),
        ("a dpop proof's type", forge_header(provider, |h| h.typ = Some("dpop+jwt".into()))),
        ("a logout token's type", forge_header(provider, |h| h.typ = Some("logout+jwt".into()))),
        ("a JOSE type", forge_header(provider, |h| h.typ = Some("JOSE".into()))),
    ];
    for (what, token) in &refused {
        // twice: a refused token is not remembered as verified either
        for attempt in 1..=2 {
            let (status, body, www) = status_of(&stack, Some(token)).await;
            assert_eq!(status, 401, "{what} (attempt {attempt}): {body}");
            assert_eq!(body["type"], "https://gitfaas.dev/problems/unauthorized", "{what}");
            assert!(www.is_some_and(|w| w.starts_with("Bearer")), "{what}");
        }
    }
    let (_, body, _) = status_of(&stack, Some(&refused[0].1)).await;
    assert!(body["detail"].as_str().unwrap().contains("critical"), "{body}");

    for typ in [Some("at+jwt"), Some("application/at+jwt"), Some("AT+JWT"), Some("JWT"), Some("jwt"), None] {
        let token = forge_header(provider, |h| h.typ = typ.map(str::to_owned));
        let (status, body, _) = status_of(&stack, Some(&token)).await;
        assert_eq!(status, 200, "typ {typ:?}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_rotated_at_the_provider_is_picked_up_without_a_restart() {
    let provider = Box::leak(Box::new(Provider::start(0)));
    let issuer = provider.issuer.clone();
    let stack = Stack::start_with(false, Box::new(move |s, _| use_oidc(s, &issuer)));
    let before = provider.token("bob").await;
    assert_eq!(status_of(&stack, Some(&before)).await.0, 200);
    let new_kid = provider.rotate_key();
    assert_ne!(new_kid, provider.kid);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await; // past the refresh rate limit
    let after = provider.token("bob").await;
    let (status, body, _) = status_of(&stack, Some(&after)).await;
    assert_eq!(status, 200, "token signed with the rotated key: {body}");
}

fn keycloak_stack() -> Stack {
    Stack::start_with(false, Box::new(|frontend, _| keycloak::use_keycloak(frontend)))
}

async fn admin_put(stack: &Stack, token: &str) -> u16 {
    let response = reqwest::Client::new()
        .put(stack.url("/v1/admin/observer/config"))
        .bearer_auth(token)
        .json(&json!({"max_workers": 3}))
        .send()
        .await
        .unwrap();
    response.status().as_u16()
}

/// Opens the observer's report stream (a websocket) with `token` in the query, as a
/// browser does: `Ok` when upgraded, else the refusal's status.
async fn report_stream(stack: &Stack, token: &str) -> Result<(), u16> {
    let url = stack.url(&format!("/v1/admin/observer/reports/stream?access_token={token}")).replacen("http", "ws", 1);
    match tokio_tungstenite::connect_async(url).await {
        Ok(_) => Ok(()),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => Err(response.status().as_u16()),
        Err(error) => panic!("report stream: {error}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn keycloak_tokens_of_realm_users_are_accepted_with_their_realm_roles() {
    let stack = keycloak_stack();
    let (alice, bob, admin) =
        (keycloak::token("alice").await, keycloak::token("bob").await, keycloak::token("admin").await);
    let claims = keycloak::claims(&alice);
    assert_eq!(claims["iss"], keycloak::issuer());
    assert_eq!(claims["realm_access"]["roles"], json!(["user"]), "{claims}");
    assert_eq!(status_of(&stack, Some(&alice)).await.0, 200);

    assert_eq!(stack.get_as(&alice, "/v1/admin/observer/status").await.status(), 403, "alice is no admin");
    assert_eq!(admin_put(&stack, &alice).await, 403);
    assert_eq!(stack.get_as(&admin, "/v1/admin/observer/status").await.status(), 404, "admin passes: no report yet");
    assert_eq!(admin_put(&stack, &admin).await, 202, "admin may set the observer's parameters");
    assert_eq!(report_stream(&stack, &alice).await, Err(403), "alice may not follow the observer's reports");
    assert_eq!(report_stream(&stack, "not-a-token").await, Err(401));
    assert_eq!(report_stream(&stack, &admin).await, Ok(()), "admin may");

    // the owner is the token's subject: alice's job is hers, not bob's
    let id = stack
        .submit_ok(&json!({"repo": gitfaas_tests::git_repo(&[("gitfaas.toml", "runtime = \"python\"\n")]),
                                      "ref": "main", "input": {}}))
        .await;
    let path = format!("/v1/jobs/{id}");
    assert_eq!(stack.get_as(&alice, &path).await.status(), 200);
    assert_eq!(stack.get_as(&bob, &path).await.status(), 404);

    let machine: Value = reqwest::Client::new()
        .post(keycloak::token_endpoint(keycloak::REALM))
        .basic_auth("gitfaas-service", Some("gitfaas-service-secret"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let machine = machine["access_token"].as_str().expect("a service account token");
    assert_eq!(status_of(&stack, Some(machine)).await.0, 200, "client credentials of gitfaas-service");
}

#[tokio::test(flavor = "multi_thread")]
async fn keycloak_tokens_of_another_realm_or_client_expired_or_tampered_are_refused() {
    let stack = keycloak_stack();
    let admin = keycloak::Admin::login().await;

    // the same realm under another name: same users, clients and audience, another issuer and key
    let other = unique("gitfaas-other");
    let mut realm = keycloak::realm_representation();
    realm["realm"] = json!(other);
    admin.create_realm(&realm).await;
    let other_realm = keycloak::token_of(&other, keycloak::CLI_CLIENT, "alice").await;
    assert_eq!(keycloak::claims(&other_realm)["aud"], keycloak::AUDIENCE);

    // a client of the realm without the audience mapper: Keycloak's own admin-cli
    let wrong_audience = keycloak::token_of(keycloak::REALM, "admin-cli", "alice").await;

    // alice's token claiming the admin role, signature kept; and one with its signature altered
    let alice = keycloak::token("alice").await;
    let parts: Vec<&str> = alice.split('.').collect();
    let mut claims = keycloak::claims(&alice);
    claims["realm_access"]["roles"] = json!(["user", "admin"]);
    let promoted = format!("{}.{}.{}", parts[0], b64(claims.to_string().as_bytes()), parts[2]);
    let mut bad_signature = alice.clone();
    let last = bad_signature.pop().unwrap();
    bad_signature.push(if last == 'A' { 'B' } else { 'A' });

    for (what, token) in [
        ("another realm", &other_realm),
        ("another client's audience", &wrong_audience),
        ("claims edited", &promoted),
        ("bad signature", &bad_signature),
    ] {
        let (status, body, www) = status_of(&stack, Some(token)).await;
        assert_eq!(status, 401, "{what}: {body}");
        assert_eq!(body["type"], "https://gitfaas.dev/problems/unauthorized", "{what}");
        assert!(www.is_some_and(|w| w.starts_with("Bearer")), "{what}");
    }
    admin.delete_realm(&other).await;

    // expiry: a client whose tokens live one second; accepted at first, refused after exp + leeway
    let short = unique("gitfaas-short");
    let id = admin
        .create_client(
            keycloak::REALM,
            &json!({"clientId": short, "publicClient": true, "directAccessGrantsEnabled": true,
                    "standardFlowEnabled": false, "attributes": {"access.token.lifespan": "1"},
                    "protocolMappers": [keycloak::audience_mapper()]}),
        )
        .await;
    let expiring = keycloak::token_of(keycloak::REALM, &short, "alice").await;
    let exp = keycloak::claims(&expiring)["exp"].as_i64().unwrap();
    assert!(exp - chrono_now() <= 1, "lifespan of one second");
    assert_eq!(status_of(&stack, Some(&expiring)).await.0, 200, "still valid within the leeway");
    let leeway = 5;
    tokio::time::sleep(std::time::Duration::from_secs((exp + leeway + 1 - chrono_now()).max(0) as u64)).await;
    let (status, body, _) = status_of(&stack, Some(&expiring)).await;
    assert_eq!(status, 401, "expired: {body}");
    admin.delete_client(keycloak::REALM, &id).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cli_signs_in_with_the_device_authorization_grant_approved_in_keycloaks_pages() {
    let stack = keycloak_stack();
    let http = reqwest::Client::new();
    let endpoint = format!("{}/protocol/openid-connect", keycloak::issuer());
    let device: Value = http
        .post(format!("{endpoint}/auth/device"))
        .form(&[("client_id", keycloak::CLI_CLIENT), ("scope", "openid")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let device_code = device["device_code"].as_str().unwrap_or_else(|| panic!("device flow: {device}"));
    let poll = || async {
        let form = [
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("client_id", keycloak::CLI_CLIENT),
            ("device_code", device_code),
        ];
        http.post(format!("{endpoint}/token")).form(&form).send().await.unwrap().json::<Value>().await.unwrap()
    };
    assert_eq!(poll().await["error"], "authorization_pending", "not approved yet");

    let web = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("web");
    let approve = tokio::process::Command::new("node")
        .arg(web.join("device.mjs"))
        .env("GITFAAS_DEVICE_URL", device["verification_uri"].as_str().unwrap())
        .env("GITFAAS_DEVICE_USER_CODE", device["user_code"].as_str().unwrap())
        .env("GITFAAS_DEVICE_USER", "bob")
        .env("GITFAAS_DEVICE_PASSWORD", keycloak::demo_password())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(std::time::Duration::from_secs(120), approve).await.expect("in 120 s").unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("ok - device login approved"), "{stdout}");

    let interval = device["interval"].as_u64().unwrap_or(5);
    let mut answer = poll().await;
    for _ in 0..10 {
        if answer["error"] != "slow_down" && answer["error"] != "authorization_pending" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_secs(interval)).await;
        answer = poll().await;
    }
    let token = answer["access_token"].as_str().unwrap_or_else(|| panic!("no token after approval: {answer}"));
    let claims = keycloak::claims(token);
    assert_eq!((claims["preferred_username"].as_str(), claims["azp"].as_str()), (Some("bob"), Some("gitfaas-cli")));
    let (status, body, _) = status_of(&stack, Some(token)).await;
    assert_eq!(status, 200, "the device's token at the frontend: {body}");
    let response = stack.submit_as(token, &json!({"repo": "git://127.0.0.1:1/x", "input": {}})).await;
    assert_eq!(response.status(), 202, "bob may submit");
}
