//! Bearer tokens from a real OpenID provider: what is refused, what is accepted,
//! and key rotation at the provider without a frontend restart.

use gitfaas_tests::{use_oidc, Provider, Stack};
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
