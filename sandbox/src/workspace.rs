//! A job's directories on the host: `code` (the checkout, read-only in the
//! container), `input` (read-only), `output` (writable by the sandbox user) and
//! `deps` (a dependency layer, read-only). Removed when dropped; a warm sandbox
//! keeps its workspace as long as it lives.
//!
//! A ready sandbox is started with these directories empty; the function's
//! checkout is moved into `code` and its layer linked into `deps` when it is
//! claimed ([`Workspace::inject`]). The container sees them through its bind
//! mounts (under runc and gVisor alike): nothing is mounted after it started.
//!
//! A workspace also carries what a run from it reports beyond its outcome: the
//! checkout's notes (a submodule left empty), which move with the checkout, and
//! the dependency layer of the job now using it.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use gitfaas_common::schema::DependencyBuild;

pub struct Workspace {
    dir: tempfile::TempDir,
    // boxed: a job's place holds a workspace by value
    about: Box<Mutex<About>>,
}

/// What a run from a workspace reports of its checkout and layer.
#[derive(Clone, Default)]
struct About {
    notes: Vec<String>,
    dependencies: Option<DependencyBuild>,
}

impl Workspace {
    /// A fresh workspace below `work_dir`.
    pub fn create(work_dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(work_dir)?;
        let dir = tempfile::Builder::new().prefix("job-").tempdir_in(work_dir)?;
        // the sandbox user is not root: it must be able to read the checkout and input
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
        for (sub, mode) in [("code", 0o755), ("input", 0o755), ("output", 0o777), ("deps", 0o755)] {
            std::fs::create_dir(dir.path().join(sub))?;
            std::fs::set_permissions(dir.path().join(sub), std::fs::Permissions::from_mode(mode))?;
        }
        Ok(Self { dir, about: Box::default() })
    }

    /// This workspace, whose checkout the result of each run from it notes so.
    pub fn with_notes(self, notes: Vec<String>) -> Self {
        self.about().notes = notes;
        self
    }

    pub fn notes(&self) -> Vec<String> {
        self.about().notes.clone()
    }

    /// The layer of the job now running from this workspace, for its result.
    pub fn set_dependencies(&self, dependencies: Option<DependencyBuild>) {
        self.about().dependencies = dependencies;
    }

    pub fn dependencies(&self) -> Option<DependencyBuild> {
        self.about().dependencies.clone()
    }

    fn about(&self) -> std::sync::MutexGuard<'_, About> {
        self.about.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn code(&self) -> PathBuf {
        self.dir.path().join("code")
    }

    pub fn input(&self) -> PathBuf {
        self.dir.path().join("input")
    }

    pub fn output(&self) -> PathBuf {
        self.dir.path().join("output")
    }

    pub fn deps(&self) -> PathBuf {
        self.dir.path().join("deps")
    }

    /// Empties `input` (the executor wrote it) for the next invocation of a warm
    /// sandbox, keeping the directory itself: it is what the container has mounted.
    /// `output` is emptied by the sandbox's own runner, whose user wrote it.
    pub fn clear_input(&self) -> std::io::Result<()> {
        empty(&self.input())
    }

    /// Gives this (a ready sandbox's, still empty) workspace a function: the
    /// checkout in `from`'s `code` is moved into `code` (a rename per top-level
    /// entry: `from` is below the same work directory), and `layer`, if any, is
    /// linked file by file into `deps` (hard links to the cached layer's
    /// read-only files; copies where the cache is on another file system).
    pub fn inject(&self, from: &Workspace, layer: Option<&Path>) -> std::io::Result<()> {
        let code = self.code();
        if std::fs::read_dir(&code)?.next().is_some() || std::fs::read_dir(self.deps())?.next().is_some() {
            return Err(std::io::Error::other("a ready workspace must be empty before it is given a function"));
        }
        for entry in std::fs::read_dir(from.code())? {
            let entry = entry?;
            std::fs::rename(entry.path(), code.join(entry.file_name()))?;
        }
        if let Some(layer) = layer {
            link_tree(layer, &self.deps())?;
        }
        self.about().notes = from.notes();
        Ok(())
    }
}

fn empty(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            std::fs::remove_dir_all(entry.path())?;
        } else {
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

/// Recreates the tree `from` in the existing directory `to`: directories with
/// their modes, files as hard links (or copies across file systems), symlinks
/// as they are (they resolve inside the container, where the layer is mounted).
fn link_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    let mut pending = vec![(from.to_path_buf(), to.to_path_buf())];
    // a directory takes its (read-only) mode once filled: only root may write into it before
    let mut modes = Vec::new();
    while let Some((source, target)) = pending.pop() {
        for entry in std::fs::read_dir(&source)? {
            let entry = entry?;
            let (path, into) = (entry.path(), target.join(entry.file_name()));
            let kind = entry.file_type()?;
            if kind.is_dir() {
                std::fs::create_dir(&into)?;
                modes.push((into.clone(), entry.metadata()?.permissions()));
                pending.push((path, into));
            } else if kind.is_symlink() {
                std::os::unix::fs::symlink(std::fs::read_link(&path)?, &into)?;
            } else if kind.is_file() {
                if let Err(error) = std::fs::hard_link(&path, &into) {
                    if error.kind() != std::io::ErrorKind::CrossesDevices {
                        return Err(error);
                    }
                    std::fs::copy(&path, &into)?;
                }
            }
        }
    }
    // the deepest first: a parent made read-only never stops its child's change
    for (dir, mode) in modes.into_iter().rev() {
        std::fs::set_permissions(dir, mode)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn a_ready_workspace_is_given_the_checkout_and_a_linked_layer() {
        let root = tempfile::tempdir().unwrap();
        let (ready, checkout) = (Workspace::create(root.path()).unwrap(), Workspace::create(root.path()).unwrap());
        std::fs::create_dir_all(checkout.code().join("pkg")).unwrap();
        std::fs::write(checkout.code().join("pkg/main.py"), "x = 1").unwrap();
        std::fs::write(checkout.code().join(".hidden"), "h").unwrap();
        let layer = root.path().join("layer");
        std::fs::create_dir_all(layer.join("site/lib")).unwrap();
        std::fs::write(layer.join("site/lib/m.py"), "y = 2").unwrap();
        std::os::unix::fs::symlink("lib/m.py", layer.join("site/alias.py")).unwrap();
        ready.inject(&checkout, Some(&layer)).unwrap();
        assert_eq!(std::fs::read_to_string(ready.code().join("pkg/main.py")).unwrap(), "x = 1");
        assert!(ready.code().join(".hidden").is_file());
        assert_eq!(std::fs::read_dir(checkout.code()).unwrap().count(), 0, "moved, not copied");
        let linked = ready.deps().join("site/lib/m.py");
        assert_eq!(linked.metadata().unwrap().ino(), layer.join("site/lib/m.py").metadata().unwrap().ino());
        assert_eq!(std::fs::read_link(ready.deps().join("site/alias.py")).unwrap(), Path::new("lib/m.py"));
        let again = Workspace::create(root.path()).unwrap();
        assert!(ready.inject(&again, None).is_err(), "a workspace is given a function once");
    }
}
