//! The pool's bookkeeping, with no Docker and time passed in: which warm
//! sandboxes are idle under which key, which ready sandboxes (started, never
//! used) wait under which shape, how many (and how much memory) are in use, and
//! which to evict — ready ones first, then warm ones least recently used first —
//! to make room or when idle past their time to live. Generic over what it
//! holds, so it is tested alone.

use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Everything that makes two runs equivalent. Containers are never shared between
/// owners: the owner is part of the key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct WarmKey {
    pub owner: String,
    pub commit: String,
    /// The runtime image by id (its digest), not by tag.
    pub image_id: String,
    /// The runner command, which names the entry, the working directory and (for
    /// `command`, which runs cold) the arguments.
    pub command: Vec<String>,
    pub memory_mb: u32,
    pub cpu_millis: u32,
    pub pids: u32,
    pub job_network: bool,
    /// The dependency layer's digest, for a function that has one.
    pub layer: Option<String>,
}

/// What a ready sandbox is before it has a function: a runtime's image and the
/// limits its container was created with. It runs no code of anyone's until it
/// is claimed, and from then on it is a warm sandbox of one [`WarmKey`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ReadyShape {
    pub runtime: String,
    /// The image as the runtime names it (what the container is created from).
    pub image: String,
    /// Its id: a rebuilt image makes a new shape.
    pub image_id: String,
    pub memory_mb: u32,
    pub cpu_millis: u32,
    pub pids: u32,
    pub job_network: bool,
}

/// The pool's bounds.
#[derive(Clone, Debug)]
pub struct Limits {
    pub max_containers: usize,
    pub memory_budget_mb: u64,
    pub idle_ttl: Duration,
}

struct Idle<C> {
    key: WarmKey,
    code_dir: PathBuf,
    since: Instant,
    item: C,
}

pub struct Engine<C> {
    limits: Limits,
    /// Least recently used first.
    idle: Vec<Idle<C>>,
    /// Ready sandboxes, oldest first.
    ready: Vec<(ReadyShape, C)>,
    num_busy: usize,
    busy_memory_mb: u64,
}

impl<C> Engine<C> {
    pub fn new(limits: Limits) -> Self {
        Self { limits, idle: Vec::new(), ready: Vec::new(), num_busy: 0, busy_memory_mb: 0 }
    }

    /// Takes a ready sandbox of `shape`; it counts as busy from now on.
    pub fn claim_ready(&mut self, shape: &ReadyShape) -> Option<C> {
        let index = self.ready.iter().position(|(s, _)| s == shape)?;
        let (_, item) = self.ready.remove(index);
        self.num_busy += 1;
        self.busy_memory_mb += u64::from(shape.memory_mb);
        Some(item)
    }

    /// Room for a new ready sandbox of `memory_mb`: free room, or with
    /// `evict_idle` room made by evicting idle warm sandboxes, least recently
    /// used first (never a ready or a busy one). `None` when there is none; else
    /// the evicted, and the new one counts as busy until [`Engine::add_ready`]
    /// (or a release).
    pub fn reserve_ready(&mut self, memory_mb: u32, evict_idle: bool) -> Option<Vec<C>> {
        let memory_mb = u64::from(memory_mb);
        // how many of the least recently used idle ones must go for it to fit
        let (mut num, mut freed_mb) = (0, 0);
        while self.num_containers() - num >= self.limits.max_containers
            || self.busy_memory_mb + self.idle_memory_mb() - freed_mb + memory_mb > self.limits.memory_budget_mb
        {
            if !evict_idle || num == self.idle.len() {
                return None;
            }
            freed_mb += u64::from(self.idle[num].key.memory_mb);
            num += 1;
        }
        let evicted = self.idle.drain(..num).map(|i| i.item).collect();
        self.num_busy += 1;
        self.busy_memory_mb += memory_mb;
        Some(evicted)
    }

    /// A reserved sandbox has started: it waits as ready.
    pub fn add_ready(&mut self, shape: ReadyShape, item: C) {
        self.release(shape.memory_mb);
        self.ready.push((shape, item));
    }

    /// Ready sandboxes of `shape`.
    pub fn num_ready(&self, shape: &ReadyShape) -> usize {
        self.ready.iter().filter(|(s, _)| s == shape).count()
    }

    /// Ready sandboxes of shapes `wanted` no longer keeps, taken out for removal.
    pub fn unwanted_ready(&mut self, wanted: impl Fn(&ReadyShape) -> bool) -> Vec<C> {
        let (kept, gone) = std::mem::take(&mut self.ready).into_iter().partition(|(s, _)| wanted(s));
        self.ready = kept;
        gone.into_iter().map(|(_, item): (ReadyShape, C)| item).collect()
    }

    /// The checkout of an idle sandbox of `owner` at `commit`, to read the
    /// function's manifest from before the full key is known.
    pub fn code_dir_of(&self, owner: &str, commit: &str) -> Option<PathBuf> {
        let found = self.idle.iter().rev().find(|i| i.key.owner == owner && i.key.commit == commit);
        found.map(|i| i.code_dir.clone())
    }

