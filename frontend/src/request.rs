//! The submit request: strict parsing (unknown fields refused, errors name the
//! field) and validation against the operator's limits and policy.

use std::collections::BTreeMap;

use gitfaas_common::policy::{self, PolicySettings, RepoUrl};
use gitfaas_common::schema::{
    check_args, CheckoutPath, DataLink, Delivery, Dependencies, GitRef, Mode, Resources, RuntimeName, Submodules,
};
use gitfaas_common::{sealed, JobSpec};
use serde::Deserialize;
use serde_json::Value;
use zeroize::Zeroizing;

use crate::settings::FrontendSettings;

/// The least memory (MiB), CPU (thousandths of a core) and pids a job may ask for;
/// the most are the operator's (`limits.max_*`). The served document states both.
pub const MIN_MEMORY_MB: u32 = 16;
pub const MIN_CPU_MILLIS: u32 = 10;
pub const MIN_PIDS: u32 = 8;
/// The longest `Idempotency-Key`, in characters.
pub const MAX_IDEMPOTENCY_KEY_CHARS: usize = 200;

/// A request the checks refuse: why, and the field at fault when there is one
/// (the route answers it 400).
#[derive(Debug, thiserror::Error)]
#[error("{detail}")]
pub struct Invalid {
    pub detail: String,
    pub field: Option<String>,
}

impl Invalid {
    /// `field` is refused for `detail`.
    pub fn of(field: &str, detail: impl Into<String>) -> Self {
        Self { detail: detail.into(), field: Some(field.to_owned()) }
    }
}

/// Topics one job (or function) may publish to.
pub const MAX_PUBLISH_TOPICS: usize = 16;

/// A job submission. Unknown fields are refused.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitRequest {
    /// Repository URL (`https`, `http` or `git` by default; no embedded credentials).
    #[schema(example = "https://git.example.org/team/function.git")]
    pub repo: String,
    /// Branch, tag or commit; default `HEAD` (the default branch).
    #[serde(rename = "ref", default)]
    pub git_ref: Option<String>,
    /// Runtime the job expects; must agree with the repository's `gitfaas.toml`.
    #[serde(default)]
    pub runtime: Option<String>,
    /// Any JSON value, handed to the function.
    #[serde(default)]
    #[schema(value_type = Value)]
    pub input: Value,
    #[serde(default, deserialize_with = "whole_number")]
    pub timeout_secs: Option<u32>,
    #[serde(default)]
    pub resources: ResourceRequest,
    /// Secrets for the function (`main(data, credentials)`), e.g. `git_token` for a
    /// private repository. The frontend seals them to the executors' public key at
    /// once; they are never stored or published in the clear.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub credentials: Option<PlainCredentials>,
    /// Credentials the client sealed itself to `GET /v1/keys/executor` (base64 of
    /// an X25519 sealed box of a JSON object of strings).
    #[serde(default)]
    pub sealed_credentials: Option<String>,
    /// Files downloaded into `/input` before the function runs.
    #[serde(default)]
    pub sources: Vec<DataLink>,
    /// Files of `/output` uploaded after the function succeeded.
    #[serde(default)]
    pub sinks: Vec<DataLink>,
    /// What to run, overriding the manifest's `entry`: a path inside the repository
    /// (relative, no `.` or `..` parts), or for python `package.module:function`, for node `file.js:export`.
    /// With `runtime`, a repository needs no `gitfaas.toml`.
    #[serde(default)]
    pub entry: Option<String>,
    /// Arguments of the `command` runtime's executable, passed exactly (at most 64,
    /// each at most 4096 characters, no NUL). Other runtimes take none.
    #[serde(default)]
    pub args: Vec<String>,
    /// Directory inside the repository the function runs in; default its root.
    #[serde(default)]
    pub workdir: Option<String>,
    /// The processing guarantee: `at_most_once` (never run twice; a run whose
    /// executor is lost ends `failed`) or `at_least_once` (the default: run again
    /// elsewhere). The operator may allow only some.
    #[serde(default)]
    pub delivery: Option<Delivery>,
    /// `install` (the default): the executor installs the dependencies the
    /// checkout declares before the run; `skip`: they are ignored.
    #[serde(default)]
    pub dependencies: Option<Dependencies>,
    /// `empty` (the default): each submodule is an empty directory, as `git clone`
    /// leaves it; `fetch`: each is fetched at the commit its gitlink pins.
    #[serde(default)]
    pub submodules: Option<Submodules>,
    /// `function` (the default): the entry's function is called with `input`;
    /// `script` (python and node): the entry runs as `python3 ENTRY ARGS…`,
    /// `python3 -m MODULE ARGS…` (args `["-m", MODULE, …]`, no entry) or `node
    /// ENTRY ARGS…`, `input` as JSON on stdin, stdout the output (JSON when it
    /// parses, else its text), the exit code the status. Over the manifest's `mode`.
    #[serde(default)]
    pub mode: Option<Mode>,
    /// Topics the function may publish to with `ctx.publish` (at most 16). Each
    /// must be one the operator lets owners bind (`triggers.allowed_topics`), and
    /// becomes the caller's, as a topic trigger's do; a publish elsewhere fails the job.
    #[serde(default)]
    pub publish: Vec<String>,
}

