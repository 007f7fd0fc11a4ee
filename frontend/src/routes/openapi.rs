//! The OpenAPI 3 document of exactly the routes this frontend serves, generated
//! from the handlers' annotations.

use actix_web::{web, HttpResponse};
use gitfaas_common::policy::MAX_URL_CHARS;
use gitfaas_common::schema::{MAX_ARGS, MAX_ARG_CHARS, MAX_PATH_CHARS, MAX_REF_CHARS};
use serde_json::{json, Value};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{admin, cancel, functions, jobs, keys, logs, pipelines, state, triggers};
use crate::request::{MAX_IDEMPOTENCY_KEY_CHARS, MIN_CPU_MILLIS, MIN_MEMORY_MB, MIN_PIDS};
use crate::settings::FrontendSettings;
use crate::AppState;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "gitfaas", description = "Functions as a service, straight from git."),
    paths(jobs::submit, jobs::status, jobs::result, logs::logs, jobs::list, jobs::erase, cancel::cancel, admin::set_config, admin::status, admin::reports, admin::end_job, keys::executor,
        functions::deploy, functions::list, functions::get, functions::versions, functions::rollback, functions::delete, functions::invoke,
        state::list, state::get, state::clear, state::delete,
        triggers::put, triggers::list, triggers::get, triggers::pause, triggers::resume, triggers::delete,
        pipelines::start, pipelines::get, pipelines::list, pipelines::cancel),
    modifiers(&BearerAuth),
    tags((name = "jobs", description = "submit jobs and read their results"),
         (name = "functions", description = "named functions: deploy versions, invoke by name (the HTTP trigger)"),
         (name = "triggers", description = "schedules and topic bindings that invoke functions"),
         (name = "pipelines", description = "runs of named functions in order, each step's output the next one's input"),
         (name = "admin", description = "operator endpoints (admin role)"))
)]
pub struct ApiDoc;

pub async fn document(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(served(&state.settings))
}