    /// Takes the most recently used idle sandbox of `key`; it counts as busy until
    /// given back or discarded.
    pub fn take(&mut self, key: &WarmKey) -> Option<C> {
        let index = self.idle.iter().rposition(|i| &i.key == key)?;
        let idle = self.idle.remove(index);
        self.num_busy += 1;
        self.busy_memory_mb += u64::from(key.memory_mb);
        Some(idle.item)
    }

    /// Room for a new sandbox of `memory_mb`: evicts idle ones, least recently used
    /// first, until it fits. `None` when it cannot fit (the busy ones alone are past
    /// the bounds); else the evicted, for the caller to remove. The new one counts
    /// as busy.
    pub fn admit(&mut self, memory_mb: u32) -> Option<Vec<C>> {
        let memory_mb = u64::from(memory_mb);
        let busy_fits = self.num_busy < self.limits.max_containers
            && self.busy_memory_mb + memory_mb <= self.limits.memory_budget_mb;
        if !busy_fits {
            return None;
        }
        let mut evicted = Vec::new();
        while self.num_containers() >= self.limits.max_containers
            || self.busy_memory_mb + self.idle_memory_mb() + memory_mb > self.limits.memory_budget_mb
        {
            // a ready sandbox holds nothing a new one would not: it goes first
            evicted.push(if self.ready.is_empty() { self.idle.remove(0).item } else { self.ready.remove(0).1 });
        }
        self.num_busy += 1;
        self.busy_memory_mb += memory_mb;
        Some(evicted)
    }

    /// A busy sandbox goes back to idle, as the most recently used.
    pub fn give_back(&mut self, key: WarmKey, code_dir: PathBuf, item: C, now: Instant) {
        self.release(key.memory_mb);
        self.idle.push(Idle { key, code_dir, since: now, item });
    }

    /// A busy sandbox was discarded (or never started).
    pub fn release(&mut self, memory_mb: u32) {
        self.num_busy = self.num_busy.saturating_sub(1);
        self.busy_memory_mb = self.busy_memory_mb.saturating_sub(u64::from(memory_mb));
    }

    /// Idle sandboxes past their time to live, taken out for removal.
    pub fn expire(&mut self, now: Instant) -> Vec<C> {
        let ttl = self.limits.idle_ttl;
        let (expired, kept) = std::mem::take(&mut self.idle).into_iter().partition(|i| now - i.since >= ttl);
        self.idle = kept;
        expired.into_iter().map(|i: Idle<C>| i.item).collect::<Vec<_>>()
    }

    /// Every idle and ready sandbox, taken out (shutdown).
    pub fn drain(&mut self) -> Vec<C> {
        let ready = std::mem::take(&mut self.ready).into_iter().map(|(_, item)| item);
        std::mem::take(&mut self.idle).into_iter().map(|i| i.item).chain(ready).collect()
    }

    /// Sandboxes in the pool, busy, idle and ready.
    pub fn num_containers(&self) -> usize {
        self.idle.len() + self.ready.len() + self.num_busy
    }

    #[cfg(test)]
    pub fn num_idle(&self) -> usize {
        self.idle.len()
    }

    /// Memory of the idle and the ready sandboxes.
    fn idle_memory_mb(&self) -> u64 {
        let ready = self.ready.iter().map(|(s, _)| u64::from(s.memory_mb));
        self.idle.iter().map(|i| u64::from(i.key.memory_mb)).chain(ready).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(owner: &str, commit: &str, memory_mb: u32) -> WarmKey {
        WarmKey {
            owner: owner.into(),
            commit: commit.into(),
            image_id: "sha256:i".into(),
            command: vec!["python3".into()],
            memory_mb,
            cpu_millis: 500,
            pids: 64,
            job_network: false,
            layer: None,
        }
    }

    fn shape(runtime: &str, memory_mb: u32) -> ReadyShape {
        ReadyShape {
            runtime: runtime.into(),
            image: format!("{runtime}:tag"),
            image_id: "sha256:i".into(),
            memory_mb,
            cpu_millis: 500,
            pids: 64,
            job_network: false,
        }
    }

    fn engine(max_containers: usize, memory_budget_mb: u64) -> Engine<&'static str> {
        Engine::new(Limits { max_containers, memory_budget_mb, idle_ttl: Duration::from_secs(60) })
    }

    #[test]
    fn a_sandbox_is_taken_only_by_its_own_key_and_never_by_another_owner() {
        let mut pool = engine(4, 1024);
        let now = Instant::now();
        assert_eq!(pool.admit(128), Some(vec![]));
        pool.give_back(key("alice", "c1", 128), "/w/a".into(), "a", now);
        assert_eq!(pool.take(&key("bob", "c1", 128)), None);
        assert_eq!(pool.take(&key("alice", "c2", 128)), None);
        assert_eq!(pool.take(&key("alice", "c1", 256)), None);
        assert_eq!(pool.code_dir_of("bob", "c1"), None);
        assert_eq!(pool.code_dir_of("alice", "c1"), Some("/w/a".into()));
        assert_eq!(pool.take(&key("alice", "c1", 128)), Some("a"));
        assert_eq!(pool.take(&key("alice", "c1", 128)), None, "a busy sandbox is not handed out twice");
    }

