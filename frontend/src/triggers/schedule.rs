//! The scheduler. Every frontend runs one; only the one whose consumer owns the
//! triggers topic's partition (one partition, one owner in the group) fires.
//! When it dies, the group gives the partition to another after the session
//! timeout, and that one goes on from each schedule's last fired tick — its
//! missed ticks skipped or caught up, as the schedule says.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use gitfaas_common::kafka::Message as _;
use gitfaas_common::kafka::{ConsumerBuilder, Role};
use gitfaas_common::schema::{JobOrigin, MissedTicks, Schedule, TriggerSource, TriggerState, MAX_CATCH_UP_TICKS};
use gitfaas_common::settings::KafkaSettings;
use prometheus_client::metrics::gauge::Gauge;
use rdkafka::consumer::{Consumer, StreamConsumer};
use tokio_util::sync::CancellationToken;

use super::FireError;
use crate::submit::Submitter;

/// How often the active scheduler looks for due ticks.
const EVERY: Duration = Duration::from_millis(250);
/// A `skip` schedule still fires a tick this late (a scheduler's pause, a slow store).
const SKIP_GRACE_SECS: i64 = 5;

/// The longest cron expression (or time zone) taken.
const MAX_CRON_CHARS: usize = 200;

/// A schedule's expression and zone, checked: five fields (minutes first) get
/// second 0; six or seven are taken as they are (seconds first, year last).
pub fn parse_schedule(schedule: &Schedule) -> Result<(cron::Schedule, chrono_tz::Tz), String> {
    if schedule.cron.len() > MAX_CRON_CHARS || schedule.timezone.len() > MAX_CRON_CHARS {
        return Err(format!("the cron expression and the time zone are at most {MAX_CRON_CHARS} characters"));
    }
    let fields = schedule.cron.split_whitespace().count();
    let expression = match fields {
        5 => format!("0 {}", schedule.cron),
        6 | 7 => schedule.cron.clone(),
        _ => return Err(format!("cron has {fields} fields; it takes 5 (minute first) or 6 (second first)")),
    };
    let parsed = cron::Schedule::from_str(&expression).map_err(|e| format!("invalid cron expression: {e}"))?;
    let zone =
        schedule.timezone.parse::<chrono_tz::Tz>().map_err(|_| format!("unknown time zone {:?}", schedule.timezone))?;
    Ok((parsed, zone))
}

/// The input of the job a tick of trigger `name` makes: the schedule's input
/// one level down, next to the trigger and the tick. What a trigger is checked
/// against when it is saved, so a schedule never fires ticks that are all refused.
pub fn tick_input(name: &str, tick: DateTime<Utc>, input: &serde_json::Value) -> serde_json::Value {
    serde_json::json!({"trigger": name, "tick": tick, "input": input})
}

pub struct Scheduler {
    pub consumer: StreamConsumer,
    pub submit: Submitter,
    /// 1 while this frontend is the active scheduler.
    pub leader: Gauge,
}

impl Scheduler {
    pub fn new(kafka: &KafkaSettings, group_id: &str, submit: Submitter, leader: Gauge) -> anyhow::Result<Self> {
        // how soon a dead scheduler's partition goes to another: failing over fast
        let consumer = ConsumerBuilder::new(kafka, Role::Broadcast, &format!("{group_id}-scheduler"))
            .failing_over_fast()
            .create()?;
        consumer.subscribe(&[&kafka.topics.triggers])?;
        Ok(Self { consumer, submit, leader })
    }

