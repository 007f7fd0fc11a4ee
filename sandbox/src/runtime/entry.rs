//! Where in the checkout a function is: its entry (a file, or for python a
//! `package.module:function`, for node `file.js:export`) and its working directory. The executor's check is
//! the authority: the text rules of `common::schema`, then the checkout itself —
//! nothing reached through a symlink that leaves it, and the entry must exist.

use std::path::{Component, Path};

use super::ManifestError;

/// A python entry naming a function of a module: `package.module:function`, the
/// module imported from the working directory.
pub fn python_module(entry: &str) -> Option<(&str, &str)> {
    let (module, function) = entry.split_once(':')?;
    let ident = |s: &str| {
        let mut chars = s.chars();
        chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    (module.split('.').all(ident) && ident(function)).then_some((module, function))
}

/// A node entry naming an export of a file: `file.js:handler` (the export a
/// JavaScript identifier, ASCII). `None` for a plain file entry, whose `main` is
/// called.
pub fn node_export(entry: &str) -> Option<(&str, &str)> {
    let (file, export) = entry.rsplit_once(':')?;
    let mut chars = export.chars();
    let ident = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '$')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$');
    (ident && !file.is_empty()).then_some((file, export))
}

/// The working directory, relative to the checkout (`.` for its root): a
/// directory inside it.
pub fn checked_workdir(checkout: &Path, workdir: Option<&str>) -> Result<String, ManifestError> {
    let Some(workdir) = workdir else { return Ok(".".to_owned()) };
    let refuse = || ManifestError::BadWorkdir(workdir.to_owned());
    if !relative_inside(workdir) {
        return Err(refuse());
    }
    match resolve(checkout, workdir) {
        Resolved::Inside(path) if path.is_dir() => Ok(workdir.to_owned()),
        _ => Err(refuse()),
    }
}

/// A python entry as a module of `workdir`: its file (`a/b.py` or
/// `a/b/__init__.py`) must be inside the checkout.
pub fn checked_module(checkout: &Path, workdir: &str, entry: &str, module: &str) -> Result<(), ManifestError> {
    let base = module.replace('.', "/");
    let candidates = [format!("{workdir}/{base}.py"), format!("{workdir}/{base}/__init__.py")];
    let mut escaped = false;
    for candidate in &candidates {
        match resolve(checkout, candidate) {
            Resolved::Inside(path) if path.is_file() => return Ok(()),
            Resolved::Outside => escaped = true,
            _ => {}
        }
    }
    Err(if escaped { ManifestError::BadEntry(entry.to_owned()) } else { ManifestError::EntryMissing(entry.to_owned()) })
}

/// The directory of a checked relative `path` (`.` for the checkout's root).
pub fn parent(path: &str) -> String {
    path.rsplit_once('/').map_or(".", |(dir, _)| dir).to_owned()
}

/// The package directory of python `module` imported from `workdir`: `a/b` for
/// `a.b.c` at the root, `workdir` itself for a top-level module.
pub fn module_dir(workdir: &str, module: &str) -> String {
    let package = module.rsplit_once('.').map(|(package, _)| package.replace('.', "/"));
    match (workdir, package) {
        (_, None) => workdir.to_owned(),
        (".", Some(package)) => package,
        (_, Some(package)) => format!("{workdir}/{package}"),
    }
}

/// A file entry: a relative path inside the checkout, naming a file there.
pub fn checked_file(checkout: &Path, entry: String) -> Result<String, ManifestError> {
    if !relative_inside(&entry) {
        return Err(ManifestError::BadEntry(entry));
    }
    match resolve(checkout, &entry) {
        Resolved::Inside(path) if path.is_file() => Ok(entry),
        Resolved::Inside(_) | Resolved::Missing => Err(ManifestError::EntryMissing(entry)),
        Resolved::Outside => Err(ManifestError::BadEntry(entry)),
    }
}

/// A command script's `#!` line: the interpreter's absolute path and, for the
/// `/usr/bin/env NAME` form (any absolute `env`, one word after it, as the
/// kernel passes the rest of the line as one argument), the NAME env would look
/// up on the `PATH` — the interpreter the script really needs.
#[derive(Debug, PartialEq)]
pub struct Shebang {
    pub interpreter: String,
    pub looked_up: Option<String>,
}