    #[test]
    fn room_is_made_by_evicting_the_least_recently_used_idle_sandbox() {
        let mut pool = engine(2, 10_000);
        let now = Instant::now();
        for (name, commit) in [("first", "c1"), ("second", "c2")] {
            assert_eq!(pool.admit(128), Some(vec![]));
            pool.give_back(key("o", commit, 128), "/w".into(), name, now);
        }
        // c1 used again: c2 is now the least recently used
        let first = pool.take(&key("o", "c1", 128)).unwrap();
        pool.give_back(key("o", "c1", 128), "/w".into(), first, now);
        assert_eq!(pool.admit(128), Some(vec!["second"]));
        assert_eq!(pool.num_idle(), 1);
    }

    #[test]
    fn the_memory_budget_counts_busy_and_idle_sandboxes() {
        let mut pool = engine(10, 512);
        let now = Instant::now();
        assert_eq!(pool.admit(256), Some(vec![]));
        assert_eq!(pool.admit(256), Some(vec![]));
        assert_eq!(pool.admit(1), None, "two busy sandboxes fill the budget");
        pool.give_back(key("o", "c1", 256), "/w".into(), "one", now);
        assert_eq!(pool.admit(256), Some(vec!["one"]), "an idle one is evicted for a new one");
        pool.release(256);
        pool.release(256);
        assert_eq!(pool.admit(512), Some(vec![]));
    }

    #[test]
    fn idle_sandboxes_expire_after_their_time_to_live() {
        let mut pool = engine(4, 1024);
        let start = Instant::now();
        pool.admit(64);
        pool.admit(64);
        pool.give_back(key("o", "old", 64), "/w".into(), "old", start);
        pool.give_back(key("o", "new", 64), "/w".into(), "new", start + Duration::from_secs(30));
        assert!(pool.expire(start + Duration::from_secs(59)).is_empty());
        assert_eq!(pool.expire(start + Duration::from_secs(60)), vec!["old"]);
        assert_eq!(pool.drain(), vec!["new"]);
        assert_eq!(pool.num_idle(), 0);
    }

    #[test]
    fn ready_sandboxes_are_claimed_by_shape_evict_only_idle_warm_ones_and_go_first() {
        let mut pool = engine(3, 1024);
        let now = Instant::now();
        assert_eq!(pool.reserve_ready(256, false), Some(vec![]));
        pool.add_ready(shape("python", 256), "ready-py");
        assert_eq!(pool.reserve_ready(256, false), Some(vec![]));
        pool.add_ready(shape("node", 256), "ready-node");
        assert_eq!(pool.num_ready(&shape("python", 256)), 1);
        assert_eq!(pool.claim_ready(&shape("python", 512)), None, "another limit is another shape");
        assert_eq!(pool.claim_ready(&shape("python", 256)), Some("ready-py"));
        assert_eq!(pool.num_ready(&shape("python", 256)), 0);
        // the claimed one is busy now; it goes back as a warm sandbox of one function
        pool.give_back(key("alice", "c1", 256), "/w".into(), "ready-py", now);
        assert_eq!(pool.num_containers(), 2);
        assert_eq!(pool.reserve_ready(256, false), Some(vec![]), "a third fits");
        pool.release(256);
        assert_eq!(pool.admit(256), Some(vec![]));
        assert_eq!(pool.reserve_ready(1, false), None, "the pool is full");
        assert_eq!(pool.reserve_ready(1, true), Some(vec!["ready-py"]), "a kept shape evicts an idle warm one");
        assert_eq!(pool.reserve_ready(1, true), None, "never a ready or a busy one");
        pool.release(1);
        assert_eq!(pool.admit(256), Some(vec![]));
        assert_eq!(pool.admit(256), Some(vec!["ready-node"]), "the ready one goes before a warm one");
        pool.give_back(key("alice", "c2", 256), "/w".into(), "warm-2", now);
        assert_eq!(pool.drain(), vec!["warm-2"]);
    }

    #[test]
    fn ready_sandboxes_of_unwanted_shapes_are_taken_out() {
        let mut pool = engine(4, 1024);
        for (runtime, item) in [("python", "p"), ("node", "n")] {
            assert_eq!(pool.reserve_ready(128, false), Some(vec![]));
            pool.add_ready(shape(runtime, 128), item);
        }
        assert_eq!(pool.unwanted_ready(|s| s.runtime == "python"), vec!["n"]);
        assert_eq!(pool.num_containers(), 1);
        assert_eq!(pool.drain(), vec!["p"]);
    }
}