/// The generated document with what this deployment's validation applies stated in
/// the submit body's schema: the limits of `config/frontend.yaml`, the runtimes
/// offered, the URL schemes allowed, the lengths and patterns of `common`, and that
/// no request body takes fields it does not name. A body the schema allows is then
/// one the validation accepts, short of the policy on hosts (not expressible).
pub fn served(settings: &FrontendSettings) -> Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).expect("the document serialises");
    let schemas = &mut doc["components"]["schemas"];
    for body in [
        "SubmitRequest",
        "ResourceRequest",
        "DataLink",
        "ParamsUpdate",
        "InvokeRequest",
        "RollbackRequest",
        "TriggerRequest",
        "Schedule",
        "TopicBinding",
        "PipelineRequest",
    ] {
        if let Some(schema) = schemas.get_mut(body).and_then(Value::as_object_mut) {
            schema.insert("additionalProperties".into(), Value::Bool(false));
        }
    }
    if let Some(Value::Array(parameters)) = doc.pointer_mut("/paths/~1v1~1jobs/post/parameters") {
        for parameter in parameters.iter_mut().filter(|p| p["name"] == "Idempotency-Key") {
            merge(&mut parameter["schema"], json!({"minLength": 1, "maxLength": MAX_IDEMPOTENCY_KEY_CHARS}));
        }
    }
    function_names(&mut doc);
    let steps = &mut doc["components"]["schemas"]["PipelineRequest"]["properties"]["steps"];
    merge(&mut steps["items"], json!({"pattern": FUNCTION_NAME_PATTERN}));
    let schemas = &mut doc["components"]["schemas"];
    let l = &settings.limits;
    let submit = &mut schemas["SubmitRequest"]["properties"];
    let repo_pattern = url_pattern(&settings.policy.repo_schemes, &settings.policy.repo_hosts);
    merge(&mut submit["repo"], json!({"maxLength": MAX_URL_CHARS, "pattern": repo_pattern}));
    merge(&mut submit["ref"], json!({"minLength": 1, "maxLength": MAX_REF_CHARS, "pattern": REF_PATTERN}));
    merge(
        &mut submit["runtime"],
        json!({"enum": settings.runtimes.iter().map(|r| json!(r)).chain([Value::Null]).collect::<Vec<_>>()}),
    );
    // the modes this deployment allows (both unless the operator restricts them)
    let modes = settings.delivery.allowed.iter().map(|d| json!(d.as_str())).chain([Value::Null]);
    submit["delivery"] = json!({
        "description": "The processing guarantee. `at_most_once`: the function never runs twice; a run whose \
            executor is lost ends `failed` (\"executor lost during an at-most-once run\"). `at_least_once` \
            (the default): a run whose executor is lost runs again elsewhere. Either way one terminal result.",
        "enum": modes.collect::<Vec<_>>(),
    });
    submit["dependencies"] = json!({
        "description": "`install` (the default): the dependencies the declaration nearest the entry declares \
            (`requirements.txt`, `pyproject.toml`, `package.json` with `package-lock.json`, searched from the \
            entry's directory up to the workdir) are installed in a build step before the run; `skip`: they are \
            ignored.",
        "enum": ["install", "skip", null],
    });
    submit["submodules"] = json!({
        "description": "`empty` (the default): each submodule is an empty directory, as `git clone` leaves it, \
            and the result has a note saying so; `fetch`: each is checked out at the commit its gitlink pins, \
            its URL from `.gitmodules` (relative ones against the repository's), under the same URL policy and \
            checkout limits.",
        "enum": ["empty", "fetch", null],
    });
    submit["mode"] = json!({
        "description": "`function` (the default): the entry's function is called with `input` and returns the \
            output; `script` (python and node): the entry runs as `python3 ENTRY ARGS…`, `python3 -m MODULE \
            ARGS…` (`args` starting `-m`, no `entry`) or `node ENTRY ARGS…`, cold, `input` as JSON on stdin, \
            stdout the output (JSON when it parses, else its text), a non-zero exit code a failure.",
        "enum": ["function", "script", null],
    });
    merge(&mut submit["timeout_secs"], json!({"minimum": 1, "maximum": l.max_timeout_secs}));
    let resources = &mut schemas["ResourceRequest"]["properties"];
    merge(&mut resources["memory_mb"], json!({"minimum": MIN_MEMORY_MB, "maximum": l.max_memory_mb}));
    merge(&mut resources["cpu_millis"], json!({"minimum": MIN_CPU_MILLIS, "maximum": l.max_cpu_millis}));
    merge(&mut resources["pids"], json!({"minimum": MIN_PIDS, "maximum": l.max_pids}));
    let link = &mut schemas["DataLink"]["properties"];
    merge(&mut link["name"], json!({"pattern": NAME_PATTERN}));
    let link_pattern = url_pattern(&["http".to_owned(), "https".to_owned()], &settings.policy.data_hosts);
    merge(&mut link["url"], json!({"maxLength": MAX_URL_CHARS, "pattern": link_pattern}));
    merge(&mut link["method"], json!({"enum": ["PUT", "POST", null]}));
    // a source takes no method: its items are the link without one
    let mut source = schemas["DataLink"].clone();
    if let Some(properties) = source["properties"].as_object_mut() {
        properties.remove("method");
    }
    schemas["SubmitRequest"]["properties"]["sources"]["items"] = source;
    // credentials in the clear or sealed by the client, not both
    schemas["SubmitRequest"]["not"] = json!({
        "required": ["credentials", "sealed_credentials"],
        "properties": {"credentials": {"type": "object"}, "sealed_credentials": {"type": "string"}},
    });
    merge(&mut schemas["SubmitRequest"]["properties"]["sealed_credentials"], json!({"pattern": SEALED_PATTERN}));
    entry_fields(&mut schemas["SubmitRequest"], &settings.runtimes);
    let strings = json!({"additionalProperties": {"type": "string"}});
    merge(&mut schemas["SubmitRequest"]["properties"]["credentials"], strings);
    if settings.executor_public_key.is_none() {
        // nothing to seal them to: this deployment takes no credentials in the clear
        if let Some(properties) = schemas["SubmitRequest"]["properties"].as_object_mut() {
            properties.remove("credentials");
        }
    }
    doc
}

/// Every `{name}` of a function route as `common::schema::is_valid_function_name` takes it.
fn function_names(doc: &mut Value) {
    let Some(paths) = doc["paths"].as_object_mut() else { return };
    for (_, operations) in paths.iter_mut().filter(|(path, _)| path.starts_with("/v1/functions/{name}")) {
        for operation in operations.as_object_mut().into_iter().flat_map(|o| o.values_mut()) {
            let Some(parameters) = operation["parameters"].as_array_mut() else { continue };
            for parameter in parameters.iter_mut().filter(|p| p["name"] == "name" && p["in"] == "path") {
                merge(&mut parameter["schema"], json!({"pattern": FUNCTION_NAME_PATTERN}));
            }
        }
    }
}

