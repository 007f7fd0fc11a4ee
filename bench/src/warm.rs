//! Warm jobs through the REST API: sequential end-to-end times of a repeated
//! function (a warm sandbox serves it) with the queue / run / result-visible split,
//! a burst of concurrent jobs (throughput), and the warm hit rate of each. Each
//! job is submitted with `Prefer: wait=10` (a synchronous answer where the frontend
//! gives one); on a 202 the result is long-polled with `?wait=10`.

use std::time::Instant;

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use futures::future::join_all;
use serde::Serialize;
use serde_json::Value;

use crate::jobs::{Api, JobFigures};
use crate::stats::Summary;

/// One finished job as the client saw it.
struct Sample {
    e2e_ms: f64,
    queue_ms: f64,
    run_ms: f64,
    visible_ms: f64,
    warm: bool,
    /// Answered by the submit itself (200), not by the result route.
    synchronous: bool,
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

#[derive(Debug, Serialize)]
pub struct BurstFigures {
    pub jobs: usize,
    pub clients: usize,
    pub seconds: f64,
    pub jobs_per_s: f64,
    pub warm_hit_rate: f64,
    pub e2e_ms: Summary,
    pub queue_ms: Summary,
    pub run_ms: Summary,
}

impl Api {
    /// Submits job `n` and waits for its result: the submit's own answer when it
    /// is a 200, else the long-polled result route.
    async fn invoke(&self, n: usize) -> anyhow::Result<Sample> {
        let started = Instant::now();
        let response = self
            .client
            .post(format!("{}/v1/jobs", self.base))
            .bearer_auth(&self.token)
            .header("prefer", "wait=10")
            .json(&self.body(n))
            .send()
            .await?;
        let status = response.status().as_u16();
        let body: Value = response.json().await?;
        let (result, synchronous) = match status {
            200 => (body, true),
            202 => (self.result_within(body["id"].as_str().context("an id")?, 10).await?, false),
            _ => bail!("submit answered {status}: {body}"),
        };
        let received = Utc::now();
        let e2e_ms = started.elapsed().as_secs_f64() * 1e3;
        if result["status"] != "succeeded" {
            bail!("bench job ended {}: {}", result["status"], result["reason"]);
        }
        let finished: DateTime<Utc> = serde_json::from_value(result["finished_at"].clone())?;
        Ok(Sample {
            e2e_ms,
            queue_ms: result["timings"]["queue_ms"].as_f64().unwrap_or_default(),
            run_ms: result["timings"]["run_ms"].as_f64().unwrap_or_default(),
            visible_ms: (received - finished).num_microseconds().unwrap_or_default() as f64 / 1e3,
            warm: result["warm"] == true,
            synchronous,
        })
    }

    /// The result of `id`, long-polled `wait` seconds at a time until it is there.
    async fn result_within(&self, id: &str, wait: u32) -> anyhow::Result<Value> {
        for _ in 0..12 {
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

    /// `total` jobs of one function from `clients` concurrent clients, each waiting
    /// for its job's result before the next: jobs finished per second.
    pub async fn burst(&self, total: usize, clients: usize) -> anyhow::Result<BurstFigures> {
        let per_client = total.div_ceil(clients);
        let started = Instant::now();
        let batches = join_all((0..clients).map(|c| async move {
            let mut samples = Vec::with_capacity(per_client);
            for n in 0..per_client {
                samples.push(self.invoke(1_000_000 + c * per_client + n).await?);
            }
            anyhow::Ok(samples)
        }))
        .await;
        let seconds = started.elapsed().as_secs_f64();
        let samples: Vec<Sample> = batches.into_iter().collect::<Result<Vec<_>, _>>()?.into_iter().flatten().collect();
        let summary =
            |f: fn(&Sample) -> f64| Summary::of(&samples.iter().map(f).collect::<Vec<_>>()).expect("jobs > 0");
        Ok(BurstFigures {
            jobs: samples.len(),
            clients,
            seconds,
            jobs_per_s: samples.len() as f64 / seconds,
            warm_hit_rate: samples.iter().filter(|s| s.warm).count() as f64 / samples.len() as f64,
            e2e_ms: summary(|s| s.e2e_ms),
            queue_ms: summary(|s| s.queue_ms),
            run_ms: summary(|s| s.run_ms),
        })
    }
}
