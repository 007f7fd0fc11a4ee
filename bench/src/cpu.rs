//! CPU time per job, by process, over one burst: every process's
//! utime + stime + cutime + cstime from `/proc/<pid>/stat` before and after
//! (the `c` parts carry children a process forked and reaped, e.g. the
//! `upload-pack` of each `git daemon` connection), the function containers' own
//! cgroup usage, and the machine's busy time from `/proc/stat` over the same
//! window, so that what no listed process used shows as unattributed.
//!
//! Each process counts for one row: the stack's services by the pid files of
//! `scripts/lib.sh` (`$RUN_DIR/<name>.pid`, with all their descendants), the
//! Docker engine's processes by name, the containers' processes not at all (their
//! cgroups say what they used), the rest as "other processes". A row's figure is
//! the sum over its processes after minus before, so that a child that exited in
//! the window is neither lost nor counted twice once its parent reaped it.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde_json::{json, Value};

/// Label of every gitfaas container, valued with the executor's id.
const EXECUTOR_LABEL: &str = "io.gitfaas.executor";
const CONTAINERS: &str = "function containers (cgroups)";
const OTHER: &str = "other processes";

/// Row names of the pid files of `scripts/lib.sh`'s `start_bg`.
fn row_of_pid_file(name: &str) -> String {
    match name {
        "executor" => "executor-1".into(),
        "git-daemon" => "git daemon (+ upload-pack)".into(),
        "kafka" => "kafka broker (java)".into(),
        "redis" => "redis-server".into(),
        other => other.into(),
    }
}

/// What a process counts for.
#[derive(Debug, PartialEq)]
enum Class {
    Row(String),
    /// Inside a container: measured by the container's cgroup instead.
    Container,
    Other(String),
}

struct Proc {
    ppid: u32,
    comm: String,
    ticks: u64,
}

/// `(ppid, comm, utime + stime + cutime + cstime)` of one `/proc/<pid>/stat` line.
fn parse_stat(line: &str) -> Option<Proc> {
    let (open, close) = (line.find('(')?, line.rfind(')')?);
    let comm = line.get(open + 1..close)?.to_owned();
    let fields: Vec<&str> = line.get(close + 1..)?.split_whitespace().collect();
    let number = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    let ticks = number(11)? + number(12)? + number(13)? + number(14)?;
    Some(Proc { ppid: number(1)? as u32, comm, ticks })
}

fn processes() -> HashMap<u32, Proc> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return HashMap::new() };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            Some((pid, parse_stat(&stat)?))
        })
        .collect()
}

/// The pids named by `*.pid` files in `run_dir`, with their rows.
fn roots(run_dir: &Path) -> HashMap<u32, String> {
    let Ok(entries) = std::fs::read_dir(run_dir) else { return HashMap::new() };
    entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_str()?.strip_suffix(".pid")?.to_owned();
            let pid = std::fs::read_to_string(entry.path()).ok()?.trim().parse().ok()?;
            Some((pid, row_of_pid_file(&name)))
        })
        .collect()
}

fn classify(pid: u32, procs: &HashMap<u32, Proc>, roots: &HashMap<u32, String>, bench_pid: u32) -> Class {
    let own = &procs[&pid].comm;
    let (mut at, mut depth) = (pid, 0);
    while let Some(p) = procs.get(&at).filter(|_| at > 1 && depth < 64) {
        if let Some(row) = roots.get(&at) {
            return Class::Row(row.clone());
        }
        if at == bench_pid {
            return Class::Row("gitfaas-bench (the clients)".into());
        }
        if p.comm.starts_with("containerd-shim") {
            // the shim itself, and the runc it runs to create and stop containers
            return match at == pid || own == "runc" {
                true => Class::Row("containerd-shim (+ runc)".into()),
                false => Class::Container,
            };
        }
        (at, depth) = (p.ppid, depth + 1);
    }
    match own.as_str() {
        "dockerd" | "containerd" => Class::Row(own.clone()),
        _ => Class::Other(own.split('/').next().unwrap_or(own).to_owned()),
    }
}

/// Busy ticks of the whole machine (`/proc/stat`: all but idle and iowait).
fn machine_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<u64> =
        stat.lines().next().unwrap_or_default().split_whitespace().skip(1).filter_map(|f| f.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal (guest is inside user)
    [0, 1, 2, 5, 6, 7].iter().filter_map(|&i| fields.get(i)).sum()
}

/// The CPU-time accounting file of the container whose init process is `pid`
/// (cgroup v2 `cpu.stat`, or v1 `cpuacct.usage`).
fn cgroup_file(pid: u32) -> Option<PathBuf> {
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let root = Path::new("/sys/fs/cgroup");
    for line in cgroups.lines() {
        let mut parts = line.splitn(3, ':');
        let (id, controllers, path) = (parts.next()?, parts.next()?, parts.next()?.trim_start_matches('/'));
        let candidates = if id == "0" {
            vec![root.join(path).join("cpu.stat"), root.join("unified").join(path).join("cpu.stat")]
        } else if controllers.split(',').any(|c| c == "cpuacct") {
            vec![
                root.join(controllers).join(path).join("cpuacct.usage"),
                root.join("cpuacct").join(path).join("cpuacct.usage"),
            ]
        } else {
            continue;
        };
        if let Some(file) = candidates.into_iter().find(|f| f.exists()) {
            return Some(file);
        }
    }
    None
}

