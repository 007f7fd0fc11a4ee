//! The web app the frontend serves at `/`: its HTTP surface, and a real browser
//! (Debian's chromium, driven by `tests/web/webapp.mjs` through playwright-core)
//! signing in, running a python job, cancelling a running one, showing a problem,
//! erasing a job, and signing in through Keycloak's real login page with the
//! authorization code flow and PKCE (realm client `gitfaas-web`), all on loopback;
//! the overview chart's data against the API's, and as an admin the operator view
//! against the observer's latest report and the decision a load step causes.
//! Screenshots go to `GITFAAS_TEST_ARTIFACTS` (default: a `gitfaas-web-artifacts`
//! directory under the system's temporary directory), never into the repository.

use std::path::Path;
use std::time::Duration;

use gitfaas_tests::{git_repo, keycloak, ops, Stack};

const WEB_CLIENT_ID: &str = keycloak::WEB_CLIENT;

fn web_stack(with_executor: bool) -> Stack {
    Stack::start_with(
        with_executor,
        Box::new(|frontend, _| {
            keycloak::use_keycloak(frontend);
            frontend.frontend.web.client_id = Some(WEB_CLIENT_ID.into());
        }),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn the_page_and_its_assets_are_served_without_a_token_under_a_strict_policy() {
    let stack = web_stack(false);
    let page = reqwest::get(stack.url("/")).await.unwrap();
    assert_eq!(page.status(), 200);
    let header = |name: &str| page.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert!(header("content-type").starts_with("text/html"));
    let policy = header("content-security-policy");
    let issuer_origin = url_origin(&keycloak::issuer());
    assert!(policy.contains(&format!("connect-src 'self' {issuer_origin};")), "{policy}");
    assert!(policy.contains("script-src 'self';") && policy.contains("default-src 'none'"), "{policy}");
    assert_eq!(header("x-content-type-options"), "nosniff");
    let html = page.text().await.unwrap();
    assert!(!html.contains("<script>"), "no inline script");

    for (path, content_type) in
        [("/app/app.js", "text/javascript"), ("/app/app.css", "text/css"), ("/app/icon.svg", "image/svg+xml")]
    {
        let asset = reqwest::get(stack.url(path)).await.unwrap();
        assert_eq!(asset.status(), 200, "{path}");
        let served = asset.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(served.starts_with(content_type), "{path}: {served}");
    }
    let config: serde_json::Value = reqwest::get(stack.url("/app/config.json")).await.unwrap().json().await.unwrap();
    assert_eq!(config["auth"], "oidc");
    assert_eq!(config["issuer"], keycloak::issuer());
    assert_eq!(config["client_id"], WEB_CLIENT_ID);
    assert!(config["resource"].is_null(), "keycloak takes no resource indicator: {config}");

    let missing = reqwest::get(stack.url("/app/missing.js")).await.unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(missing.headers()["content-type"], "application/problem+json");
    let posted = reqwest::Client::new().post(stack.url("/")).send().await.unwrap();
    assert_eq!(posted.status(), 405);
    assert_eq!(posted.headers()["allow"], "GET");
}

fn url_origin(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    format!("{scheme}://{}", rest.split('/').next().unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn in_a_browser_a_user_signs_in_runs_follows_cancels_and_erases_jobs_and_sees_problems() {
    let stack = web_stack(true);
    let python_repo = git_repo(&[
        ("gitfaas.toml", "runtime = \"python\"\n"),
        (
            "main.py",
            "def main(data, credentials):\n    print('hello from the web test')\n    \
             return {'greeting': 'hello, ' + data['name']}\n",
        ),
    ]);
    let slow_repo = git_repo(&[
        ("gitfaas.toml", "runtime = \"command\"\nentry = \"bin/nap\"\n"),
        ("bin/nap", "#!/bin/sh\nsleep 60\necho '\"x\"'\n"),
    ]);
    let nap_repo = git_repo(&[
        ("gitfaas.toml", "runtime = \"command\"\nentry = \"bin/nap\"\n"),
        ("bin/nap", "#!/bin/sh\nsleep 5\necho '\"x\"'\n"),
    ]);
    // the operator view's reports: an observer that may recommend up to 3 workers
    ops::start_observer(&stack, 3);
    let admin_token = keycloak::token("admin").await;
    let artifacts = std::env::var_os("GITFAAS_TEST_ARTIFACTS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("gitfaas-web-artifacts"));
    let web = Path::new(env!("CARGO_MANIFEST_DIR")).join("web");
    assert!(
        web.join("node_modules/playwright-core").is_dir(),
        "playwright-core is missing: scripts/test.sh installs it (npm ci --prefix tests/web)"
    );
    // the realm's web client redirects to GITFAAS_WEB_URL only: let it reach this frontend too
    keycloak::Admin::login().await.allow_origin(keycloak::REALM, WEB_CLIENT_ID, &stack.base_url, true).await;
    let run = tokio::process::Command::new("node")
        .arg(web.join("webapp.mjs"))
        .env("GITFAAS_WEB_URL", &stack.base_url)
        .env("GITFAAS_WEB_TOKEN", &stack.token)
        .env("GITFAAS_WEB_ISSUER", keycloak::issuer())
        .env("GITFAAS_WEB_CLIENT_ID", WEB_CLIENT_ID)
        .env("GITFAAS_WEB_USER", "alice")
        .env("GITFAAS_WEB_PASSWORD", keycloak::demo_password())
        .env("GITFAAS_WEB_PYTHON_REPO", &python_repo)
        .env("GITFAAS_WEB_SLOW_REPO", &slow_repo)
        .env("GITFAAS_WEB_NAP_REPO", &nap_repo)
        .env("GITFAAS_WEB_ADMIN_TOKEN", &admin_token)
        .env("GITFAAS_WEB_ARTIFACTS", &artifacts)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(300), run)
        .await
        .expect("the browser test finishes in 300 s")
        .expect("node runs");
    // a fresh login: the admin's token lives a minute
    keycloak::Admin::login().await.allow_origin(keycloak::REALM, WEB_CLIENT_ID, &stack.base_url, false).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "browser test failed ({}):\n{stdout}\n{stderr}", output.status);
    println!("screenshots in {}", artifacts.display());
    for step in [
        "ok - page, assets and config.json are served",
        "ok - signed in with a pasted token",
        "went to succeeded live, its log and output are shown",
        "deployed at version 1, invoked by name, run as a pipeline, deleted",
        "was cancelled from the page",
        "ok - an invalid repository shows the problem detail",
        "was erased from the page",
        "went to the frontend only",
        "ok - signing out forgets the token",
        "ok - signed in through the provider's login page with the authorization code flow and PKCE (S256) as alice",
        "ran; every request went to the frontend or the provider",
        "ok - the overview chart holds what the API lists",
        "ok - the operator view shows the latest observer report",
        "an add decision is marked",
        "web app: all steps passed",
    ] {
        assert!(stdout.contains(step), "step `{step}` missing from:\n{stdout}\n{stderr}");
    }
}