const FUNCTION_NAME_PATTERN: &str = "^[a-z0-9][a-z0-9._-]{0,62}$";

/// `entry`, `workdir` and `args` as `common::schema` bounds them, and args refused
/// with a runtime other than `command`. What the checkout holds (a symlink out, a
/// missing file) only the executor can tell: it rejects the job.
fn entry_fields(submit: &mut Value, runtimes: &[String]) {
    let path = json!({"maxLength": MAX_PATH_CHARS, "pattern": CHECKOUT_PATH_PATTERN});
    merge(&mut submit["properties"]["entry"], path.clone());
    merge(&mut submit["properties"]["workdir"], path);
    merge(&mut submit["properties"]["args"], json!({"maxItems": MAX_ARGS}));
    merge(&mut submit["properties"]["args"]["items"], json!({"maxLength": MAX_ARG_CHARS, "pattern": "^[^\\x00]*$"}));
    // Kafka's rule for topic names (routes/triggers.rs), `.` and `..` excluded without a look-ahead
    let topic =
        "^([A-Za-z0-9_-][A-Za-z0-9._-]{0,248}|\\.[A-Za-z0-9_-][A-Za-z0-9._-]{0,247}|\\.\\.[A-Za-z0-9._-]{1,247})$";
    merge(&mut submit["properties"]["publish"], json!({"maxItems": crate::request::MAX_PUBLISH_TOPICS}));
    merge(&mut submit["properties"]["publish"]["items"], json!({"pattern": topic}));
    let others: Vec<&String> = runtimes.iter().filter(|r| *r != "command").collect();
    submit["allOf"] = json!([{"not": {
        "required": ["runtime", "args"],
        "properties": {"runtime": {"enum": others}, "args": {"type": "array", "minItems": 1}},
    }}]);
}

/// `common::schema::is_checkout_path`: `/`-separated non-empty parts, none `.` or
/// `..`, no control characters (so neither absolute nor escaping by its text).
const CHECKOUT_PATH_PATTERN: &str =
    "^(?!\\.\\.?(/|$))[^/\\x00-\\x1f\\x7f-\\x9f]+(/(?!\\.\\.?(/|$))[^/\\x00-\\x1f\\x7f-\\x9f]+)*$";
/// `common::schema::is_valid_ref` as a pattern: no leading `-`, no `..`, none of
/// git's revision characters, no whitespace or control characters.
const REF_PATTERN: &str = "^(?!-)(?!.*\\.\\.)[^\\s\\x00-\\x1f\\x7f-\\x9f~^:?*\\[\\\\]+$";
/// A URL of one of `schemes` (a regex alternation) as the policy takes it: no
/// whitespace or controls, no `::`, no credentials, a host of `hosts` in any case
/// when the operator lists them — then the pattern is exact — else any host, which
/// the policy on addresses still decides (an internal literal or `localhost` is
/// refused; no pattern states that). A `\` ends the host only for a special scheme
/// (`http`, `https`, …, where the URL standard reads it as `/`); after a `git://`
/// host it is part of the host, which is then no host at all.
fn url_pattern(schemes: &[String], hosts: &[String]) -> String {
    let host = if hosts.is_empty() {
        "[^/?#@\\\\\\s:\\[\\]]+".to_owned()
    } else {
        let names: Vec<String> = hosts.iter().map(|h| any_case(h)).collect();
        format!("({})", names.join("|"))
    };
    let special = ["http", "https", "ws", "wss", "ftp", "file"];
    let (with_backslash, without): (Vec<&str>, Vec<&str>) =
        schemes.iter().map(String::as_str).partition(|s| special.contains(s));
    let rest = "[^\\s\\x00-\\x1f\\x7f-\\x9f]*";
    let branches: Vec<String> = [(with_backslash, "[/?#\\\\]"), (without, "[/?#]")]
        .into_iter()
        .filter(|(group, _)| !group.is_empty())
        .map(|(group, ends)| format!("({})://{host}(:{PORT})?({ends}{rest})?", group.join("|")))
        .collect();
    format!("^(?!.*::)({})$", branches.join("|"))
}

/// A port: 1 to 65535, without leading zeros.
const PORT: &str = "([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])";

/// `name` as a pattern matching it in any ASCII case, its other characters escaped.
fn any_case(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            c if c.is_ascii_alphabetic() => format!("[{}{}]", c.to_ascii_lowercase(), c.to_ascii_uppercase()),
            c if c.is_ascii_alphanumeric() || c == '-' => c.to_string(),
            c => format!("\\{c}"),
        })
        .collect()
}

