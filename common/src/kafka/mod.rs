//! Kafka, the only way gitfaas's services talk, in one place:
//! - [`Message`] and [`Topic`]: each message type names its topic, its key and
//!   its envelope version; [`decode`] is the one versioned read;
//! - [`Publisher`]: the one way to publish (idempotent, acknowledged, with the
//!   trace context in its headers);
//! - [`ConsumerBuilder`] per [`Role`] (job worker, replay, broadcast), with each
//!   role's client settings here once; [`assign_all`] and [`CatchUp`] for readers
//!   that assign themselves partitions; [`Inbox`], the one receive loop;
//! - [`Transactor`]: several records published atomically (a Kafka transaction);
//! - [`ensure_topics`]: idempotent topic creation;
//! - [`set_parent_from_headers`]: the W3C trace context a message carries.

mod consumer;
mod message;
mod publisher;
mod topics;
mod trace;
mod transaction;

use rdkafka::config::ClientConfig;

pub use consumer::{assign_all, brokers_out_of_reach, CatchUp, ConsumerBuilder, EndsExpected, Inbox, Role, Start};
pub use message::{decode, Message, Topic};
pub use publisher::{PublishError, Publisher, SEND_QUEUE_TIMEOUT};
pub use topics::ensure_topics;
pub use trace::set_parent_from_headers;
pub use transaction::{Outgoing, Transactor};

use crate::settings::KafkaSettings;

/// Base client configuration: brokers, the settings every gitfaas client shares, and
/// the operator's pass-through map last (it wins over all of them, but for what a
/// role or service sets for itself afterwards, such as its group id).
///
/// - `socket.nagle.disable`: jobs and results are small messages sent one at a time;
///   with Nagle's algorithm a second small write on a connection waits for the ACK of
///   the first, which a peer delays by up to 40 ms.
pub fn client_config(settings: &KafkaSettings) -> ClientConfig {
    with_defaults(settings, &[])
}

/// Brokers, the shared settings and `defaults`, then the pass-through map over them.
fn with_defaults(settings: &KafkaSettings, defaults: &[(&str, &str)]) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", &settings.brokers).set("socket.nagle.disable", "true");
    for (key, value) in defaults {
        config.set(*key, *value);
    }
    for (key, value) in &settings.client {
        config.set(key, value);
    }
    config
}

/// Producer configuration for messages that must not be lost or duplicated by
/// producer retries: idempotence and acknowledgement by all in-sync replicas (these
/// two the pass-through map cannot turn off).
///
/// - `linger.ms=0`: a job or result is sent at once rather than held up to 5 ms (the
///   librdkafka default) for a batch; under a burst, messages that queue while a
///   request is in flight still travel together in the next one.
pub fn reliable_producer_config(settings: &KafkaSettings) -> ClientConfig {
    let mut config = with_defaults(settings, &[("message.timeout.ms", "30000"), ("linger.ms", "0")]);
    config.set("enable.idempotence", "true").set("acks", "all");
    config
}
