//! Bounds on what a checkout may write, checked against the commit's tree before
//! a byte is written: total size, number of files, largest file, and only entries
//! git can write inside the checkout (no duplicate names, no
//! `.git`, `.` or `..`, no slash in a name, no missing object). A blob's size
//! comes from the object database header, so a compressed bomb (a 1 GiB file of
//! zeros is ~1 MB packed) is refused without being inflated. The tree's
//! submodules (gitlinks) are listed for the caller (see `submodules`).
//!
//! Everything refused here is the repository's own doing, so the job is
//! `rejected` at once; left to the checkout, git would refuse the same tree with
//! an error that reads like the executor's disk failing, and the job would be
//! retried as an infrastructure failure.

use std::collections::HashSet;

use git2::{ErrorCode, ObjectType, Repository, Tree, TreeEntry, TreeWalkMode, TreeWalkResult};
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
    /// An entry no checkout may write (git itself refuses it, or it would land
    /// outside the checkout or in its `.git`).
    #[error("repository tree has an entry that cannot be checked out, `{path}`: {why}")]
    BadEntry { path: String, why: &'static str },
    /// The repository names an object its server never sent.
    #[error("repository is missing the object of `{0}`")]
    MissingObject(String),
    #[error("repository tree could not be read: {0}")]
    Unreadable(String),
}

/// The longest name of one entry most file systems take.
const MAX_NAME_BYTES: usize = 255;
/// The longest path Linux takes.
const MAX_PATH_BYTES: usize = 4096;

/// Why an entry named `name` cannot be written, if it cannot: the rules git's
/// own checkout applies (including its NTFS ones, on by default), checked first
/// so that breaking them is the repository's fault rather than the executor's.
fn unwritable(name: &[u8], symlink: bool) -> Option<&'static str> {
    if name.is_empty() {
        return Some("an empty name");
    }
    if name.len() > MAX_NAME_BYTES {
        return Some("a name longer than 255 bytes");
    }
    if name.contains(&b'/') || name.contains(&0) {
        return Some("a slash in a name");
    }
    if name == b"." || name == b".." {
        return Some("a `.` or `..` entry");
    }
    // `.git`, `.GIT.`, `.git ` and the 8.3 name `git~1` are all the repository's own directory to git
    let lower = name.to_ascii_lowercase();
    let end = lower.iter().rposition(|b| !matches!(b, b'.' | b' ')).map_or(0, |i| i + 1);
    let trimmed = &lower[..end];
    if trimmed == b".git" || lower == b"git~1" {
        return Some("a `.git` entry");
    }
    if symlink && matches!(trimmed, b".gitmodules" | b".gitattributes" | b".gitignore") {
        return Some("a git file that is a symlink");
    }
    None
}

/// Refuses an entry that cannot be written, or that a directory already names.
fn check_entry(dir: &str, entry: &TreeEntry<'_>, seen: &mut HashSet<Vec<u8>>) -> Result<(), TreeError> {
    let path = || format!("{dir}{}", String::from_utf8_lossy(entry.name_bytes()));
    if let Some(why) = unwritable(entry.name_bytes(), entry.filemode() == 0o120000) {
        return Err(TreeError::BadEntry { path: path(), why });
    }
    if dir.len() + entry.name_bytes().len() > MAX_PATH_BYTES {
        return Err(TreeError::BadEntry { path: path(), why: "a path longer than 4096 bytes" });
    }
    let full = [dir.as_bytes(), entry.name_bytes()].concat();
    if !seen.insert(full) {
        return Err(TreeError::BadEntry { path: path(), why: "a name the directory holds twice" });
    }
    Ok(())
}

/// What a checked tree holds: its files' count and bytes, and its submodules.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct CheckedTree {
    pub num_files: u64,
    pub num_bytes: u64,
    /// Each gitlink: its path and the commit it pins.
    pub gitlinks: Vec<(String, git2::Oid)>,
}

impl CheckoutLimits {
    /// What is left of these limits once `used` is checked out.
    pub fn less(&self, used: &CheckedTree) -> CheckoutLimits {
        CheckoutLimits {
            max_bytes: self.max_bytes.saturating_sub(used.num_bytes),
            max_files: self.max_files.saturating_sub(used.num_files),
            max_file_bytes: self.max_file_bytes,
        }
    }
}

