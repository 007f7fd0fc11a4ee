//! Bounds on what a checkout may write, checked against the commit's tree before
//! a byte is written: total size, number of files, largest file, and no
//! submodules. A blob's size comes from the object database header, so a
//! compressed bomb (a 1 GiB file of zeros is ~1 MB packed) is refused without
//! being inflated.

use git2::{ObjectType, Repository, Tree, TreeWalkMode, TreeWalkResult};
use serde::Deserialize;

/// What one checkout may hold (`executor.checkout`).
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CheckoutLimits {
    /// Largest sum of the sizes of the checked-out files.
    pub max_bytes: u64,
    /// Most files (symlinks count as files).
    pub max_files: u64,
    /// Largest single file; also bounds the executor's memory while checking out,
    /// since git inflates one file at a time.
    pub max_file_bytes: u64,
}

impl Default for CheckoutLimits {
    fn default() -> Self {
        Self { max_bytes: 256 << 20, max_files: 20_000, max_file_bytes: 64 << 20 }
    }
}

/// Why a tree is not checked out. The repository's own property: never retried.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TreeError {
    #[error("checkout refused: the files total more than the {0} byte limit")]
    TooManyBytes(u64),
    #[error("checkout refused: more than {0} files")]
    TooManyFiles(u64),
    #[error("checkout refused: `{path}` is larger than the {limit} byte file limit")]
    FileTooLarge { path: String, limit: u64 },
    #[error("repository has a submodule at `{0}`; submodules are not supported, vendor its files instead")]
    Submodule(String),
    #[error("repository tree could not be read: {0}")]
    Unreadable(String),
}

/// Walks `tree` and refuses it when it breaks `limits` or holds a submodule.
pub fn check(repo: &Repository, tree: &Tree<'_>, limits: &CheckoutLimits) -> Result<(), TreeError> {
    let odb = repo.odb().map_err(|e| TreeError::Unreadable(e.message().to_owned()))?;
    let (mut num_files, mut num_bytes) = (0u64, 0u64);
    let mut refusal = None;
    let walked = tree.walk(TreeWalkMode::PreOrder, |dir, entry| {
        let path = || format!("{dir}{}", String::from_utf8_lossy(entry.name_bytes()));
        let outcome = match entry.kind() {
            Some(ObjectType::Tree) => Ok(()),
            Some(ObjectType::Commit) => Err(TreeError::Submodule(path())),
            _ => match odb.read_header(entry.id()) {
                Ok((size, _)) => {
                    num_files += 1;
                    num_bytes += size as u64;
                    if size as u64 > limits.max_file_bytes {
                        Err(TreeError::FileTooLarge { path: path(), limit: limits.max_file_bytes })
                    } else if num_files > limits.max_files {
                        Err(TreeError::TooManyFiles(limits.max_files))
                    } else if num_bytes > limits.max_bytes {
                        Err(TreeError::TooManyBytes(limits.max_bytes))
                    } else {
                        Ok(())
                    }
                }
                Err(e) => Err(TreeError::Unreadable(e.message().to_owned())),
            },
        };
        match outcome {
            Ok(()) => TreeWalkResult::Ok,
            Err(e) => {
                refusal = Some(e);
                TreeWalkResult::Abort
            }
        }
    });
    match (refusal, walked) {
        (Some(e), _) => Err(e),
        (None, Err(e)) => Err(TreeError::Unreadable(e.message().to_owned())),
        (None, Ok(())) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bare repository and the id of a tree holding `files` (path, size in zero bytes).
    fn repo_with(files: &[(&str, usize)]) -> (tempfile::TempDir, Repository, git2::Oid) {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init_bare(dir.path()).unwrap();
        let mut index = git2::Index::new().unwrap();
        for (path, size) in files {
            let id = repo.blob(&vec![0u8; *size]).unwrap();
            let time = git2::IndexTime::new(0, 0);
            let flags = path.len().min(0xfff) as u16;
            let (dev, ino, uid, gid, file_size, flags_extended) = (0, 0, 0, 0, 0, 0);
            let path = path.as_bytes().to_vec();
            let mode = 0o100644;
            index
                .add(&git2::IndexEntry {
                    ctime: time,
                    mtime: time,
                    dev,
                    ino,
                    mode,
                    uid,
                    gid,
                    file_size,
                    id,
                    flags,
                    flags_extended,
                    path,
                })
                .unwrap();
        }
        let tree = index.write_tree_to(&repo).unwrap();
        (dir, repo, tree)
    }

    fn checked(files: &[(&str, usize)], limits: &CheckoutLimits) -> Result<(), TreeError> {
        let (_dir, repo, tree) = repo_with(files);
        let tree = repo.find_tree(tree).unwrap();
        check(&repo, &tree, limits)
    }

    #[test]
    fn trees_within_the_limits_pass_and_each_limit_is_named() {
        let limits = CheckoutLimits { max_bytes: 100, max_files: 3, max_file_bytes: 60 };
        assert_eq!(checked(&[("a", 10), ("dir/b", 50)], &limits), Ok(()));
        assert_eq!(
            checked(&[("dir/big.bin", 61)], &limits),
            Err(TreeError::FileTooLarge { path: "dir/big.bin".into(), limit: 60 })
        );
        assert_eq!(checked(&[("a", 1), ("b", 1), ("c", 1), ("d", 1)], &limits), Err(TreeError::TooManyFiles(3)));
        assert_eq!(checked(&[("a", 40), ("b", 40), ("c", 40)], &limits), Err(TreeError::TooManyBytes(100)));
    }
}