/// Credentials in the clear, as received: redacted in `Debug`, zeroized on drop.
#[derive(Deserialize)]
#[serde(transparent)]
pub struct PlainCredentials(BTreeMap<String, String>);

impl std::fmt::Debug for PlainCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PlainCredentials({} redacted)", self.0.len())
    }
}

impl Drop for PlainCredentials {
    fn drop(&mut self) {
        for value in self.0.values_mut() {
            zeroize::Zeroize::zeroize(value);
        }
    }
}

/// Sandbox limits; each defaults from configuration and is capped by it.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResourceRequest {
    #[serde(default, deserialize_with = "whole_number")]
    pub memory_mb: Option<u32>,
    #[serde(default, deserialize_with = "whole_number")]
    pub cpu_millis: Option<u32>,
    #[serde(default, deserialize_with = "whole_number")]
    pub pids: Option<u32>,
}

/// A count: JSON's `889` or `889.0` (the same integer to JSON Schema, and so to a
/// client generated from the document); `889.5` and negatives are refused.
fn whole_number<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<u32>, D::Error> {
    let Some(number) = Option::<serde_json::Number>::deserialize(deserializer)? else { return Ok(None) };
    let whole = number.as_u64().or_else(|| number.as_f64().filter(|f| f.fract() == 0.0 && *f >= 0.0).map(|f| f as u64));
    match whole {
        Some(value) => u32::try_from(value).map(Some).map_err(|_| serde::de::Error::custom("a number out of range")),
        None => Err(serde::de::Error::custom(format!("invalid value: {number}, expected a whole number"))),
    }
}

/// Parses a JSON body, naming the offending field in the error.
pub fn parse(body: &[u8]) -> Result<SubmitRequest, Invalid> {
    let deserializer = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let inner = error.inner().to_string();
        let path = error.path().to_string();
        let named = inner.split('`').nth(1).filter(|_| inner.contains("field `")).map(str::to_owned);
        // missing fields are reported at the parent's path, unknown ones at their own
        let field = match (named, path.as_str()) {
            (Some(name), ".") => Some(name),
            (Some(name), path) if path.ends_with(name.as_str()) => Some(path.to_owned()),
            (Some(name), parent) => Some(format!("{parent}.{name}")),
            (None, "." | "?") => None,
            (None, path) => Some(path.to_owned()),
        };
        Invalid { detail: format!("invalid job request: {inner}"), field }
    })
}

