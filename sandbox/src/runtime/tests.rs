//! The plan of each runtime from a manifest and a job's choices.

use super::*;
use serde_json::json;

fn images() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("python".into(), "py:1".into()),
        ("command".into(), "bb:1".into()),
        ("node".into(), "node:1".into()),
    ])
}

const ALLOWED: &[String] = &[];

fn plan(
    dir: &Path,
    mount: &str,
    requested: Option<&str>,
    images: &BTreeMap<String, String>,
    input: &Value,
) -> Result<Launch, ManifestError> {
    super::plan(
        dir,
        mount,
        requested,
        &Chosen::default(),
        &Offer { images, allowed_images: ALLOWED, wasm: true },
        input,
        b"{}",
    )
}

fn with_manifest(text: Option<&str>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    if let Some(text) = text {
        std::fs::write(dir.path().join(MANIFEST_FILE), text).unwrap();
    }
    std::fs::create_dir(dir.path().join("src")).unwrap();
    for entry in ["main.py", "main.js", "main", "src/handler.py"] {
        std::fs::write(dir.path().join(entry), "").unwrap();
    }
    executable(&dir.path().join("main"));
    dir
}

fn executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn a_command_entry_must_be_executable_and_its_interpreter_an_absolute_path() {
    let dir = with_manifest(Some("runtime = \"command\"\n"));
    let entry = |text: &str, mode: u32| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(dir.path().join("main"), text).unwrap();
        std::fs::set_permissions(dir.path().join("main"), std::fs::Permissions::from_mode(mode)).unwrap();
        plan(dir.path(), "/code", None, &images(), &Value::Null)
    };
    assert_eq!(entry("#!/bin/sh\n", 0o644), Err(ManifestError::NotExecutable("main".into())));
    let launch = entry("#!/usr/bin/python3 -u\nprint(1)\n", 0o755).unwrap();
    let interpreter = launch.reading.interpreter.unwrap();
    assert_eq!((interpreter.interpreter.as_str(), interpreter.path.as_str()), ("/usr/bin/python3", "/code/main"));
    assert_eq!(entry("#!python3\n", 0o755), Err(ManifestError::BadShebang("main".into())));
    assert_eq!(entry("\x7fELF", 0o755).unwrap().reading.interpreter, None);
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
fn node_and_python_get_the_opened_credentials_but_command_does_not() {
    let dir = with_manifest(Some("runtime = \"node\"\n"));
    let offer = Offer { images: &images(), allowed_images: ALLOWED, wasm: true };
    let creds = br#"{"k":"v"}"#;
    let launch = super::plan(dir.path(), "/code", None, &Chosen::default(), &offer, &json!(1), creds).unwrap();
    assert_eq!((launch.image.as_str(), &launch.command[..2]), ("node:1", &["node".to_owned(), "-e".to_owned()][..]));
    assert_eq!(&launch.command[3..], ["/code", "main.js"]);
    let stdin: Value = serde_json::from_slice(&launch.stdin).unwrap();
    assert_eq!(stdin, json!({"data": 1, "credentials": {"k": "v"}}));
    assert!(!format!("{launch:?}").contains("credentials"));
    let cmd = with_manifest(Some("runtime = \"command\"\n"));
    let launch = super::plan(cmd.path(), "/code", None, &Chosen::default(), &offer, &json!(1), creds).unwrap();
    assert_eq!(launch.stdin.as_slice(), b"1");
}

#[test]
fn a_repository_may_name_only_an_allowed_image() {
    let dir = with_manifest(Some("runtime = \"python\"\nimage = \"py:custom\"\n"));
    let images = images();
    let refused = super::plan(
        dir.path(),
        "/c",
        None,
        &Chosen::default(),
        &Offer { images: &images, allowed_images: &[], wasm: true },
        &json!(1),
        b"{}",
    );
    assert_eq!(refused, Err(ManifestError::ImageNotAllowed("py:custom".into())));
    let allowed = ["py:custom".to_owned()];
    let offer = Offer { images: &images, allowed_images: &allowed, wasm: true };
    assert_eq!(
        super::plan(dir.path(), "/c", None, &Chosen::default(), &offer, &json!(1), b"{}").unwrap().image,
        "py:custom"
    );
}

#[test]
fn command_runtime_gets_the_input_itself_on_stdin() {
    let dir = with_manifest(Some("runtime = \"command\"\n"));
    let launch = plan(dir.path(), "/code", Some("command"), &images(), &json!([1])).unwrap();
    assert_eq!(launch.command, ["/code/main"]);
    assert_eq!(launch.stdin.as_slice(), b"[1]");
}

