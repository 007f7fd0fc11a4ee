//! The function contract: how a repository declares its runtime, and how each
//! runtime is turned into a container command and stdin.
//!
//! A repository has `gitfaas.toml` at its root:
//!
//! ```toml
//! runtime = "python"   # or "command"
//! entry = "main.py"    # python: file defining main(data, credentials); default main.py
//!                      # command: executable reading JSON on stdin; default ./main
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use serde_json::{json, Value};

pub const MANIFEST_FILE: &str = "gitfaas.toml";
const PYTHON_RUNNER: &str = include_str!("runner.py");

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ManifestError {
    #[error("repository has no {MANIFEST_FILE} and the job names no runtime")]
    Missing,
    #[error("{MANIFEST_FILE} is invalid: {0}")]
    Invalid(String),
    #[error("runtime `{0}` is not offered by this executor (known: {1})")]
    UnknownRuntime(String, String),
    #[error("job asks for runtime `{requested}` but the repository declares `{declared}`")]
    Mismatch { requested: String, declared: String },
    #[error("entry `{0}` must be a relative path inside the repository")]
    BadEntry(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    runtime: String,
    entry: Option<String>,
}

/// A resolved plan for running a function.
#[derive(Debug, Clone, PartialEq)]
pub struct Launch {
    pub runtime: String,
    pub image: String,
    pub command: Vec<String>,
    pub stdin: Vec<u8>,
}

/// Reads the manifest in `checkout` and decides image, command and stdin.
/// `images` maps the runtimes this executor offers to their images.
pub fn plan(
    checkout: &Path,
    code_mount: &str,
    requested: Option<&str>,
    images: &BTreeMap<String, String>,
    input: &Value,
) -> Result<Launch, ManifestError> {
    let manifest = match std::fs::read_to_string(checkout.join(MANIFEST_FILE)) {
        Ok(text) => {
            Some(toml::from_str::<Manifest>(&text).map_err(|e| ManifestError::Invalid(e.message().to_owned()))?)
        }
        Err(_) => None,
    };
    let (runtime, entry) = match (&manifest, requested) {
        (Some(m), Some(r)) if m.runtime != r => {
            return Err(ManifestError::Mismatch { requested: r.to_owned(), declared: m.runtime.clone() })
        }
        (Some(m), _) => (m.runtime.clone(), m.entry.clone()),
        (None, Some(r)) => (r.to_owned(), None),
        (None, None) => return Err(ManifestError::Missing),
    };
    let image = images.get(&runtime).cloned().ok_or_else(|| {
        ManifestError::UnknownRuntime(runtime.clone(), images.keys().cloned().collect::<Vec<_>>().join(", "))
    })?;
    let (command, stdin) = match runtime.as_str() {
        "python" => {
            let entry = checked_entry(entry.unwrap_or_else(|| "main.py".into()))?;
            let command = ["python3", "-I", "-c", PYTHON_RUNNER, code_mount, &entry].map(String::from).to_vec();
            (command, json!({"data": input, "credentials": {}}))
        }
        _ => {
            let entry = checked_entry(entry.unwrap_or_else(|| "main".into()))?;
            (vec![format!("{code_mount}/{entry}")], input.clone())
        }
    };
    Ok(Launch { runtime, image, command, stdin: serde_json::to_vec(&stdin).expect("json values serialise") })
}

fn checked_entry(entry: String) -> Result<String, ManifestError> {
    let path = Path::new(&entry);
    let inside = path.components().all(|c| matches!(c, std::path::Component::Normal(_)));
    if entry.is_empty() || !inside {
        return Err(ManifestError::BadEntry(entry));
    }
    Ok(entry)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn images() -> BTreeMap<String, String> {
        BTreeMap::from([("python".into(), "py:1".into()), ("command".into(), "bb:1".into())])
    }

    fn with_manifest(text: Option<&str>) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        if let Some(text) = text {
            std::fs::write(dir.path().join(MANIFEST_FILE), text).unwrap();
        }
        dir
    }

    #[test]
    fn python_manifest_runs_the_runner_with_data_and_credentials_on_stdin() {
        let dir = with_manifest(Some("runtime = \"python\"\nentry = \"src/handler.py\"\n"));
        let launch = plan(dir.path(), "/code", None, &images(), &json!({"n": 2})).unwrap();
        assert_eq!(launch.image, "py:1");
        assert_eq!(&launch.command[..3], ["python3", "-I", "-c"]);
        assert_eq!(&launch.command[4..], ["/code", "src/handler.py"]);
        let stdin: Value = serde_json::from_slice(&launch.stdin).unwrap();
        assert_eq!(stdin, json!({"data": {"n": 2}, "credentials": {}}));
    }

    #[test]
    fn command_runtime_gets_the_input_itself_on_stdin() {
        let dir = with_manifest(Some("runtime = \"command\"\n"));
        let launch = plan(dir.path(), "/code", Some("command"), &images(), &json!([1])).unwrap();
        assert_eq!(launch.command, ["/code/main"]);
        assert_eq!(launch.stdin, b"[1]");
    }

    #[test]
    fn bad_manifests_and_requests_are_explained() {
        let none = with_manifest(None);
        assert_eq!(plan(none.path(), "/c", None, &images(), &Value::Null), Err(ManifestError::Missing));
        assert!(plan(none.path(), "/c", Some("python"), &images(), &Value::Null).is_ok());
        let ruby = with_manifest(Some("runtime = \"ruby\"\n"));
        assert!(matches!(
            plan(ruby.path(), "/c", None, &images(), &Value::Null),
            Err(ManifestError::UnknownRuntime(..))
        ));
        let py = with_manifest(Some("runtime = \"python\"\n"));
        assert!(matches!(
            plan(py.path(), "/c", Some("command"), &images(), &Value::Null),
            Err(ManifestError::Mismatch { .. })
        ));
        let escape = with_manifest(Some("runtime = \"python\"\nentry = \"../x.py\"\n"));
        assert!(matches!(plan(escape.path(), "/c", None, &images(), &Value::Null), Err(ManifestError::BadEntry(_))));
        let typo = with_manifest(Some("runtim = \"python\"\n"));
        assert!(matches!(plan(typo.path(), "/c", None, &images(), &Value::Null), Err(ManifestError::Invalid(_))));
    }
}
