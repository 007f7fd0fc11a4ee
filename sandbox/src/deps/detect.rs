//! What a checkout declares it depends on, read at the job's working directory,
//! else at the repository's root: python `requirements.txt`, else `pyproject.toml`
//! `[project] dependencies`; node `package.json` with dependencies, which then
//! needs its `package-lock.json`. Files are read without following a symlink and
//! no further than a cap, like the manifest.

use std::path::Path;

use super::DepsError;
use crate::runtime::read_regular;

/// The largest declaration file read.
const MAX_DECLARATION_BYTES: u64 = 4 << 20;

/// The files a build installs from, by runtime.
#[derive(Clone, Debug, PartialEq)]
pub enum Declared {
    /// The text of a requirements file (for pyproject, one requirement a line).
    Python {
        requirements: Vec<u8>,
    },
    Node {
        package_json: Vec<u8>,
        lock: Vec<u8>,
    },
}

impl Declared {
    /// The bytes that, with the image id, name the layer.
    pub fn content(&self) -> Vec<u8> {
        match self {
            Declared::Python { requirements } => [b"python\0".as_slice(), requirements].concat(),
            Declared::Node { package_json, lock } => [b"node\0".as_slice(), package_json, b"\0", lock].concat(),
        }
    }
}

/// The declaration of `runtime`'s dependencies at `workdir` (relative, checked by
/// the plan), else at the root; `None` when there is none.
pub fn declared(checkout: &Path, workdir: &str, runtime: &str) -> Result<Option<Declared>, DepsError> {
    let mut dirs = vec![checkout.join(workdir)];
    if workdir != "." {
        dirs.push(checkout.to_owned());
    }
    for dir in dirs {
        let found = match runtime {
            "python" => python(&dir)?,
            "node" => node(&dir)?,
            _ => None,
        };
        if found.is_some() {
            return Ok(found);
        }
    }
    Ok(None)
}

fn read(dir: &Path, name: &str) -> Result<Option<Vec<u8>>, DepsError> {
    read_regular(&dir.join(name), MAX_DECLARATION_BYTES).map_err(|()| {
        DepsError::Declaration(format!("{name} must be a regular file of at most {MAX_DECLARATION_BYTES} bytes"))
    })
}

fn python(dir: &Path) -> Result<Option<Declared>, DepsError> {
    if let Some(requirements) = read(dir, "requirements.txt")? {
        let blank =
            String::from_utf8_lossy(&requirements).lines().all(|l| l.trim().is_empty() || l.trim().starts_with('#'));
        return Ok((!blank).then_some(Declared::Python { requirements }));
    }
    let Some(pyproject) = read(dir, "pyproject.toml")? else { return Ok(None) };
    let text =
        String::from_utf8(pyproject).map_err(|_| DepsError::Declaration("pyproject.toml is not UTF-8".into()))?;
    let doc: toml::Table = toml::from_str(&text)
        .map_err(|e| DepsError::Declaration(format!("pyproject.toml is invalid: {}", e.message())))?;
    let Some(list) = doc.get("project").and_then(|p| p.get("dependencies")) else { return Ok(None) };
    let bad = || DepsError::Declaration("pyproject.toml [project] dependencies must be a list of strings".into());
    let list = list.as_array().ok_or_else(bad)?;
    let mut requirements = String::new();
    for item in list {
        let line = item.as_str().filter(|s| !s.contains('\n')).ok_or_else(bad)?;
        requirements.push_str(line);
        requirements.push('\n');
    }
    Ok((!requirements.is_empty()).then(|| Declared::Python { requirements: requirements.into_bytes() }))
}

fn node(dir: &Path) -> Result<Option<Declared>, DepsError> {
    let Some(package_json) = read(dir, "package.json")? else { return Ok(None) };
    let package: serde_json::Value = serde_json::from_slice(&package_json)
        .map_err(|e| DepsError::Declaration(format!("package.json is not valid json: {e}")))?;
    let has_dependencies = package.get("dependencies").and_then(|d| d.as_object()).is_some_and(|d| !d.is_empty());
    if !has_dependencies {
        return Ok(None);
    }
    let Some(lock) = read(dir, "package-lock.json")? else {
        return Err(DepsError::Declaration("package.json declares dependencies but has no package-lock.json".into()));
    };
    Ok(Some(Declared::Node { package_json, lock }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkout(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let file = dir.path().join(path);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(file, text).unwrap();
        }
        dir
    }

    #[test]
    fn requirements_are_read_at_the_workdir_then_the_root() {
        let dir = checkout(&[("requirements.txt", "root==1\n"), ("sub/requirements.txt", "sub==1\n"), ("other/x", "")]);
        let of = |workdir| declared(dir.path(), workdir, "python").unwrap();
        assert_eq!(of("sub"), Some(Declared::Python { requirements: b"sub==1\n".to_vec() }));
        assert_eq!(of("other"), Some(Declared::Python { requirements: b"root==1\n".to_vec() }));
        assert_eq!(declared(dir.path(), ".", "command").unwrap(), None);
    }

    #[test]
    fn pyproject_dependencies_become_requirement_lines() {
        let dir = checkout(&[("pyproject.toml", "[project]\nname = \"x\"\ndependencies = [\"a>=1\", \"b\"]\n")]);
        assert_eq!(
            declared(dir.path(), ".", "python").unwrap(),
            Some(Declared::Python { requirements: b"a>=1\nb\n".to_vec() })
        );
        let none = checkout(&[("pyproject.toml", "[project]\nname = \"x\"\n"), ("requirements.txt", "# nothing\n")]);
        assert_eq!(declared(none.path(), ".", "python").unwrap(), None);
        let bad = checkout(&[("pyproject.toml", "[project]\ndependencies = \"a\"\n")]);
        assert!(matches!(declared(bad.path(), ".", "python"), Err(DepsError::Declaration(_))));
    }

    #[test]
    fn node_dependencies_need_their_lock_file() {
        let package = r#"{"dependencies": {"left-pad": "1.3.0"}}"#;
        let unlocked = checkout(&[("package.json", package)]);
        let err = declared(unlocked.path(), ".", "node").unwrap_err();
        assert!(err.to_string().contains("no package-lock.json"), "{err}");
        let locked = checkout(&[("package.json", package), ("package-lock.json", "{}")]);
        assert!(matches!(declared(locked.path(), ".", "node").unwrap(), Some(Declared::Node { .. })));
        let bare = checkout(&[("package.json", r#"{"name": "x"}"#)]);
        assert_eq!(declared(bare.path(), ".", "node").unwrap(), None);
    }

    #[test]
    fn a_declaration_linked_out_of_the_checkout_is_refused_unread() {
        let dir = checkout(&[]);
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("requirements.txt")).unwrap();
        assert!(matches!(declared(dir.path(), ".", "python"), Err(DepsError::Declaration(_))));
    }
}