#[test]
fn bad_manifests_and_requests_are_explained() {
    let none = with_manifest(None);
    assert_eq!(plan(none.path(), "/c", None, &images(), &Value::Null), Err(ManifestError::Missing));
    assert!(plan(none.path(), "/c", Some("python"), &images(), &Value::Null).is_ok());
    let ruby = with_manifest(Some("runtime = \"ruby\"\n"));
    assert!(matches!(plan(ruby.path(), "/c", None, &images(), &Value::Null), Err(ManifestError::UnknownRuntime(..))));
    let py = with_manifest(Some("runtime = \"python\"\n"));
    assert!(matches!(
        plan(py.path(), "/c", Some("command"), &images(), &Value::Null),
        Err(ManifestError::Mismatch { .. })
    ));
    let escape = with_manifest(Some("runtime = \"python\"\nentry = \"../x.py\"\n"));
    assert!(matches!(plan(escape.path(), "/c", None, &images(), &Value::Null), Err(ManifestError::BadEntry(_))));
    let typo = with_manifest(Some("runtim = \"python\"\n"));
    let Err(ManifestError::Invalid(why)) = plan(typo.path(), "/c", None, &images(), &Value::Null) else { panic!() };
    assert!(why.starts_with("line 1, column 1: unknown field"), "{why}");
    assert!(matches!(plan(typo.path(), "/c", None, &images(), &Value::Null), Err(ManifestError::Invalid(_))));
}

#[test]
fn a_manifest_or_entry_leaving_the_checkout_is_refused_unread() {
    let secret = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(secret.path(), "runtime = \"host-secret\"\n").unwrap();
    let big = tempfile::NamedTempFile::new().unwrap();
    big.as_file().set_len(1 << 30).unwrap(); // sparse: no disk used
    for target in [secret.path(), big.path(), Path::new("/dev/zero"), Path::new("/nonexistent"), Path::new("/etc")] {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(target, dir.path().join(MANIFEST_FILE)).unwrap();
        let err = plan(dir.path(), "/c", Some("python"), &images(), &Value::Null).unwrap_err();
        assert_eq!(err, ManifestError::NotRegular, "{target:?}");
        assert!(!err.to_string().contains("host-secret"));
    }
    let huge = with_manifest(Some(&"#".repeat(70_000)));
    assert_eq!(plan(huge.path(), "/c", None, &images(), &Value::Null), Err(ManifestError::NotRegular));
    for target in [secret.path(), Path::new("/nonexistent")] {
        let dir = with_manifest(Some("runtime = \"python\"\n"));
        std::fs::remove_file(dir.path().join("main.py")).unwrap();
        std::os::unix::fs::symlink(target, dir.path().join("main.py")).unwrap();
        let err = plan(dir.path(), "/c", None, &images(), &Value::Null).unwrap_err();
        assert_eq!(err, ManifestError::BadEntry("main.py".into()), "{target:?}");
    }
    let inside = with_manifest(Some("runtime = \"python\"\nentry = \"link.py\"\n"));
    std::fs::write(inside.path().join("real.py"), "").unwrap();
    std::os::unix::fs::symlink("real.py", inside.path().join("link.py")).unwrap();
    assert!(plan(inside.path(), "/c", None, &images(), &Value::Null).is_ok());
}

#[test]
fn a_wasm_module_is_planned_without_an_image_with_its_args_where_wasm_runs() {
    let dir = with_manifest(Some("runtime = \"wasm\"\n"));
    std::fs::write(dir.path().join("main.wasm"), b"\0asm").unwrap();
    let args = ["a b".to_owned()];
    let chosen = Chosen { args: &args, workdir: Some("src"), ..Default::default() };
    let images = images();
    let offer = Offer { images: &images, allowed_images: ALLOWED, wasm: true };
    let launch = super::plan(dir.path(), "/code", None, &chosen, &offer, &json!({"n": 1}), b"{\"k\":1}").unwrap();
    assert_eq!((launch.runtime.as_str(), launch.image.as_str()), ("wasm", ""));
    assert_eq!(launch.command, ["main.wasm", "a b"]);
    assert_eq!(launch.stdin.as_slice(), br#"{"n":1}"#); // the input alone, as for command
    let elsewhere = Offer { wasm: false, ..offer };
    let refused = super::plan(dir.path(), "/code", None, &chosen, &elsewhere, &json!(1), b"{}").unwrap_err();
    assert_eq!(refused, ManifestError::UnknownRuntime("wasm".into(), "command, node, python".into()));
    let missing = with_manifest(Some("runtime = \"wasm\"\nentry = \"fn.wasm\"\n"));
    let refused = super::plan(missing.path(), "/code", None, &chosen, &offer, &json!(1), b"{}").unwrap_err();
    assert_eq!(refused, ManifestError::EntryMissing("fn.wasm".into()));
}
