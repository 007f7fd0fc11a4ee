//! Jobs through the REST API of the running stack: end-to-end times of cold jobs
//! with their queue / run / result-visible split, and the submit rate of concurrent
//! clients (JWT verification, Redis, an acknowledged publish each) against the
//! broker's produce rate at the same concurrency and message size.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use futures::future::join_all;
use gitfaas_common::kafka::reliable_producer_config;
use gitfaas_common::settings::KafkaSettings;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde::Serialize;
use serde_json::{json, Value};

use crate::stats::Summary;

pub struct Api {
    pub base: String,
    pub token: String,
    pub repo: String,
    pub client: reqwest::Client,
}

#[derive(Debug, Serialize)]
pub struct JobFigures {
    /// Client side: POST sent → result body received (long-poll on the result route).
    pub e2e_ms: Summary,
    /// Server side: submitted → started (queue), started → finished (run).
    pub queue_ms: Summary,
    pub run_ms: Summary,
    /// finished (the executor's clock) → the result in the client's hands.
    pub result_visible_ms: Summary,
}

impl Api {
    pub fn body(&self, n: usize) -> Value {
        json!({"repo": self.repo, "ref": "main", "input": {"name": format!("bench-{n}"), "text": "to be or not to be"}})
    }

    async fn submit(&self, n: usize) -> anyhow::Result<String> {
        let response = self
            .client
            .post(format!("{}/v1/jobs", self.base))
            .bearer_auth(&self.token)
            .json(&self.body(n))
            .send()
            .await?;
        let status = response.status();
        let body: Value = response.json().await?;
        if status.as_u16() != 202 {
            bail!("submit answered {status}: {body}");
        }
        Ok(body["id"].as_str().context("an id")?.to_owned())
    }

    async fn result(&self, id: &str) -> anyhow::Result<Value> {
        let url = format!("{}/v1/jobs/{id}/result?wait=60", self.base);
        let response = self.client.get(url).bearer_auth(&self.token).send().await?;
        if response.status() != 200 {
            bail!("result of {id} answered {}", response.status());
        }
        Ok(response.json().await?)
    }

    /// `runs` jobs one after another, after one warm-up job (it fills the git cache).
    pub async fn cold_jobs(&self, runs: usize) -> anyhow::Result<JobFigures> {
        let warm_up = self.submit(0).await?;
        self.result(&warm_up).await?;
        let (mut e2e, mut queue, mut run, mut visible) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for n in 1..=runs {
            let started = Instant::now();
            let id = self.submit(n).await?;
            let result = self.result(&id).await?;
            let received = Utc::now();
            e2e.push(started.elapsed().as_secs_f64() * 1e3);
            if result["status"] != "succeeded" {
                bail!("bench job {id} ended {}: {}", result["status"], result["reason"]);
            }
            queue.push(result["timings"]["queue_ms"].as_f64().unwrap_or_default());
            run.push(result["timings"]["run_ms"].as_f64().unwrap_or_default());
            let finished: DateTime<Utc> = serde_json::from_value(result["finished_at"].clone())?;
            visible.push((received - finished).num_microseconds().unwrap_or_default() as f64 / 1e3);
        }
        let summary = |s: &[f64]| Summary::of(s).expect("runs > 0");
        Ok(JobFigures {
            e2e_ms: summary(&e2e),
            queue_ms: summary(&queue),
            run_ms: summary(&run),
            result_visible_ms: summary(&visible),
        })
    }

    /// Submissions per second of `clients` concurrent clients, `total` in all; the
    /// jobs are cancelled afterwards (queued ones end at once and never run).
    pub async fn submit_rate(&self, clients: usize, total: usize) -> anyhow::Result<(f64, usize)> {
        let per_client = total.div_ceil(clients);
        let started = Instant::now();
        let batches = join_all((0..clients).map(|c| async move {
            let mut ids = Vec::new();
            for n in 0..per_client {
                ids.push(self.submit(c * per_client + n).await?);
            }
            anyhow::Ok(ids)
        }))
        .await;
        let seconds = started.elapsed().as_secs_f64();
        let ids: Vec<String> = batches.into_iter().collect::<Result<Vec<_>, _>>()?.into_iter().flatten().collect();
        let size = serde_json::to_vec(&self.body(0))?.len();
        for id in &ids {
            let _ =
                self.client.post(format!("{}/v1/jobs/{id}/cancel", self.base)).bearer_auth(&self.token).send().await;
        }
        Ok((ids.len() as f64 / seconds, size))
    }
}

/// Messages per second that `clients` concurrent senders get acknowledged, each
/// awaiting its acknowledgement before the next, `total` messages of `size` bytes in all.
pub async fn produce_rate(
    kafka: &KafkaSettings,
    topic: &str,
    clients: usize,
    total: usize,
    size: usize,
) -> anyhow::Result<f64> {
    let producer: FutureProducer = reliable_producer_config(kafka).create()?;
    let payload = vec![b'x'; size];
    let per_client = total.div_ceil(clients);
    let started = Instant::now();
    let sent = join_all((0..clients).map(|c| {
        let (producer, payload) = (&producer, &payload);
        async move {
            for n in 0..per_client {
                let key = format!("bench-{c}-{n}");
                producer
                    .send(FutureRecord::to(topic).key(&key).payload(payload), Duration::from_secs(10))
                    .await
                    .map_err(|(error, _)| error)?;
            }
            anyhow::Ok(per_client)
        }
    }))
    .await;
    let count: usize = sent.into_iter().collect::<Result<Vec<_>, _>>()?.into_iter().sum();
    Ok(count as f64 / started.elapsed().as_secs_f64())
}
