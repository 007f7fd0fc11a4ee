//! Shared vocabulary of the gitfaas services.
//!
//! Every service (frontend, executor, observer, scaler) depends on this crate and on no
//! other service. It holds:
//! - [`schema`]: the versioned JSON messages that travel on the Kafka topics
//!   (jobs, job events/results), with [`ids::JobId`] as the time-ordered key;
//! - [`settings`]: typed, layered configuration (`config/*.yaml` + `GITFAAS__*` env);
//! - [`limits`]: the depth and size limits every schema boundary shares;
//! - [`observer`]: the observer topic's messages (heartbeats, parameters, reports);
//! - [`control`]: the control topic's messages to every executor (cancel requests);
//! - [`logs`]: the logs topic's chunks of a running job's output, and their bounds;
//! - [`state`]: named functions' state: the state topic's commits and their view;
//! - [`unreadable`]: the job a message that does not decode was about, to end it;
//! - [`kafka`]: typed topics and messages, the one publisher, consumers per role,
//!   the one receive loop, topic creation and trace-context headers;
//! - [`tasks`]: every background task of a service, owned and awaited at shutdown;
//! - [`policy`]: which repository URLs, data links and addresses a job may use;
//! - [`sealed`]: credentials sealed to the executors' X25519 public key;
//! - [`telemetry`]: tracing set-up with optional OpenTelemetry OTLP export;
//! - [`metrics`]: the Prometheus registry, buckets and Kafka consumer lag every
//!   service shares; [`ops`]: the `/metrics` and `/health` listener of the services
//!   without an HTTP API.

pub mod control;
mod ids;
pub mod kafka;
pub mod limits;
pub mod logs;
pub mod metrics;
pub mod observer;
pub mod ops;
pub mod policy;
pub mod schema;
pub mod sealed;
pub mod settings;
pub mod shutdown;
pub mod state;
pub mod tasks;
pub mod telemetry;
pub mod unreadable;

pub use ids::{InvalidJobId, JobId};
pub use schema::{Job, JobEvent, JobResult, JobSpec, JobStarted, JobStatus, Owner, Timings};
