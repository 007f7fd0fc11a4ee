//! The content-addressed layer cache on the host: `layers/<key>/` holds one built
//! set of dependencies, `logs/<key>.log` the log of its last build, `tmp/` the
//! builds under way. A build writes into a temporary directory below `tmp/`
//! (private to the cache's owner: only the Docker daemon's bind mount lets the
//! build's user in), which is sealed — every entry root-owned, directories 0555,
//! files 0444 or 0555 — and then renamed into place whole, so a layer is either
//! complete or absent and no one but root changes what later runs import. The
//! cache's own directories are 0755, writable by its owner alone. One lock per
//! key makes two jobs needing the same layer build it once. Total size is
//! bounded: least recently used layers no job is using are evicted after each
//! build.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// Marker whose modification time is when a layer was last used.
const USED_MARKER: &str = ".gitfaas-used";

pub struct LayerCache {
    root: PathBuf,
    max_cache_bytes: u64,
    /// One lock per key, held while the layer is looked up or built.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Jobs using each layer now; such a layer is never evicted.
    users: Arc<Mutex<HashMap<String, usize>>>,
}

/// A layer in use by one run; it is not evicted until dropped.
pub struct Layer {
    pub key: String,
    pub dir: PathBuf,
    users: Arc<Mutex<HashMap<String, usize>>>,
}

impl Drop for Layer {
    fn drop(&mut self) {
        let mut users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = users.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                users.remove(&self.key);
            }
        }
    }
}

/// A build's own directories: where the layer is written, and its log.
pub struct Staging {
    pub layer: PathBuf,
    pub log_dir: PathBuf,
    /// Removed, with whatever the build left in it, when dropped.
    _root: tempfile::TempDir,
}

impl Staging {
    /// The build log's text (empty when the build wrote none).
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(self.log_dir.join(super::BUILD_LOG)).unwrap_or_default()).into_owned()
    }
}

impl LayerCache {
    pub fn new(root: &Path, max_cache_bytes: u64) -> std::io::Result<Self> {
        for sub in ["layers", "logs", "tmp"] {
            std::fs::create_dir_all(root.join(sub))?;
        }
        // what a build reads and what every later run imports: no one else writes here
        for dir in [root, &root.join("layers"), &root.join("logs")] {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
        }
        // the daemon mounts what the sandbox user sees: nobody else needs a way in
        std::fs::set_permissions(root.join("tmp"), std::fs::Permissions::from_mode(0o700))?;
        Ok(Self { root: root.to_owned(), max_cache_bytes, locks: Mutex::default(), users: Arc::default() })
    }

    fn lock_of(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        locks.entry(key.to_owned()).or_default().clone()
    }

    fn layer(&self, key: &str) -> Layer {
        *self.users.lock().unwrap_or_else(|e| e.into_inner()).entry(key.to_owned()).or_default() += 1;
        Layer { key: key.to_owned(), dir: self.root.join("layers").join(key), users: self.users.clone() }
    }

    /// The log of the last build of `key`.
    pub fn log_path(&self, key: &str) -> PathBuf {
        self.root.join("logs").join(format!("{key}.log"))
    }