    pub async fn run(self, shutdown: CancellationToken) {
        let mut every = tokio::time::interval(EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                // polling keeps this member in the group; the messages themselves are read from the view
                _ = self.consumer.recv() => continue,
                _ = every.tick() => {}
            }
            let leading = self.consumer.assignment().is_ok_and(|a| a.count() > 0);
            if leading != (self.leader.get() == 1) {
                tracing::info!(leading, "scheduler role changed");
                self.leader.set(i64::from(leading));
            }
            if leading {
                if let Err(error) = self.fire_due(Utc::now()).await {
                    tracing::warn!(%error, "firing due ticks failed; retrying");
                }
            }
        }
        self.leader.set(0);
    }

    async fn fire_due(&self, now: DateTime<Utc>) -> Result<(), FireError> {
        for trigger in self.submit.store.all_triggers().await? {
            let TriggerSource::Schedule(schedule) = &trigger.source else { continue };
            if trigger.enabled {
                self.fire_trigger(&trigger, schedule, now).await?;
            }
        }
        Ok(())
    }

    async fn fire_trigger(
        &self,
        trigger: &TriggerState,
        schedule: &Schedule,
        now: DateTime<Utc>,
    ) -> Result<(), FireError> {
        let Ok((cron, zone)) = parse_schedule(schedule) else { return Ok(()) };
        let key = trigger.key();
        let store = &self.submit.store;
        let last = store.last_tick(&key).await?.and_then(DateTime::<Utc>::from_timestamp_millis);
        // ticks after the trigger's last change (creation, resume) and after the last fired one
        let since = last.map_or(trigger.updated_at, |last| last.max(trigger.updated_at));
        let mut due: Vec<DateTime<Utc>> = cron
            .after(&since.with_timezone(&zone))
            .map(|tick| tick.with_timezone(&Utc))
            .take_while(|tick| *tick <= now)
            .take(MAX_CATCH_UP_TICKS + 1)
            .collect();
        if due.is_empty() {
            return Ok(());
        }
        let newest = *due.last().expect("not empty");
        match schedule.missed {
            MissedTicks::Skip => due.retain(|tick| (now - *tick).num_seconds() < SKIP_GRACE_SECS),
            MissedTicks::CatchUp => {
                if due.len() > MAX_CATCH_UP_TICKS {
                    due.drain(..due.len() - MAX_CATCH_UP_TICKS);
                }
            }
        }
        if due.is_empty() {
            tracing::info!(trigger = %trigger.name, skipped_to = %newest, "missed ticks skipped");
            return store.set_last_tick(&key, newest.timestamp_millis()).await.map_err(Into::into);
        }
        for tick in due {
            self.fire(trigger, schedule, tick).await?;
            store.set_last_tick(&key, tick.timestamp_millis()).await?;
        }
        Ok(())
    }

    /// One tick's job (the same job however often the tick is fired).
    async fn fire(&self, trigger: &TriggerState, schedule: &Schedule, tick: DateTime<Utc>) -> Result<(), FireError> {
        let input = tick_input(&trigger.name, tick, &schedule.input);
        let Some(mut spec) = super::invocation(&self.submit, trigger, input).await? else {
            tracing::warn!(trigger = %trigger.name, function = %trigger.function, %tick, "tick skipped: the function is gone");
            return Ok(());
        };
        spec.origin = Some(JobOrigin::Schedule { trigger: trigger.name.clone(), tick });
        let backlog = match super::admit(&self.submit, trigger).await {
            Ok(backlog) => backlog,
            // a tick waits for no one: it is skipped, and the trigger shows how many were
            Err(FireError::Throttled(retry_after)) => {
                self.submit.store.note_throttled(&trigger.key(), true).await?;
                tracing::warn!(trigger = %trigger.name, %tick, retry_after, "tick skipped: the owner's rate limit is reached");
                return Ok(());
            }
            Err(error) => return Err(error),
        };
        match self.submit.queue(spec, None, backlog, trigger.owner.clone()).await {
            Ok((id, ..)) => {
                tracing::info!(trigger = %trigger.name, %tick, job_id = %id, "tick fired");
                Ok(())
            }
            Err(error) if error.is_transient() => Err(error.into()),
            Err(error) => {
                tracing::warn!(trigger = %trigger.name, %tick, %error, "tick's job refused; skipped");
                Ok(())
            }
        }
    }
}