/// Milliseconds of CPU the cgroup of `file` has used.
fn cgroup_ms(file: &Path) -> Option<f64> {
    let text = std::fs::read_to_string(file).ok()?;
    if file.ends_with("cpuacct.usage") {
        return Some(text.trim().parse::<f64>().ok()? / 1e6);
    }
    let usec = text.lines().find_map(|l| l.strip_prefix("usage_usec "))?;
    Some(usec.trim().parse::<f64>().ok()? / 1e3)
}

/// The running containers of `executor_ids` (label [`EXECUTOR_LABEL`]), by id,
/// with their cgroup accounting files.
fn containers(executor_ids: &[String]) -> HashMap<String, Option<PathBuf>> {
    let mut ids = Vec::new();
    for executor in executor_ids {
        let filter = format!("label={EXECUTOR_LABEL}={executor}");
        if let Ok(out) = Command::new("docker").args(["ps", "-q", "--no-trunc", "--filter", &filter]).output() {
            ids.extend(String::from_utf8_lossy(&out.stdout).split_whitespace().map(str::to_owned));
        }
    }
    if ids.is_empty() {
        return HashMap::new();
    }
    let inspected = Command::new("docker").args(["inspect", "-f", "{{.Id}} {{.State.Pid}}"]).args(&ids).output();
    let text = inspected.map(|out| String::from_utf8_lossy(&out.stdout).into_owned()).unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let (id, pid) = line.split_once(' ')?;
            Some((id.to_owned(), pid.trim().parse().ok().and_then(cgroup_file)))
        })
        .collect()
}

/// CPU ticks by row at one moment.
struct Snapshot {
    at: Instant,
    machine: u64,
    rows: BTreeMap<String, u64>,
    other: BTreeMap<String, u64>,
    container_procs: u64,
    cgroups_ms: HashMap<String, Option<f64>>,
}

/// A measurement window: [`Window::open`] before the burst, [`Window::close`] after.
pub struct Window {
    run_dir: PathBuf,
    executor_ids: Vec<String>,
    cgroups: HashMap<String, Option<PathBuf>>,
    before: Snapshot,
}

fn snapshot(run_dir: &Path, cgroups: &HashMap<String, Option<PathBuf>>) -> Snapshot {
    let (at, machine) = (Instant::now(), machine_ticks());
    let procs = processes();
    let roots = roots(run_dir);
    let bench_pid = std::process::id();
    let (mut rows, mut other, mut container_procs) = (BTreeMap::new(), BTreeMap::new(), 0);
    for (pid, proc) in &procs {
        match classify(*pid, &procs, &roots, bench_pid) {
            Class::Row(row) => *rows.entry(row).or_default() += proc.ticks,
            Class::Other(comm) => *other.entry(comm).or_default() += proc.ticks,
            Class::Container => container_procs += proc.ticks,
        }
    }
    let cgroups_ms = cgroups.iter().map(|(id, file)| (id.clone(), file.as_deref().and_then(cgroup_ms))).collect();
    Snapshot { at, machine, rows, other, container_procs, cgroups_ms }
}

fn clock_ticks_per_second() -> f64 {
    let out = Command::new("getconf").arg("CLK_TCK").output();
    out.ok().and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok()).unwrap_or(100.0)
}

impl Window {
    pub fn open(run_dir: &Path, executor_ids: &[String]) -> Window {
        let cgroups = containers(executor_ids);
        let before = snapshot(run_dir, &cgroups);
        Window { run_dir: run_dir.to_owned(), executor_ids: executor_ids.to_vec(), cgroups, before }
    }

    /// The table of the window for `jobs` jobs (see [`print`]).
    pub fn close(self, jobs: usize) -> Value {
        let after = snapshot(&self.run_dir, &self.cgroups);
        let tick_ms = 1e3 / clock_ticks_per_second();
        let seconds = after.at.duration_since(self.before.at).as_secs_f64();
        let delta = |a: &BTreeMap<String, u64>, b: &BTreeMap<String, u64>| -> BTreeMap<String, f64> {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            let ticks = |m: &BTreeMap<String, u64>, k: &String| m.get(k).copied().unwrap_or(0) as f64;
            keys.into_iter().map(|k| (k.clone(), (ticks(a, k) - ticks(b, k)) * tick_ms)).collect()
        };
        let mut rows = delta(&after.rows, &self.before.rows);
        let others = delta(&after.other, &self.before.other);
        rows.insert(OTHER.into(), others.values().sum());
        // containers started in the window count from zero; gone ones are lost
        let now = containers(&self.executor_ids);
        let mut containers_ms = 0.0;
        for (id, file) in &now {
            let used = file.as_deref().and_then(cgroup_ms).unwrap_or(0.0);
            let before = self.before.cgroups_ms.get(id).copied().flatten().unwrap_or(0.0);
            containers_ms += used - before;
        }
        let gone = self.before.cgroups_ms.keys().filter(|id| !now.contains_key(*id)).count();
        rows.insert(CONTAINERS.into(), containers_ms);
        let machine_ms = after.machine.saturating_sub(self.before.machine) as f64 * tick_ms;
        let container_procs_ms = (after.container_procs as f64 - self.before.container_procs as f64) * tick_ms;
        table(jobs, seconds, machine_ms, rows, others, (now.len(), gone, container_procs_ms))
    }
}

