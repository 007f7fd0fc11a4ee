//! Warm jobs through the REST API: sequential end-to-end times of a repeated
//! function (a warm sandbox serves it) with the queue / run / result-visible split
//! and the warm hit rate. Each job is submitted with `Prefer: wait=N` (a
//! synchronous answer where the frontend gives one); on a 202 the result is
//! long-polled with `?wait=M` ([`Api::invoke_waiting`], which the burst sweep uses too).

use std::time::Instant;

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::jobs::{Api, JobFigures};
use crate::stats::Summary;

/// One finished job as the client saw it.
pub struct Sample {
    pub e2e_ms: f64,
    pub queue_ms: f64,
    pub run_ms: f64,
    pub visible_ms: f64,
    pub warm: bool,
    /// Its sandbox was a ready one (started before the job asked).
    pub ready: bool,
    /// Answered by the submit itself (200), not by the result route.
    pub synchronous: bool,
    pub executor_id: String,
    /// The job's status, `succeeded` for a job that ran to its end.
    pub status: String,
}

#[derive(Debug, Serialize)]
pub struct WarmFigures {
    #[serde(flatten)]
    pub jobs: JobFigures,
    /// Jobs served by a warm sandbox, of all measured.
    pub warm_hit_rate: f64,
    /// Jobs answered by the submit itself (`Prefer: wait`), of all measured.
    pub synchronous_rate: f64,
}

impl Api {
    /// Submits job `n` and waits for its result (`Prefer: wait=10`, long-polls of
    /// 10 s); an error unless it succeeded.
    async fn invoke(&self, n: usize) -> anyhow::Result<Sample> {
        let sample = self.invoke_waiting(n, 10, 10).await?;
        if sample.status != "succeeded" {
            bail!("bench job ended {}", sample.status);
        }
        Ok(sample)
    }

    /// Submits job `n` with `Prefer: wait={prefer_wait}` and waits for its result:
    /// the submit's own answer when it is a 200, else the result route long-polled
    /// `poll_wait` seconds at a time. A job that ended otherwise than `succeeded`
    /// is a sample too (its `status` says so).
    pub async fn invoke_waiting(&self, n: usize, prefer_wait: u32, poll_wait: u32) -> anyhow::Result<Sample> {
        Ok(self.send_waiting(&self.body(n), prefer_wait, poll_wait).await?.0)
    }

    /// [`Api::invoke_waiting`] of a job of any `body`: its sample and its result.
    pub async fn send_waiting(
        &self,
        body: &Value,
        prefer_wait: u32,
        poll_wait: u32,
    ) -> anyhow::Result<(Sample, Value)> {
        let started = Instant::now();
        let response = self
            .client
            .post(format!("{}/v1/jobs", self.base))
            .bearer_auth(&self.token)
            .header("prefer", format!("wait={prefer_wait}"))
            .json(body)
            .send()
            .await?;
        let status = response.status().as_u16();
        let body: Value = response.json().await?;
        let (result, synchronous) = match status {
            200 => (body, true),
            202 => (self.result_within(body["id"].as_str().context("an id")?, poll_wait).await?, false),
            _ => bail!("submit answered {status}: {body}"),
        };
        let received = Utc::now();
        let e2e_ms = started.elapsed().as_secs_f64() * 1e3;
        let finished: DateTime<Utc> = serde_json::from_value(result["finished_at"].clone())?;
        let sample = Sample {
            e2e_ms,
            queue_ms: result["timings"]["queue_ms"].as_f64().unwrap_or_default(),
            run_ms: result["timings"]["run_ms"].as_f64().unwrap_or_default(),
            visible_ms: (received - finished).num_microseconds().unwrap_or_default() as f64 / 1e3,
            warm: result["warm"] == true,
            ready: result["ready"] == true,
            synchronous,
            executor_id: result["executor_id"].as_str().unwrap_or_default().to_owned(),
            status: result["status"].as_str().unwrap_or_default().to_owned(),
        };
        Ok((sample, result))
    }

    /// The result of `id`, long-polled `wait` seconds at a time until it is there
    /// (at most two minutes, or one long poll past them).
    async fn result_within(&self, id: &str, wait: u32) -> anyhow::Result<Value> {
        for _ in 0..(120 / wait.max(1)).max(2) {
            let url = format!("{}/v1/jobs/{id}/result?wait={wait}", self.base);
            let response = self.client.get(url).bearer_auth(&self.token).send().await?;
            match response.status().as_u16() {
                200 => return Ok(response.json().await?),
                // 409: not finished within the wait
                202 | 404 | 408 | 409 => continue,
                other => bail!("result of {id} answered {other}"),
            }
        }
        bail!("no result of {id} within two minutes")
    }

    /// `runs` jobs of one function one after another, after warm-up jobs that start
    /// its sandboxes (one per slot, at most `warm_up`).
    pub async fn warm_jobs(&self, runs: usize, warm_up: usize) -> anyhow::Result<WarmFigures> {
        for n in 0..warm_up {
            self.invoke(n).await?;
        }
        let mut samples = Vec::with_capacity(runs);
        for n in 0..runs {
            samples.push(self.invoke(warm_up + n).await?);
        }
        let rate = |f: fn(&Sample) -> bool| samples.iter().filter(|s| f(s)).count() as f64 / samples.len() as f64;
        let summary =
            |f: fn(&Sample) -> f64| Summary::of(&samples.iter().map(f).collect::<Vec<_>>()).expect("runs > 0");
        Ok(WarmFigures {
            jobs: JobFigures {
                e2e_ms: summary(|s| s.e2e_ms),
                queue_ms: summary(|s| s.queue_ms),
                run_ms: summary(|s| s.run_ms),
                result_visible_ms: summary(|s| s.visible_ms),
            },
            warm_hit_rate: rate(|s| s.warm),
            synchronous_rate: rate(|s| s.synchronous),
        })
    }
}
