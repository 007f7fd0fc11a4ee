//! Executor processes on this machine: start one with an id of its own, drain one
//! (SIGTERM: the executor finishes its running jobs, then exits 0), and notice
//! when one has exited.
//!
//! Children are killed if the pool is dropped without [`ExecutorPool::drain_all`],
//! so a crashed scaler (or a failed test) leaves no executors behind.

use std::collections::{BTreeMap, HashSet};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use tokio::process::{Child, Command};
use tokio::time::Instant;

use crate::settings::ScalerSettings;

struct Managed {
    process: Child,
    pid: u32,
    started_at: Instant,
    draining_since: Option<Instant>,
}

/// How a child ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exit {
    pub executor_id: String,
    /// None when killed by a signal.
    pub exit_code: Option<i32>,
    /// Whether it was asked to drain (rather than dying on its own).
    pub drained: bool,
}

pub struct ExecutorPool {
    settings: ScalerSettings,
    children: BTreeMap<String, Managed>,
}

impl ExecutorPool {
    pub fn new(settings: ScalerSettings) -> Self {
        Self { settings, children: BTreeMap::new() }
    }

    /// Starts an executor under the lowest free id; returns the id and pid.
    pub fn start(&mut self) -> anyhow::Result<(String, u32)> {
        let s = &self.settings;
        let id = (1..)
            .map(|n| format!("{}-{n}", s.executor_id_prefix))
            .find(|id| !self.children.contains_key(id))
            .expect("some number is free");
        std::fs::create_dir_all(&s.log_dir).with_context(|| format!("creating {}", s.log_dir.display()))?;
        let log_path = s.log_dir.join(format!("{id}.log"));
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&log_path)?;
        let process = Command::new(&s.executor_bin)
            // executors on one machine cannot share the configured port
            .env("GITFAAS__EXECUTOR__METRICS_LISTEN", "127.0.0.1:0")
            .envs(&s.env)
            .env("GITFAAS__EXECUTOR__ID", &id)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", s.executor_bin.display()))?;
        let pid = process.id().context("a just-started child has a pid")?;
        tracing::info!(executor_id = %id, pid, log = %log_path.display(), "executor started");
        self.children.insert(id.clone(), Managed { process, pid, started_at: Instant::now(), draining_since: None });
        Ok((id, pid))
    }

    pub(crate) fn manages(&self, executor_id: &str) -> bool {
        self.children.contains_key(executor_id)
    }

    /// Children started less than the start-up timeout ago that are not in `live` yet.
    pub(crate) fn num_starting(&self, live: &HashSet<&str>) -> usize {
        let timeout = Duration::from_secs(self.settings.startup_timeout_secs);
        self.children
            .iter()
            .filter(|(id, c)| {
                c.draining_since.is_none() && !live.contains(id.as_str()) && c.started_at.elapsed() < timeout
            })
            .count()
    }

    /// Asks the executor to finish its running jobs and exit; false if it is not ours
    /// or already draining.
    pub async fn drain(&mut self, executor_id: &str) -> anyhow::Result<bool> {
        let Some(child) = self.children.get_mut(executor_id) else { return Ok(false) };
        if child.draining_since.is_some() {
            return Ok(false);
        }
        // the `kill` utility, since this workspace forbids the unsafe a direct kill(2) needs
        let status = Command::new("kill").args(["-TERM", &child.pid.to_string()]).status().await?;
        anyhow::ensure!(status.success(), "kill -TERM {} failed: {status}", child.pid);
        child.draining_since = Some(Instant::now());
        tracing::info!(%executor_id, pid = child.pid, "executor draining");
        Ok(true)
    }

    /// Children that exited since the last call; kills those draining for too long.
    pub fn reap(&mut self) -> Vec<Exit> {
        let timeout = Duration::from_secs(self.settings.drain_timeout_secs);
        let mut exits = Vec::new();
        for (id, child) in &mut self.children {
            match child.process.try_wait() {
                Ok(Some(status)) => {
                    exits.push(Exit {
                        executor_id: id.clone(),
                        exit_code: status.code(),
                        drained: child.draining_since.is_some(),
                    });
                }
                Ok(None) if child.draining_since.is_some_and(|since| since.elapsed() > timeout) => {
                    tracing::warn!(executor_id = %id, "drain took too long; killing the executor");
                    let _ = child.process.start_kill();
                }
                Ok(None) => {}
                Err(error) => tracing::warn!(executor_id = %id, %error, "could not check the executor process"),
            }
        }
        for exit in &exits {
            self.children.remove(&exit.executor_id);
            tracing::info!(executor_id = %exit.executor_id, exit_code = ?exit.exit_code, drained = exit.drained, "executor exited");
        }
        exits
    }

    /// Drains every child and waits for all of them (up to the drain timeout each).
    pub async fn drain_all(&mut self) -> Vec<Exit> {
        let ids: Vec<String> = self.children.keys().cloned().collect();
        for id in &ids {
            if let Err(error) = self.drain(id).await {
                tracing::warn!(executor_id = %id, %error, "could not drain the executor; killing it");
                if let Some(child) = self.children.get_mut(id) {
                    let _ = child.process.start_kill();
                }
            }
        }
        let mut exits = Vec::new();
        while !self.children.is_empty() {
            exits.extend(self.reap());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        exits
    }

    pub(crate) fn len(&self) -> usize {
        self.children.len()
    }
}