/// A checked command entry's interpreter: `None` for a binary, its `#!` line for
/// a script. Refused when the checkout's file has no x bit (the container could
/// not start it) or its `#!` names no absolute path.
pub fn checked_executable(checkout: &Path, entry: &str) -> Result<Option<Shebang>, ManifestError> {
    use std::io::Read;
    use std::os::unix::fs::PermissionsExt;
    let Resolved::Inside(path) = resolve(checkout, entry) else { return Err(ManifestError::BadEntry(entry.into())) };
    let missing = |_| ManifestError::EntryMissing(entry.into());
    let file = std::fs::File::open(&path).map_err(missing)?;
    if file.metadata().map_err(missing)?.permissions().mode() & 0o111 == 0 {
        return Err(ManifestError::NotExecutable(entry.into()));
    }
    let mut head = Vec::with_capacity(256);
    file.take(256).read_to_end(&mut head).map_err(missing)?;
    let Some(line) = head.strip_prefix(b"#!") else { return Ok(None) };
    let line = String::from_utf8_lossy(line.split(|b| *b == b'\n').next().unwrap_or_default()).into_owned();
    let mut words = line.split_whitespace();
    let interpreter = words.next().unwrap_or_default().to_owned();
    if !interpreter.starts_with('/') {
        return Err(ManifestError::BadShebang(entry.into()));
    }
    // env with options (`-S`), assignments (`A=b`), a path, or more than one word
    // is left to env itself
    let rest: Vec<&str> = words.collect();
    let looked_up = match (interpreter.rsplit('/').next(), rest.as_slice()) {
        (Some("env"), [name]) if !name.starts_with('-') && !name.contains(['=', '/']) => Some((*name).to_owned()),
        _ => None,
    };
    Ok(Some(Shebang { interpreter, looked_up }))
}

fn relative_inside(path: &str) -> bool {
    gitfaas_common::schema::is_checkout_path(path)
        && Path::new(path).components().all(|c| matches!(c, Component::Normal(_)))
}

enum Resolved {
    Inside(std::path::PathBuf),
    /// Nothing there, and no symlink on the way.
    Missing,
    /// Through a symlink leaving the checkout, or one leading nowhere: the same
    /// answer either way, so it tells nothing about the host.
    Outside,
}