impl SubmitRequest {
    /// Checks the request and fills in defaults.
    pub fn into_spec(self, settings: &FrontendSettings) -> Result<JobSpec, Invalid> {
        let repo = RepoUrl::parse(&self.repo, &settings.policy).map_err(|e| Invalid::of("repo", e.to_string()))?;
        let (entry, workdir) = self.checked_paths()?;
        let sealed_credentials = seal_credentials(self.credentials, self.sealed_credentials, settings)?;
        for (field, links) in [("sources", &self.sources), ("sinks", &self.sinks)] {
            validate_links(field, links, &settings.policy)?;
        }
        let git_ref = match self.git_ref {
            Some(git_ref) => GitRef::try_from(git_ref).map_err(|e| Invalid::of("ref", e.to_string()))?,
            None => GitRef::head(),
        };
        let runtime =
            self.runtime.map(RuntimeName::try_from).transpose().map_err(|e| Invalid::of("runtime", e.to_string()))?;
        if let Some(runtime) = &runtime {
            if !settings.runtimes.iter().any(|offered| offered == runtime.as_str()) {
                return Err(Invalid::of(
                    "runtime",
                    format!("unknown runtime `{runtime}`; offered: {}", settings.runtimes.join(", ")),
                ));
            }
        }
        if self.publish.len() > MAX_PUBLISH_TOPICS {
            return Err(Invalid::of("publish", format!("at most {MAX_PUBLISH_TOPICS} topics")));
        }
        let delivery = self.delivery.unwrap_or_default();
        if !settings.delivery.allowed.contains(&delivery) {
            let allowed: Vec<&str> = settings.delivery.allowed.iter().map(|d| d.as_str()).collect();
            return Err(Invalid::of(
                "delivery",
                format!("delivery `{}` is not allowed here; allowed: {}", delivery.as_str(), allowed.join(", ")),
            ));
        }
        let l = &settings.limits;
        let bounded = |field: &str, value: Option<u32>, default: u32, min: u32, max: u32| {
            let value = value.unwrap_or(default);
            if value < min || value > max {
                return Err(Invalid::of(field, format!("{field} must be between {min} and {max}")));
            }
            Ok(value)
        };
        let r = &self.resources;
        Ok(JobSpec {
            repo,
            git_ref,
            runtime,
            input: self.input,
            timeout_secs: bounded("timeout_secs", self.timeout_secs, l.timeout_secs, 1, l.max_timeout_secs)?,
            resources: Resources {
                memory_mb: bounded("resources.memory_mb", r.memory_mb, l.memory_mb, MIN_MEMORY_MB, l.max_memory_mb)?,
                cpu_millis: bounded(
                    "resources.cpu_millis",
                    r.cpu_millis,
                    l.cpu_millis,
                    MIN_CPU_MILLIS,
                    l.max_cpu_millis,
                )?,
                pids: bounded("resources.pids", r.pids, l.pids, MIN_PIDS, l.max_pids)?,
            },
            sealed_credentials,
            sources: self.sources,
            sinks: self.sinks,
            retries: 0,
            entry,
            args: self.args,
            workdir,
            delivery,
            function: None,
            resolve_only: false,
            dependencies: self.dependencies.unwrap_or_default(),
            submodules: self.submodules.unwrap_or_default(),
            mode: self.mode,
            origin: None,
            publish: self.publish,
        })
    }

    /// What the strings alone tell of `entry`, `workdir` and `args`; the executor
    /// decides the rest against the checkout.
    fn checked_paths(&self) -> Result<(Option<CheckoutPath>, Option<CheckoutPath>), Invalid> {
        let path = |field: &str, path: &Option<String>| {
            let checked = path.clone().map(CheckoutPath::try_from).transpose();
            checked.map_err(|e| Invalid::of(field, format!("{field} {e}")))
        };
        let (entry, workdir) = (path("entry", &self.entry)?, path("workdir", &self.workdir)?);
        check_args(&self.args).map_err(|why| Invalid::of("args", why))?;
        let script = self.mode == Some(Mode::Script);
        let takes_args = |runtime: &str| ["command", "wasm"].contains(&runtime);
        if !self.args.is_empty() && !script && self.runtime.as_deref().is_some_and(|r| !takes_args(r)) {
            return Err(Invalid::of("args", "args are taken by the command and wasm runtimes and by scripts only"));
        }
        Ok((entry, workdir))
    }
}

/// Seals plaintext credentials to the executors' key, or checks a client-sealed box.
fn seal_credentials(
    plain: Option<PlainCredentials>,
    sealed: Option<String>,
    settings: &FrontendSettings,
) -> Result<Option<String>, Invalid> {
    match (plain, sealed) {
        (Some(_), Some(_)) => {
            Err(Invalid::of("credentials", "send either credentials or sealed_credentials, not both"))
        }
        (Some(plain), None) => {
            let Some(key) = &settings.executor_public_key else {
                return Err(Invalid::of("credentials", "this deployment accepts no credentials"));
            };
            let json = Zeroizing::new(serde_json::to_vec(&plain.0).expect("a map of strings serialises"));
            let sealed = sealed::seal(key, &json).map_err(|e| Invalid::of("credentials", e.to_string()))?;
            Ok(Some(sealed))
        }
        (None, Some(sealed)) => {
            sealed::check_sealed(&sealed).map_err(|e| Invalid::of("sealed_credentials", e.to_string()))?;
            Ok(Some(sealed))
        }
        (None, None) => Ok(None),
    }
}

