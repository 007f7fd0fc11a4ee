//! A real OpenID provider for the tests: `tests/oidc/provider.mjs` (npm
//! oidc-provider) as a child process. It exits when our end of its stdin closes,
//! so it never outlives the test process.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};

use serde_json::Value;

pub const AUDIENCE: &str = "urn:gitfaas";

pub struct Provider {
    pub issuer: String,
    pub port: u16,
    /// The provider's signing key, to forge tokens it did not issue.
    pub private_pem: Vec<u8>,
    pub public_pem: Vec<u8>,
    pub kid: String,
    child: Mutex<Option<(Child, ChildStdin)>>,
    dir: PathBuf,
}

fn provider_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("oidc")
}

impl Provider {
    /// Starts a provider with a fresh key; `port` 0 picks a free one.
    pub fn start(port: u16) -> Provider {
        let dir = tempfile::tempdir().expect("tempdir").keep();
        let (child, stdin, line) = spawn(port, &dir);
        let info: Value = serde_json::from_str(&line).expect("provider prints its issuer");
        Provider {
            issuer: info["issuer"].as_str().unwrap().to_owned(),
            port: info["port"].as_u64().unwrap() as u16,
            kid: info["kid"].as_str().unwrap().to_owned(),
            private_pem: std::fs::read(dir.join("key.pem")).unwrap(),
            public_pem: std::fs::read(dir.join("key.pem.pub")).unwrap(),
            child: Mutex::new(Some((child, stdin))),
            dir,
        }
    }

    /// The provider shared by a test binary.
    pub fn shared() -> &'static Provider {
        static PROVIDER: OnceLock<Provider> = OnceLock::new();
        PROVIDER.get_or_init(|| Provider::start(0))
    }

    /// Restarts on the same port with a new signing key (key rotation).
    pub fn rotate_key(&self) -> String {
        let mut child = self.child.lock().unwrap();
        if let Some((mut process, stdin)) = child.take() {
            drop(stdin);
            let _ = process.kill();
            let _ = process.wait();
        }
        let (process, stdin, line) = spawn(self.port, &self.dir);
        *child = Some((process, stdin));
        let info: Value = serde_json::from_str(&line).unwrap();
        info["kid"].as_str().unwrap().to_owned()
    }

    /// An access token for `client` (alice, bob or admin) from the token endpoint.
    pub async fn token(&self, client: &str) -> String {
        let response: Value = reqwest::Client::new()
            .post(format!("{}/token", self.issuer))
            .basic_auth(client, Some(format!("{client}-secret")))
            .form(&[("grant_type", "client_credentials"), ("resource", AUDIENCE), ("scope", "jobs")])
            .send()
            .await
            .expect("token endpoint")
            .json()
            .await
            .expect("token json");
        response["access_token"].as_str().unwrap_or_else(|| panic!("no token: {response}")).to_owned()
    }
}

fn spawn(port: u16, dir: &Path) -> (Child, ChildStdin, String) {
    let mut child = Command::new("node")
        .arg(provider_dir().join("provider.mjs"))
        .arg(format!("--port={port}"))
        .arg(format!("--pem-out={}", dir.join("key.pem").display()))
        .arg("--stdin-exit")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("node runs tests/oidc/provider.mjs (npm install done by scripts/test.sh)");
    let stdin = child.stdin.take().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).expect("provider output");
    assert!(!line.is_empty(), "oidc provider did not start");
    (child, stdin, line)
}