    /// The layer of `key`: the cached one, or the one `build` writes into a fresh
    /// [`Staging`] (returning whether it succeeded). `Ok((layer, built))`.
    pub async fn get_or_build<E, F, Fut>(&self, key: &str, build: F) -> Result<(Layer, bool), E>
    where
        F: FnOnce(Staging) -> Fut,
        Fut: std::future::Future<Output = Result<Staging, E>>,
        E: From<std::io::Error>,
    {
        let lock = self.lock_of(key);
        let _held = lock.lock().await;
        let dir = self.root.join("layers").join(key);
        if dir.is_dir() {
            touch(&dir);
            return Ok((self.layer(key), false));
        }
        let staging = self.staging()?;
        let staging = build(staging).await?;
        std::fs::write(self.log_path(key), staging.log())?;
        touch(&staging.layer);
        seal(&staging.layer, owned_by_root())?;
        // a directory moves to another parent only while writable (its `..` changes) — for any
        // user but root: the layer is sealed again once in place
        std::fs::set_permissions(&staging.layer, std::fs::Permissions::from_mode(0o755))?;
        std::fs::rename(&staging.layer, &dir)?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o555))?;
        drop(staging);
        let layer = self.layer(key);
        self.evict();
        Ok((layer, true))
    }

    fn staging(&self) -> std::io::Result<Staging> {
        let dir = tempfile::Builder::new().prefix("build-").tempdir_in(self.root.join("tmp"))?;
        let (layer, log_dir) = (dir.path().join("layer"), dir.path().join("log"));
        for sub in [&layer, &log_dir] {
            std::fs::create_dir(sub)?;
            // written by the build's non-root user, then read-only for every run
            std::fs::set_permissions(sub, std::fs::Permissions::from_mode(0o777))?;
        }
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
        Ok(Staging { layer, log_dir, _root: dir })
    }

    /// Evicts least recently used layers without users until the cache fits.
    fn evict(&self) {
        let Ok(entries) = std::fs::read_dir(self.root.join("layers")) else { return };
        let mut layers: Vec<(SystemTime, u64, PathBuf, String)> = entries
            .flatten()
            .map(|e| {
                let used = std::fs::metadata(e.path().join(USED_MARKER)).and_then(|m| m.modified());
                let key = e.file_name().to_string_lossy().into_owned();
                (used.unwrap_or(SystemTime::UNIX_EPOCH), tree_bytes(&e.path()), e.path(), key)
            })
            .collect();
        let mut total: u64 = layers.iter().map(|l| l.1).sum();
        layers.sort();
        for (_, bytes, path, key) in layers {
            if total <= self.max_cache_bytes {
                break;
            }
            if self.users.lock().unwrap_or_else(|e| e.into_inner()).contains_key(&key) {
                continue;
            }
            // a build of this key waits on its lock; one under way is not evicted
            let lock = self.lock_of(&key);
            let Ok(_held) = lock.try_lock() else { continue };
            match remove_sealed(&path) {
                Ok(()) => {
                    total -= bytes;
                    let _ = std::fs::remove_file(self.log_path(&key));
                    tracing::info!(layer = %key, bytes, "dependency layer evicted");
                }
                Err(error) => tracing::warn!(layer = %key, %error, "dependency layer eviction failed"),
            }
        }
    }
}

/// Whether this process can give files to root (it is root): otherwise (a local
/// run by a user) a layer stays its owner's, still read-only.
fn owned_by_root() -> bool {
    crate::process::own_ids().is_some_and(|(uid, _)| uid == 0)
}

/// Makes a built layer read-only for everyone and, with `to_root`, root's: its
/// build ran as the sandbox user, who must not change it afterwards. Symlinks are
/// given to root but not followed; set-id bits are dropped. The use marker stays
/// writable by the owner (the cache marks use on it).
fn seal(dir: &Path, to_root: bool) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let meta = std::fs::symlink_metadata(&path)?;
        if to_root {
            std::os::unix::fs::lchown(&path, Some(0), Some(0))?;
        }
        if meta.file_type().is_symlink() {
            continue;
        }
        let mode = if meta.is_dir() {
            seal(&path, to_root)?;
            0o555
        } else if entry.file_name() == USED_MARKER {
            0o644
        } else if meta.mode() & 0o111 != 0 {
            0o555
        } else {
            0o444
        };
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))?;
    }
    if to_root {
        std::os::unix::fs::lchown(dir, Some(0), Some(0))?;
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o555))
}

/// Removes a sealed layer: its directories are made writable first (root needs
/// no such thing, a local run's user does).
fn remove_sealed(dir: &Path) -> std::io::Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(error) if error.kind() == std::io::ErrorKind::PermissionDenied => {
            unseal(dir)?;
            std::fs::remove_dir_all(dir)
        }
        other => other,
    }
}

fn unseal(dir: &Path) -> std::io::Result<()> {
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            unseal(&entry.path())?;
        }
    }
    Ok(())
}

/// Marks a layer used now.
fn touch(dir: &Path) {
    let marker = dir.join(USED_MARKER);
    let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&marker);
    if let Ok(file) = file {
        let _ = file.set_modified(SystemTime::now());
    }
}