/// The shared policy on each link; the executor checks again, with its own limits.
fn validate_links(field: &str, links: &[DataLink], policy: &PolicySettings) -> Result<(), Invalid> {
    for link in links {
        policy::check_link(&link.name, &link.url, link.method.as_deref(), field == "sinks", policy)
            .map_err(|e| Invalid::of(field, e.to_string()))?;
    }
    Ok(())
}

/// The shared depth limit on `input`: every later reader of the job (the
/// executor, the rebuild) must be able to decode what is accepted here.
pub fn check_input_depth(input: &Value) -> Result<(), Invalid> {
    gitfaas_common::limits::check_depth(input).map_err(|error| Invalid::of("input", format!("input is {error}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(body: &str) -> Option<String> {
        match parse(body.as_bytes()) {
            Err(Invalid { field, .. }) => field,
            other => panic!("expected invalid request, got {other:?}"),
        }
    }

    #[test]
    fn parse_errors_name_the_field() {
        assert_eq!(field_of(r#"{"ref": "main"}"#).as_deref(), Some("repo"));
        assert_eq!(field_of(r#"{"repo": "git://h/r", "colour": 1}"#).as_deref(), Some("colour"));
        assert_eq!(field_of(r#"{"repo": 5}"#).as_deref(), Some("repo"));
        assert_eq!(
            field_of(r#"{"repo": "x", "resources": {"memory_mb": "lots"}}"#).as_deref(),
            Some("resources.memory_mb")
        );
        assert_eq!(field_of("{not json"), None);
    }

    #[test]
    fn delivery_is_one_of_the_two_modes_and_defaults_to_none_given() {
        assert_eq!(field_of(r#"{"repo": "x", "delivery": "sometimes"}"#).as_deref(), Some("delivery"));
        assert_eq!(parse(br#"{"repo": "x"}"#).unwrap().delivery, None);
        let parsed = parse(br#"{"repo": "x", "delivery": "at_most_once"}"#).unwrap();
        assert_eq!(parsed.delivery, Some(Delivery::AtMostOnce));
    }

    #[test]
    fn counts_may_be_written_as_integral_floats() {
        let parsed = parse(br#"{"repo": "x", "timeout_secs": 30.0, "resources": {"pids": 64}}"#).unwrap();
        assert_eq!(
            (parsed.timeout_secs, parsed.resources.pids, parsed.resources.memory_mb),
            (Some(30), Some(64), None)
        );
        assert_eq!(field_of(r#"{"repo": "x", "timeout_secs": 1.5}"#).as_deref(), Some("timeout_secs"));
        assert_eq!(field_of(r#"{"repo": "x", "timeout_secs": -1}"#).as_deref(), Some("timeout_secs"));
        assert_eq!(field_of(r#"{"repo": "x", "resources": {"pids": 5000000000}}"#).as_deref(), Some("resources.pids"));
    }

    #[test]
    fn entry_workdir_and_args_are_checked_by_their_text() {
        let check = |body: serde_json::Value| parse(body.to_string().as_bytes()).unwrap().checked_paths();
        let field = |body| match check(body) {
            Err(Invalid { field, .. }) => field,
            other => panic!("expected invalid request, got {other:?}"),
        };
        assert!(check(serde_json::json!({"repo": "x", "entry": "src/a.py", "workdir": "src", "args": ["a b"]})).is_ok());
        assert!(check(serde_json::json!({"repo": "x", "runtime": "command", "args": ["\"q\" ü"]})).is_ok());
        for bad in ["../x", "/etc/passwd", "a//b", ""] {
            assert_eq!(field(serde_json::json!({"repo": "x", "entry": bad})).as_deref(), Some("entry"), "{bad}");
            assert_eq!(field(serde_json::json!({"repo": "x", "workdir": bad})).as_deref(), Some("workdir"), "{bad}");
        }
        assert_eq!(field(serde_json::json!({"repo": "x", "args": vec!["a"; 65]})).as_deref(), Some("args"));
        assert_eq!(
            field(serde_json::json!({"repo": "x", "runtime": "python", "args": ["a"]})).as_deref(),
            Some("args")
        );
        assert_eq!(field_of(r#"{"repo": "x", "args": [1]}"#).as_deref(), Some("args[0]"));
    }

    #[test]
    fn refs_are_checked() {
        assert!(GitRef::try_from("feature/x".to_owned()).is_ok());
        for bad in ["", "--upload-pack=x", "a..b", "a b", "x~1"] {
            assert!(GitRef::try_from(bad.to_owned()).is_err(), "{bad:?}");
        }
    }
}
