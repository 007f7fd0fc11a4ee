//! What a checkout declares it depends on: the declaration nearest to the entry.
//!
//! The search starts at the entry's directory (a file entry's parent, a python
//! module's package directory) and goes up one parent at a time to the job's
//! working directory, inclusive; the repository's root is reached only when it is
//! the working directory (the default). An entry outside the working directory
//! has its own directory searched, then the working directory. In each
//! directory: python `requirements.txt`, else `pyproject.toml` with a `[project]`
//! table (its `dependencies`); node `package.json`, whose dependencies then need
//! its `package-lock.json`. The first such file found ends the search, even when
//! it declares nothing (a `requirements.txt` of comments and blank lines, a
//! `[project]` without dependencies, a `package.json` without or with empty
//! `dependencies`): that directory's function has no dependencies, whatever a
//! parent declares. Files are read without following a symlink and no further
//! than a cap, like the manifest; a directory that resolves outside the checkout
//! is skipped.

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

/// What one directory holds of a declaration.
enum Found {
    /// Nothing: the search goes on in the parent.
    Absent,
    /// A file that declares nothing: no dependencies, the search ends.
    Empty,
    /// A file (named) and what it declares.
    Declared(&'static str, Declared),
}

/// The declaration of `runtime`'s dependencies nearest to the entry in
/// `entry_dir`, searched up to `workdir` (both relative, checked by the plan; `.`
/// is the root), with the path of its file relative to the checkout; `None` when
/// there is none or the nearest file declares nothing.
pub fn declared(
    checkout: &Path,
    workdir: &str,
    entry_dir: &str,
    runtime: &str,
) -> Result<Option<(String, Declared)>, DepsError> {
    let Ok(root) = checkout.canonicalize() else { return Ok(None) };
    for dir in search(workdir, entry_dir) {
        let path = if dir.is_empty() { checkout.to_owned() } else { checkout.join(&dir) };
        if !path.canonicalize().is_ok_and(|p| p.starts_with(&root)) {
            continue;
        }
        let found = match runtime {
            "python" => python(&path)?,
            "node" => node(&path)?,
            _ => Found::Absent,
        };
        match found {
            Found::Absent => {}
            Found::Empty => return Ok(None),
            Found::Declared(file, declared) if dir.is_empty() => return Ok(Some((file.to_owned(), declared))),
            Found::Declared(file, declared) => return Ok(Some((format!("{dir}/{file}"), declared))),
        }
    }
    Ok(None)
}

/// The directories searched, nearest first, as relative paths (`""` the root):
/// `entry_dir` and each parent up to `workdir` when it is inside it, else
/// `entry_dir` then `workdir`.
fn search(workdir: &str, entry_dir: &str) -> Vec<String> {
    let trim = |dir: &str| if dir == "." { String::new() } else { dir.trim_end_matches('/').to_owned() };
    let (workdir, mut dir) = (trim(workdir), trim(entry_dir));
    let inside = workdir.is_empty() || dir == workdir || dir.starts_with(&format!("{workdir}/"));
    if !inside {
        return vec![dir, workdir];
    }
    let mut dirs = vec![dir.clone()];
    while dir != workdir {
        dir = dir.rsplit_once('/').map_or(String::new(), |(parent, _)| parent.to_owned());
        dirs.push(dir.clone());
    }
    dirs
}

fn read(dir: &Path, name: &str) -> Result<Option<Vec<u8>>, DepsError> {
    read_regular(&dir.join(name), MAX_DECLARATION_BYTES).map_err(|()| {
        DepsError::Declaration(format!("{name} must be a regular file of at most {MAX_DECLARATION_BYTES} bytes"))
    })
}

fn python(dir: &Path) -> Result<Found, DepsError> {
    const REQUIREMENTS: &str = "requirements.txt";
    const PYPROJECT: &str = "pyproject.toml";
    if let Some(requirements) = read(dir, REQUIREMENTS)? {
        let blank =
            String::from_utf8_lossy(&requirements).lines().all(|l| l.trim().is_empty() || l.trim().starts_with('#'));
        return Ok(if blank { Found::Empty } else { Found::Declared(REQUIREMENTS, Declared::Python { requirements }) });
    }
    let Some(pyproject) = read(dir, PYPROJECT)? else { return Ok(Found::Absent) };
    let text =
        String::from_utf8(pyproject).map_err(|_| DepsError::Declaration("pyproject.toml is not UTF-8".into()))?;
    let doc: toml::Table = toml::from_str(&text)
        .map_err(|e| DepsError::Declaration(format!("pyproject.toml is invalid: {}", e.message())))?;
    // a pyproject.toml without `[project]` configures tools only: not a declaration
    let Some(project) = doc.get("project") else { return Ok(Found::Absent) };
    let Some(list) = project.get("dependencies") else { return Ok(Found::Empty) };
    let bad = || DepsError::Declaration("pyproject.toml [project] dependencies must be a list of strings".into());
    let list = list.as_array().ok_or_else(bad)?;
    let mut requirements = String::new();
    for item in list {
        let line = item.as_str().filter(|s| !s.contains('\n')).ok_or_else(bad)?;
        requirements.push_str(line);
        requirements.push('\n');
    }
    Ok(match requirements.is_empty() {
        true => Found::Empty,
        false => Found::Declared(PYPROJECT, Declared::Python { requirements: requirements.into_bytes() }),
    })
}

fn node(dir: &Path) -> Result<Found, DepsError> {
    const PACKAGE: &str = "package.json";
    let Some(package_json) = read(dir, PACKAGE)? else { return Ok(Found::Absent) };
    let package: serde_json::Value = serde_json::from_slice(&package_json)
        .map_err(|e| DepsError::Declaration(format!("package.json is not valid json: {e}")))?;
    let has_dependencies = package.get("dependencies").and_then(|d| d.as_object()).is_some_and(|d| !d.is_empty());
    if !has_dependencies {
        return Ok(Found::Empty);
    }
    let Some(lock) = read(dir, "package-lock.json")? else {
        return Err(DepsError::Declaration("package.json declares dependencies but has no package-lock.json".into()));
    };
    Ok(Found::Declared(PACKAGE, Declared::Node { package_json, lock }))
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

    fn python(requirements: &str) -> Option<Declared> {
        Some(Declared::Python { requirements: requirements.as_bytes().to_vec() })
    }

    /// What `declared` finds for an entry in `entry_dir` run in `workdir`, without the file.
    fn of(dir: &tempfile::TempDir, workdir: &str, entry_dir: &str) -> Option<Declared> {
        declared(dir.path(), workdir, entry_dir, "python").unwrap().map(|(_, declared)| declared)
    }

    #[test]
    fn the_declaration_nearest_the_entry_wins_up_to_the_workdir() {
        let dir = checkout(&[
            ("requirements.txt", "root==1\n"),
            ("a/requirements.txt", "a==1\n"),
            ("a/b/c/x", ""),
            ("other/x", ""),
        ]);
        assert_eq!(of(&dir, ".", "a/b/c"), python("a==1\n"));
        assert_eq!(declared(dir.path(), ".", "a/b/c", "python").unwrap().unwrap().0, "a/requirements.txt");
        assert_eq!(of(&dir, "a", "a/b/c"), python("a==1\n"));
        assert_eq!(of(&dir, ".", "other"), python("root==1\n"));
        assert_eq!(declared(dir.path(), ".", ".", "python").unwrap().unwrap().0, "requirements.txt");
        // the root only when it is the workdir
        assert_eq!(of(&dir, "other", "other"), None);
        assert_eq!(of(&dir, "a/b", "a/b/c"), None);
        // an entry outside the workdir: its own directory, then the workdir
        assert_eq!(of(&dir, "a/b", "other"), None);
        assert_eq!(of(&dir, "a", "other"), python("a==1\n"));
        assert_eq!(declared(dir.path(), ".", ".", "command").unwrap(), None);
    }

    #[test]
    fn a_file_that_declares_nothing_ends_the_search() {
        let dir = checkout(&[
            ("requirements.txt", "root==1\n"),
            ("comments/requirements.txt", "# only a comment\n\n"),
            ("comments/deeper/x", ""),
            ("project/pyproject.toml", "[project]\nname = \"x\"\n"),
            ("tools/pyproject.toml", "[tool.black]\nline-length = 100\n"),
        ]);
        assert_eq!(of(&dir, ".", "comments/deeper"), None);
        assert_eq!(of(&dir, ".", "project"), None);
        assert_eq!(of(&dir, ".", "tools"), python("root==1\n"));
        let node = checkout(&[
            ("package.json", r#"{"dependencies": {"a": "1"}}"#),
            ("package-lock.json", "{}"),
            ("fn/package.json", r#"{"name": "fn", "dependencies": {}}"#),
        ]);
        assert_eq!(declared(node.path(), ".", "fn", "node").unwrap(), None);
        assert!(matches!(declared(node.path(), ".", ".", "node").unwrap(), Some((_, Declared::Node { .. }))));
    }

    #[test]
    fn a_directory_linked_out_of_the_checkout_is_not_searched() {
        let outside = checkout(&[("requirements.txt", "outside==1\n")]);
        let dir = checkout(&[("requirements.txt", "root==1\n")]);
        std::os::unix::fs::symlink(outside.path(), dir.path().join("away")).unwrap();
        assert_eq!(of(&dir, ".", "away"), python("root==1\n"));
    }

    #[test]
    fn pyproject_dependencies_become_requirement_lines() {
        let dir = checkout(&[("pyproject.toml", "[project]\nname = \"x\"\ndependencies = [\"a>=1\", \"b\"]\n")]);
        assert_eq!(of(&dir, ".", "."), python("a>=1\nb\n"));
        let none = checkout(&[("pyproject.toml", "[project]\nname = \"x\"\n"), ("requirements.txt", "# nothing\n")]);
        assert_eq!(of(&none, ".", "."), None);
        let bad = checkout(&[("pyproject.toml", "[project]\ndependencies = \"a\"\n")]);
        assert!(matches!(declared(bad.path(), ".", ".", "python"), Err(DepsError::Declaration(_))));
    }

    #[test]
    fn node_dependencies_need_their_lock_file() {
        let package = r#"{"dependencies": {"left-pad": "1.3.0"}}"#;
        let unlocked = checkout(&[("package.json", package)]);
        let err = declared(unlocked.path(), ".", ".", "node").unwrap_err();
        assert!(err.to_string().contains("no package-lock.json"), "{err}");
        let locked = checkout(&[("package.json", package), ("package-lock.json", "{}")]);
        assert!(matches!(declared(locked.path(), ".", ".", "node").unwrap(), Some((_, Declared::Node { .. }))));
        let bare = checkout(&[("package.json", r#"{"name": "x"}"#)]);
        assert_eq!(declared(bare.path(), ".", ".", "node").unwrap(), None);
    }

    #[test]
    fn a_declaration_linked_out_of_the_checkout_is_refused_unread() {
        let dir = checkout(&[]);
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("requirements.txt")).unwrap();
        assert!(matches!(declared(dir.path(), ".", ".", "python"), Err(DepsError::Declaration(_))));
    }
}