/// Bytes of the files below `dir`, not following symlinks.
pub fn tree_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(kind) if kind.is_dir() => tree_bytes(&e.path()),
            Ok(_) => e.metadata().map(|m| m.len()).unwrap_or(0),
            Err(_) => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    async fn build_of(cache: &LayerCache, key: &str, bytes: usize, builds: &AtomicUsize) -> (Layer, bool) {
        let built = cache.get_or_build(key, |staging: Staging| async move {
            builds.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            std::fs::write(staging.layer.join("file"), vec![0u8; bytes])?;
            Ok::<_, std::io::Error>(staging)
        });
        built.await.unwrap()
    }

    #[tokio::test]
    async fn two_jobs_needing_one_layer_build_it_once() {
        let root = tempfile::tempdir().unwrap();
        let cache = LayerCache::new(root.path(), 1 << 20).unwrap();
        let builds = AtomicUsize::new(0);
        let (a, b) = tokio::join!(build_of(&cache, "k", 10, &builds), build_of(&cache, "k", 10, &builds));
        assert_eq!(builds.load(Ordering::SeqCst), 1);
        assert_eq!(a.1 as u8 + b.1 as u8, 1, "one built, one found it");
        assert!(a.0.dir.join("file").is_file());
        assert_eq!(std::fs::read_dir(root.path().join("tmp")).unwrap().count(), 0, "staging removed");
    }

    #[tokio::test]
    async fn a_built_layer_is_roots_and_read_only_and_the_cache_writable_by_its_owner_alone() {
        use std::os::unix::fs::MetadataExt;
        let root = tempfile::tempdir().unwrap();
        let cache = LayerCache::new(root.path(), 1 << 20).unwrap();
        let built = cache.get_or_build("k", |staging: Staging| async move {
            let site = staging.layer.join("site/pkg");
            std::fs::create_dir_all(&site)?;
            std::fs::write(site.join("mod.py"), "x")?;
            std::fs::write(site.join("tool"), "#!/bin/sh\n")?;
            std::fs::set_permissions(site.join("tool"), std::fs::Permissions::from_mode(0o6777))?;
            std::os::unix::fs::symlink("mod.py", site.join("link"))?;
            Ok::<_, std::io::Error>(staging)
        });
        let (layer, _) = built.await.unwrap();
        let mode = |p: &str| std::fs::symlink_metadata(layer.dir.join(p)).unwrap().mode() & 0o7777;
        assert_eq!((mode("."), mode("site"), mode("site/pkg")), (0o555, 0o555, 0o555));
        assert_eq!((mode("site/pkg/mod.py"), mode("site/pkg/tool")), (0o444, 0o555));
        let root_owned = owned_by_root();
        for path in [".", "site", "site/pkg/mod.py", "site/pkg/link"] {
            let meta = std::fs::symlink_metadata(layer.dir.join(path)).unwrap();
            assert!(!root_owned || (meta.uid(), meta.gid()) == (0, 0), "{path}");
        }
        let cache_mode = |p: &str| std::fs::metadata(root.path().join(p)).unwrap().mode() & 0o777;
        assert_eq!((cache_mode("."), cache_mode("layers"), cache_mode("logs")), (0o755, 0o755, 0o755));
        assert_eq!(cache_mode("tmp"), 0o700, "builds under way are private");
        drop(layer);
        remove_sealed(&root.path().join("layers/k")).unwrap();
    }

    #[tokio::test]
    async fn a_failed_build_leaves_no_layer() {
        let root = tempfile::tempdir().unwrap();
        let cache = LayerCache::new(root.path(), 1 << 20).unwrap();
        let failed = cache.get_or_build("k", |_staging| async { Err::<Staging, _>(std::io::Error::other("no")) });
        assert!(failed.await.is_err());
        assert!(!root.path().join("layers/k").exists());
        let builds = AtomicUsize::new(0);
        assert!(build_of(&cache, "k", 1, &builds).await.1, "built on the next try");
    }

    #[tokio::test]
    async fn least_recently_used_layers_without_users_are_evicted_past_the_cache_size() {
        let root = tempfile::tempdir().unwrap();
        let cache = LayerCache::new(root.path(), 2500).unwrap();
        let builds = AtomicUsize::new(0);
        let (held, _) = build_of(&cache, "held", 1000, &builds).await;
        drop(build_of(&cache, "old", 1000, &builds).await);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        drop(build_of(&cache, "new", 1000, &builds).await);
        let present = |k: &str| root.path().join("layers").join(k).is_dir();
        assert!(present("held") && present("new") && !present("old"));
        drop(held);
    }
}
