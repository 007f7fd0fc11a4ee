//! Script mode: a python or node entry run as its authors run it — `python3
//! ENTRY ARGS…`, `python3 -m MODULE ARGS…`, `node ENTRY ARGS…` — instead of a
//! function the runner calls. The checkout is on python's path (`PYTHONPATH`,
//! with a dependency layer's `site/` after it); node finds the checkout's own
//! `node_modules/` from the entry's directory as usual, and a dependency layer's
//! at `/node_modules` (`require` and `import` alike, see `deps`). Always cold: a script
//! is a process of its own, which a warm sandbox's runner does not make.

use std::path::Path;

use super::entry::{checked_file, parent};
use super::{ManifestError, DEPS_MOUNT};

/// What a script job names: its entry (the job's, else the manifest's) and args.
pub(super) struct Script<'a> {
    pub entry: Option<String>,
    pub manifest_entry: Option<String>,
    pub args: &'a [String],
}

impl Script<'_> {
    /// The command, the entry's directory (where the search for its dependency
    /// declaration starts) and the container's environment. `python3 -m MODULE`
    /// is asked for with args starting `-m MODULE` and no entry named by the job.
    pub fn command(
        self,
        checkout: &Path,
        code_mount: &str,
        runtime: &str,
        workdir: &str,
    ) -> Result<(Vec<String>, String, Vec<String>), ManifestError> {
        let (interpreter, default) = match runtime {
            "python" => ("python3", "main.py"),
            "node" => ("node", "main.js"),
            other => return Err(ManifestError::NoScripts(other.to_owned())),
        };
        let env = match runtime {
            "python" => vec![format!("PYTHONPATH={code_mount}:{DEPS_MOUNT}/site")],
            _ => Vec::new(),
        };
        if runtime == "python" && self.entry.is_none() && self.args.first().is_some_and(|a| a == "-m") {
            let module = self.args.get(1).filter(|m| is_module(m)).ok_or_else(|| {
                ManifestError::BadArgs("`-m` must be followed by a module name (dotted identifiers)".into())
            })?;
            let command = ["python3", "-m", module].into_iter().map(String::from);
            return Ok((command.chain(self.args[2..].iter().cloned()).collect(), workdir.to_owned(), env));
        }
        let entry = self.entry.or(self.manifest_entry).unwrap_or_else(|| default.into());
        let entry = checked_file(checkout, entry)?;
        let command = [interpreter.to_owned(), format!("{code_mount}/{entry}")];
        Ok((command.into_iter().chain(self.args.iter().cloned()).collect(), parent(&entry), env))
    }
}

fn is_module(name: &str) -> bool {
    name.split('.').all(|part| {
        let mut chars = part.chars();
        chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use gitfaas_common::schema::Mode;
    use serde_json::json;

    use super::super::{plan, Chosen, ManifestError, Offer};

    #[test]
    fn scripts_run_their_entry_or_module_with_the_args_and_the_input_as_json() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("test")).unwrap();
        std::fs::write(dir.path().join("test/main.py"), "").unwrap();
        std::fs::write(dir.path().join("cli.js"), "").unwrap();
        let images = BTreeMap::from([
            ("python".into(), "py".into()),
            ("node".into(), "n".into()),
            ("command".into(), "c".into()),
        ]);
        let offer = Offer { images: &images, allowed_images: &[], wasm: false };
        let run = |runtime: &str, entry: Option<&'static str>, args: &[&str]| {
            let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
            let chosen = Chosen { entry, args: &args, workdir: None, mode: Some(Mode::Script), context: None };
            plan(dir.path(), "/code", Some(runtime), &chosen, &offer, &json!({"a": 1}), b"{\"k\":\"v\"}")
        };
        let launch = run("python", Some("test/main.py"), &["2", "3"]).unwrap();
        assert_eq!(launch.command, ["python3", "/code/test/main.py", "2", "3"]);
        assert_eq!((launch.stdin.as_slice(), launch.entry_dir.as_str()), (&b"{\"a\":1}"[..], "test"));
        assert_eq!(launch.env, ["PYTHONPATH=/code:/deps/site"]);
        assert!(launch.reading.text_output && crate::warm_args(&launch).is_none());
        let launch = run("python", None, &["-m", "doctest", "test/main.py"]).unwrap();
        assert_eq!(launch.command, ["python3", "-m", "doctest", "test/main.py"]);
        assert!(matches!(run("python", None, &["-m", "../x"]), Err(ManifestError::BadArgs(_))));
        let launch = run("node", Some("cli.js"), &["--flag"]).unwrap();
        assert_eq!(launch.command, ["node", "/code/cli.js", "--flag"]);
        assert_eq!(run("node", Some("gone.js"), &[]).unwrap_err(), ManifestError::EntryMissing("gone.js".into()));
        assert_eq!(run("command", None, &[]).unwrap_err(), ManifestError::NoScripts("command".into()));
    }
}
