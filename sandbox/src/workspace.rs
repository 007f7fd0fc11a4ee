//! A job's directories on the host: `code` (the checkout, read-only in the
//! container), `input` (read-only) and `output` (writable by the sandbox user).
//! Removed when dropped; a warm sandbox keeps its workspace as long as it lives.
//! It carries the checkout's notes (a submodule left empty), which every run from
//! it reports.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

pub struct Workspace {
    dir: tempfile::TempDir,
    notes: Vec<String>,
}

impl Workspace {
    /// A fresh workspace below `work_dir`.
    pub fn create(work_dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(work_dir)?;
        let dir = tempfile::Builder::new().prefix("job-").tempdir_in(work_dir)?;
        // the sandbox user is not root: it must be able to read the checkout and input
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
        for (sub, mode) in [("code", 0o755), ("input", 0o755), ("output", 0o777)] {
            std::fs::create_dir(dir.path().join(sub))?;
            std::fs::set_permissions(dir.path().join(sub), std::fs::Permissions::from_mode(mode))?;
        }
        Ok(Self { dir, notes: Vec::new() })
    }

    /// This workspace, whose checkout the result of each run from it notes so.
    pub fn with_notes(self, notes: Vec<String>) -> Self {
        Self { notes, ..self }
    }

    pub fn notes(&self) -> &[String] {
        &self.notes
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

    /// Empties `input` (the executor wrote it) for the next invocation of a warm
    /// sandbox, keeping the directory itself: it is what the container has mounted.
    /// `output` is emptied by the sandbox's own runner, whose user wrote it.
    pub fn clear_input(&self) -> std::io::Result<()> {
        for entry in std::fs::read_dir(self.input())? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                std::fs::remove_dir_all(entry.path())?;
            } else {
                std::fs::remove_file(entry.path())?;
            }
        }
        Ok(())
    }
}