fn table(
    jobs: usize,
    seconds: f64,
    machine_ms: f64,
    rows: BTreeMap<String, f64>,
    others: BTreeMap<String, f64>,
    (num_containers, gone, container_procs_ms): (usize, usize, f64),
) -> Value {
    let per_job = |ms: f64| ms / jobs.max(1) as f64;
    let share = |ms: f64| if machine_ms > 0.0 { ms / machine_ms } else { 0.0 };
    let mut rows: Vec<(String, f64)> = rows.into_iter().collect();
    rows.sort_by(|a, b| b.1.total_cmp(&a.1));
    let attributed: f64 = rows.iter().map(|(_, ms)| ms).sum();
    rows.push(("unattributed (machine − rows)".into(), machine_ms - attributed));
    let mut other_top: Vec<(String, f64)> = others.into_iter().filter(|(_, ms)| *ms > 0.0).collect();
    other_top.sort_by(|a, b| b.1.total_cmp(&a.1));
    other_top.truncate(5);
    json!({
        "jobs": jobs,
        "seconds": seconds,
        "rows": rows.iter().map(|(name, ms)| json!({
            "process": name, "cpu_ms": ms, "ms_per_job": per_job(*ms), "share": share(*ms)
        })).collect::<Vec<_>>(),
        "machine": {"cpu_ms": machine_ms, "ms_per_job": per_job(machine_ms), "busy_cores": machine_ms / 1e3 / seconds},
        "other_top": other_top.iter().map(|(comm, ms)| json!({"comm": comm, "ms_per_job": per_job(*ms)})).collect::<Vec<_>>(),
        "containers": {
            "count": num_containers,
            "gone_in_window": gone,
            "from_proc_ms_per_job": per_job(container_procs_ms),
        },
    })
}

/// Prints a table of [`Window::close`] under `title`.
pub fn print(table: &Value, title: &str) {
    let (jobs, seconds) = (&table["jobs"], table["seconds"].as_f64().unwrap_or_default());
    println!("CPU per job, {title}: {jobs} jobs in {seconds:.1} s");
    println!("  {:<36} {:>10} {:>8}", "process", "ms/job", "share");
    let rows = table["rows"].as_array().into_iter().flatten().chain([&table["machine"]]);
    for row in rows {
        let name = row["process"].as_str().unwrap_or("machine total (/proc/stat)");
        let (per_job, share) = (row["ms_per_job"].as_f64().unwrap_or_default(), row["share"].as_f64().unwrap_or(1.0));
        println!("  {name:<36} {per_job:>10.2} {:>7.1} %", share * 100.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_gives_its_parent_name_and_all_four_cpu_times() {
        let line = "42 (git daemon) S 7 42 42 0 -1 4194560 100 0 0 0 11 22 33 44 20 0 1 0 5 0 0";
        let proc = parse_stat(line).unwrap();
        assert_eq!((proc.ppid, proc.comm.as_str(), proc.ticks), (7, "git daemon", 110));
    }

    #[test]
    fn processes_count_for_their_pid_file_the_engine_or_their_container() {
        let p = |ppid, comm: &str| Proc { ppid, comm: comm.into(), ticks: 0 };
        let procs = HashMap::from([
            (10, p(1, "gitfaas-executor")),
            (11, p(10, "git")),
            (20, p(1, "dockerd")),
            (21, p(20, "containerd")),
            (30, p(1, "containerd-shim")),
            (31, p(30, "python3")),
            (32, p(30, "runc")),
            (40, p(1, "rustc")),
        ]);
        let roots = HashMap::from([(10, "executor-1".to_owned())]);
        let class = |pid| classify(pid, &procs, &roots, 999);
        assert_eq!(class(11), Class::Row("executor-1".into()));
        assert_eq!(class(21), Class::Row("containerd".into()));
        assert_eq!(class(30), Class::Row("containerd-shim (+ runc)".into()));
        assert_eq!(class(32), Class::Row("containerd-shim (+ runc)".into()));
        assert_eq!(class(31), Class::Container);
        assert_eq!(class(40), Class::Other("rustc".into()));
    }
}