fn resolve(checkout: &Path, relative: &str) -> Resolved {
    let Ok(root) = checkout.canonicalize() else { return Resolved::Outside };
    match checkout.join(relative).canonicalize() {
        Ok(resolved) if resolved.starts_with(&root) => Resolved::Inside(resolved),
        Ok(_) => Resolved::Outside,
        Err(_) => {
            let mut prefix = checkout.to_path_buf();
            for part in Path::new(relative).components() {
                prefix.push(part);
                match std::fs::symlink_metadata(&prefix) {
                    Ok(meta) if meta.file_type().is_symlink() => return Resolved::Outside,
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
            Resolved::Missing
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::Value;

    use super::super::{plan, Chosen, Launch, ManifestError, Offer};

    fn run(dir: &std::path::Path, runtime: &str, chosen: Chosen<'_>) -> Result<Launch, ManifestError> {
        let images = BTreeMap::from([
            ("python".into(), "py".into()),
            ("node".into(), "n".into()),
            ("command".into(), "c".into()),
        ]);
        plan(
            dir,
            "/code",
            Some(runtime),
            &chosen,
            &Offer { images: &images, allowed_images: &[], wasm: true },
            &Value::Null,
            b"{}",
        )
    }

    fn checkout(files: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for file in files {
            let path = dir.path().join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, "").unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        dir
    }

    #[test]
    fn an_env_shebang_of_one_word_names_the_interpreter_env_would_look_up() {
        let dir = tempfile::tempdir().unwrap();
        let looked_up = |line: &str| {
            std::fs::write(dir.path().join("main"), line).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path().join("main"), std::fs::Permissions::from_mode(0o755)).unwrap();
            super::checked_executable(dir.path(), "main").unwrap().unwrap().looked_up
        };
        let command =
            || run(dir.path(), "command", Chosen { entry: Some("main"), ..Default::default() }).unwrap().command;
        assert_eq!(looked_up("#!/usr/bin/env python3\nprint(1)\n").as_deref(), Some("python3"));
        assert_eq!(command(), ["python3", "/code/main"]);
        assert_eq!(looked_up("#!/bin/env  node \n").as_deref(), Some("node"));
        for left_to_env in ["#!/usr/bin/env -S node --flag\n", "#!/usr/bin/env python3 -u\n", "#!/usr/bin/env ./x\n"] {
            assert_eq!(looked_up(left_to_env), None, "{left_to_env}");
        }
        assert_eq!(command(), ["/code/main"]);
        assert_eq!(looked_up("#!/usr/bin/env A=1\n"), None);
        assert_eq!(looked_up("#!/bin/sh -e\n"), None);
    }

    #[test]
    fn a_job_entry_workdir_and_args_shape_the_command() {
        let dir = checkout(&["tools/run.sh", "pkg/mod.py", "lib/__init__.py"]);
        let args = ["a b".to_owned(), "\"q\" ü".to_owned()];
        let chosen = Chosen { entry: Some("tools/run.sh"), args: &args, workdir: Some("tools"), ..Default::default() };
        let launch = run(dir.path(), "command", chosen).unwrap();
        assert_eq!(launch.command, ["/code/tools/run.sh", "a b", "\"q\" ü"]);
        assert_eq!(launch.working_dir, "/code/tools");
        let launch = run(dir.path(), "python", Chosen { entry: Some("pkg.mod:go"), ..Default::default() }).unwrap();
        assert_eq!(&launch.command[4..], ["/code", "pkg.mod:go"]);
        let chosen = Chosen { entry: Some("mod:go"), workdir: Some("pkg"), ..Default::default() };
        assert_eq!(&run(dir.path(), "python", chosen).unwrap().command[4..], ["/code", "mod:go", "pkg"]);
        assert_eq!(launch.working_dir, "/code");
        assert!(run(dir.path(), "python", Chosen { entry: Some("lib:go"), ..Default::default() }).is_ok());
    }

    #[test]
    fn entries_and_workdirs_outside_or_missing_are_refused_by_name() {
        let dir = checkout(&["main.py", "sub/x.py"]);
        std::os::unix::fs::symlink("/etc", dir.path().join("out")).unwrap();
        let entry = |e: &'static str| run(dir.path(), "python", Chosen { entry: Some(e), ..Default::default() });
        for bad in ["../x.py", "/etc/passwd", "out/passwd", "sub/../main.py"] {
            assert_eq!(entry(bad).unwrap_err(), ManifestError::BadEntry(bad.into()), "{bad}");
        }
        assert_eq!(entry("nope.py").unwrap_err(), ManifestError::EntryMissing("nope.py".into()));
        assert_eq!(entry("sub").unwrap_err(), ManifestError::EntryMissing("sub".into()));
        assert_eq!(entry("nope.mod:f").unwrap_err(), ManifestError::EntryMissing("nope.mod:f".into()));
        assert_eq!(entry("out.passwd:f").unwrap_err(), ManifestError::BadEntry("out.passwd:f".into()));
        let workdir = |w: &'static str| run(dir.path(), "python", Chosen { workdir: Some(w), ..Default::default() });
        for bad in ["..", "/tmp", "out", "main.py", "missing"] {
            assert_eq!(workdir(bad).unwrap_err(), ManifestError::BadWorkdir(bad.into()), "{bad}");
        }
        let args = ["x".to_owned()];
        let err = run(dir.path(), "python", Chosen { args: &args, ..Default::default() }).unwrap_err();
        assert!(matches!(err, ManifestError::BadArgs(_)));
        let nul = ["a\0b".to_owned()];
        let dir = checkout(&["main"]);
        assert!(matches!(
            run(dir.path(), "command", Chosen { args: &nul, ..Default::default() }),
            Err(ManifestError::BadArgs(_))
        ));
    }

    #[test]
    fn python_modules_are_dotted_identifiers_and_a_function() {
        assert_eq!(super::python_module("a.b_2:run"), Some(("a.b_2", "run")));
        for not in ["main.py", "a/b:c", "a.b:", ":f", "1a:f", "a..b:f", "a:b:c"] {
            assert_eq!(super::python_module(not), None, "{not}");
        }
    }

    #[test]
    fn a_node_entry_may_name_an_export_of_its_file() {
        let dir = checkout(&["lib/fn.js", "odd:name.js"]);
        let node = |e: &'static str| run(dir.path(), "node", Chosen { entry: Some(e), ..Default::default() });
        let launch = node("lib/fn.js:handler").unwrap();
        assert_eq!(
            (&launch.command[3..], launch.entry_dir.as_str()),
            (&["/code".into(), "lib/fn.js:handler".into()][..], "lib")
        );
        assert!(node("odd:name.js").is_ok());
        assert_eq!(node("lib/no.js:handler").unwrap_err(), ManifestError::EntryMissing("lib/no.js:handler".into()));
        assert_eq!(super::node_export("a.js:$h_1"), Some(("a.js", "$h_1")));
        for not in ["a.js", "a.js:", ":h", "a.js:1h", "a.js:h-i"] {
            assert_eq!(super::node_export(not), None, "{not}");
        }
    }

    #[test]
    fn an_entrys_directory_is_its_files_parent_or_its_modules_package() {
        assert_eq!((super::parent("main.py"), super::parent("fns/a/main.py")), (".".into(), "fns/a".into()));
        assert_eq!(super::module_dir(".", "main"), ".");
        assert_eq!(super::module_dir(".", "pkg.sub.mod"), "pkg/sub");
        assert_eq!(super::module_dir("src", "pkg.mod"), "src/pkg");
        assert_eq!(super::module_dir("src", "mod"), "src");
    }
}