/// Walks `tree` and refuses it when it breaks `limits` or holds an entry that
/// cannot be written.
pub fn check(repo: &Repository, tree: &Tree<'_>, limits: &CheckoutLimits) -> Result<CheckedTree, TreeError> {
    let odb = repo.odb().map_err(|e| TreeError::Unreadable(e.message().to_owned()))?;
    let (mut num_files, mut num_bytes) = (0u64, 0u64);
    let mut gitlinks = Vec::new();
    let mut seen = HashSet::new();
    let mut refusal = None;
    let walked = tree.walk(TreeWalkMode::PreOrder, |dir, entry| {
        let path = || format!("{dir}{}", String::from_utf8_lossy(entry.name_bytes()));
        let outcome = check_entry(dir, entry, &mut seen).and_then(|()| match entry.kind() {
            Some(ObjectType::Tree) if odb.exists(entry.id()) => Ok(()),
            Some(ObjectType::Tree) => Err(TreeError::MissingObject(path())),
            Some(ObjectType::Commit) => {
                gitlinks.push((path(), entry.id()));
                Ok(())
            }
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
                Err(e) if e.code() == ErrorCode::NotFound => Err(TreeError::MissingObject(path())),
                Err(e) => Err(TreeError::Unreadable(e.message().to_owned())),
            },
        });
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
        (None, Ok(())) => Ok(CheckedTree { num_files, num_bytes, gitlinks }),
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
        check(&repo, &tree, limits).map(drop)
    }

    /// A tree written as it is, unchecked: `entries` of (mode, name, contents).
    fn raw_tree(entries: &[(&str, &[u8], &[u8])]) -> (tempfile::TempDir, Repository, git2::Oid) {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init_bare(dir.path()).unwrap();
        let odb = repo.odb().unwrap();
        let mut bytes = Vec::new();
        for (mode, name, contents) in entries {
            let id = odb.write(ObjectType::Blob, contents).unwrap();
            bytes.extend_from_slice(format!("{mode} ").as_bytes());
            bytes.extend_from_slice(name);
            bytes.push(0);
            bytes.extend_from_slice(id.as_bytes());
        }
        let tree = odb.write(ObjectType::Tree, &bytes).unwrap();
        drop(odb);
        (dir, repo, tree)
    }

    fn raw_checked(entries: &[(&str, &[u8], &[u8])]) -> Result<(), TreeError> {
        let (_dir, repo, tree) = raw_tree(entries);
        let tree = repo.find_tree(tree).unwrap();
        check(&repo, &tree, &CheckoutLimits::default()).map(drop)
    }

    #[test]
    fn entries_git_cannot_write_are_the_repositorys_fault() {
        let (file, long) = ("100644", "x".repeat(256));
        assert_eq!(raw_checked(&[(file, b"a", b"1"), (file, b"b", b"2")]), Ok(()));
        let refused = [
            (vec![(file, &b"main.py"[..]), (file, b"main.py")], "a name the directory holds twice"),
            (vec![(file, b".git")], "a `.git` entry"),
            (vec![(file, b".GiT. ")], "a `.git` entry"),
            (vec![(file, b"GIT~1")], "a `.git` entry"),
            (vec![(file, b"..")], "a `.` or `..` entry"),
            (vec![(file, b".")], "a `.` or `..` entry"),
            (vec![(file, b"../escape")], "a slash in a name"),
            (vec![(file, b"a/b")], "a slash in a name"),
            (vec![("120000", b".gitmodules")], "a git file that is a symlink"),
            (vec![(file, long.as_bytes())], "a name longer than 255 bytes"),
        ];
        for (entries, reason) in refused {
            let entries: Vec<_> = entries.into_iter().map(|(mode, name)| (mode, name, &b"x"[..])).collect();
            match raw_checked(&entries) {
                Err(TreeError::BadEntry { why, .. }) => assert_eq!(why, reason),
                other => panic!("{reason}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_tree_naming_an_object_it_lacks_is_refused_as_missing() {
        let (_dir, repo, _) = raw_tree(&[]);
        let mut bytes = b"40000 lib\0".to_vec();
        bytes.extend_from_slice(&[7u8; 20]);
        let tree = repo.odb().unwrap().write(ObjectType::Tree, &bytes).unwrap();
        let tree = repo.find_tree(tree).unwrap();
        assert_eq!(check(&repo, &tree, &CheckoutLimits::default()), Err(TreeError::MissingObject("lib".into())));
    }

    #[test]
    fn a_gitlink_is_listed_with_the_commit_it_pins_and_not_counted_as_a_file() {
        let (_dir, repo, _) = raw_tree(&[]);
        let blob = repo.blob(b"x").unwrap();
        let mut bytes = b"100644 a\0".to_vec();
        bytes.extend_from_slice(blob.as_bytes());
        bytes.extend_from_slice(b"160000 data\0");
        bytes.extend_from_slice(&[7u8; 20]);
        let tree = repo.odb().unwrap().write(ObjectType::Tree, &bytes).unwrap();
        let tree = repo.find_tree(tree).unwrap();
        let checked = check(&repo, &tree, &CheckoutLimits::default()).unwrap();
        let pinned = git2::Oid::from_bytes(&[7u8; 20]).unwrap();
        assert_eq!(checked, CheckedTree { num_files: 1, num_bytes: 1, gitlinks: vec![("data".into(), pinned)] });
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