/// `common::sealed::check_sealed`: canonical standard base64 (padded, no stray bits
/// in the last symbol) of at least 48 bytes (the ephemeral key and the tag: 16
/// groups of 4 characters) and at most 64 KiB.
const SEALED_PATTERN: &str =
    "^[ \\t\\r\\n]*([A-Za-z0-9+/]{4}){16,21845}([A-Za-z0-9+/][AQgw]==|[A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]=)?[ \\t\\r\\n]*$";
/// `common::policy::is_plain_name`: a file name directly in /input or /output.
const NAME_PATTERN: &str = "^[A-Za-z0-9_-][A-Za-z0-9._-]{0,254}$";

/// Adds `extra`'s keywords to a property's schema (or to each branch of a
/// `oneOf`/`anyOf` that is not `null`, as utoipa writes an `Option`).
fn merge(schema: &mut Value, extra: Value) {
    let Some(object) = schema.as_object_mut() else { return };
    for key in ["oneOf", "anyOf"] {
        if let Some(Value::Array(branches)) = object.get_mut(key) {
            for branch in branches.iter_mut().filter(|b| b["type"] != "null") {
                merge(branch, extra.clone());
            }
            return;
        }
    }
    for (key, value) in extra.as_object().expect("keywords").clone() {
        object.insert(key, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Settings;
    use gitfaas_common::schema::Delivery;

    fn settings() -> FrontendSettings {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
        let settings: Settings = gitfaas_common::settings::load_from(&dir, "frontend").expect("frontend config");
        settings.frontend
    }

    #[test]
    fn the_served_document_states_the_delivery_modes_this_deployment_allows() {
        let mut settings = settings();
        let delivery = |settings: &FrontendSettings| {
            served(settings)["components"]["schemas"]["SubmitRequest"]["properties"]["delivery"]["enum"].clone()
        };
        assert_eq!(delivery(&settings), json!(["at_most_once", "at_least_once", null]));
        settings.delivery.allowed = vec![Delivery::AtLeastOnce];
        assert_eq!(delivery(&settings), json!(["at_least_once", null]));
        let dependencies = &served(&settings)["components"]["schemas"]["SubmitRequest"]["properties"]["dependencies"];
        assert_eq!(dependencies["enum"], json!(["install", "skip", null]));
        let body = r#"{"repo": "https://git.example.org/f.git", "delivery": "at_most_once"}"#;
        let refused = crate::request::parse(body.as_bytes()).unwrap().into_spec(&settings);
        assert!(matches!(refused, Err(crate::request::Invalid { field: Some(f), .. }) if f == "delivery"));
    }

    #[test]
    fn a_results_dependency_layer_and_notes_and_the_submodules_choice_are_in_the_document() {
        let schemas = &served(&settings())["components"]["schemas"];
        let build = &schemas["DependencyBuild"]["properties"];
        assert_eq!(
            (build["file"]["type"].clone(), build["built"]["type"].clone()),
            (json!("string"), json!("boolean"))
        );
        assert!(schemas["JobResult"]["properties"]["dependencies"].is_object(), "{}", schemas["JobResult"]);
        assert_eq!(schemas["JobResult"]["properties"]["notes"]["type"], "array", "{}", schemas["JobResult"]);
        let submodules = &schemas["SubmitRequest"]["properties"]["submodules"];
        assert_eq!(submodules["enum"], json!(["empty", "fetch", null]), "{submodules}");
    }

    #[test]
    fn every_input_and_output_is_any_json_value_as_the_frontend_accepts() {
        let schemas = &served(&settings())["components"]["schemas"];
        for (schema, field) in [
            ("SubmitRequest", "input"),
            ("InvokeRequest", "input"),
            ("PipelineRequest", "input"),
            ("JobResult", "output"),
            ("RunView", "output"),
        ] {
            let property = &schemas[schema]["properties"][field];
            assert!(property.is_object() && property.get("type").is_none(), "{schema}.{field}: {property}");
        }
        for input in [json!(1), json!("text"), json!([1, 2]), json!(null), json!(true), json!({"k": 1})] {
            let body = json!({"repo": "https://git.example.org/f.git", "input": input});
            let parsed = crate::request::parse(body.to_string().as_bytes()).unwrap();
            assert_eq!(parsed.into_spec(&settings()).unwrap().input, input);
        }
    }
}
