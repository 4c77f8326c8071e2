//! The Kafka sink: a producer that writes verdicts, alerts and dead letters, encoding each typed
//! record at this edge (topic, key, payload, headers), and reports success only on the broker's
//! acknowledgement. Produce errors are classified: those the broker will answer the same way
//! however often it is asked (too large, not authorized, unknown topic, invalid record) are
//! [`SendError::Refused`] and the pipeline writes a reduced record or a dead letter instead;
//! every other error is retried until the shutdown deadline.

use super::super::output::{Output, PerStream};
use super::super::pipeline::{SendError, Sink};
use super::super::shutdown::Shutdown;
use super::client_config;
use crate::config::{Config, KafkaClient};
use crate::metrics::Metrics;
use anyhow::{Context, Result};
use futures::future::BoxFuture;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The producer side: one record per `send`, resolved on the broker's acknowledgement.
pub struct KafkaSink {
    producer: FutureProducer,
    topics: PerStream<String>,
    max_record_bytes: usize,
    metrics: Arc<Metrics>,
    shutdown: Shutdown,
}

impl KafkaSink {
    pub fn new(cfg: &Config, metrics: Arc<Metrics>, shutdown: Shutdown) -> Result<KafkaSink> {
        // acks=all and message.timeout.ms=0 (never give up: a broker restart must not lose
        // verdicts; shutdown bounds the wait) are among the forced properties.
        let producer: FutureProducer = client_config(cfg, KafkaClient::Producer)
            .create()
            .context("creating the Kafka producer (check kafka.brokers and kafka.options)")?;
        Ok(KafkaSink {
            producer,
            topics: PerStream {
                verdicts: cfg.topics.verdicts.clone(),
                alerts: cfg.topics.alerts.clone(),
                dead_letters: cfg.topics.dead_letters.clone(),
            },
            max_record_bytes: cfg.limits.max_record_bytes,
            metrics,
            shutdown,
        })
    }

    /// Waits up to `timeout` for every queued record to be acknowledged.
    pub fn flush(&self, timeout: Duration) -> Result<()> {
        self.producer
            .flush(timeout)
            .context("flushing the producer before exit")
    }
}

/// Whether the broker (or librdkafka) will refuse this record however often it is sent.
/// Everything else (a broker down, leaders moving, timeouts, a full queue) is worth retrying.
pub fn refused_for_good(e: &KafkaError) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        e.rdkafka_error_code(),
        Some(
            C::MessageSizeTooLarge
                | C::InvalidMessageSize
                | C::MessageBatchTooLarge
                | C::InvalidRecord
                | C::UnknownTopic
                | C::UnknownTopicOrPartition
                | C::InvalidTopic
                | C::TopicAuthorizationFailed
                | C::ClusterAuthorizationFailed
                | C::PolicyViolation
                | C::UnsupportedForMessageFormat
                | C::UnsupportedCompressionType
        )
    )
}

impl Sink for KafkaSink {
    fn send(&self, r: &Output) -> BoxFuture<'static, Result<(), SendError>> {
        let producer = self.producer.clone();
        let topic = self.topics.get(r.stream()).clone();
        // Encoded here, at the edge: a verdict is its JSON keyed by the message id, a dead letter
        // the input's own key and bytes with the reason and origin in headers.
        let (key, payload, headers) = match r {
            Output::Verdict(v) => (
                Some(v.verdict.id.clone().into_bytes()),
                v.json(),
                v.headers(),
            ),
            Output::DeadLetter(d) => (d.key.clone(), d.payload.clone(), d.headers()),
        };
        let metrics = self.metrics.clone();
        let shutdown = self.shutdown.clone();
        Box::pin(async move {
            let mut backoff = Duration::from_millis(50);
            loop {
                let mut h = OwnedHeaders::new_with_capacity(headers.len());
                for (k, v) in &headers {
                    h = h.insert(Header {
                        key: k,
                        value: Some(v.as_bytes()),
                    });
                }
                let mut rec = FutureRecord::<[u8], [u8]>::to(&topic)
                    .payload(&payload)
                    .headers(h);
                if let Some(k) = &key {
                    rec = rec.key(k.as_slice());
                }
                let sent = tokio::select! {
                    s = producer.send(rec, Duration::from_secs(1)) => s,
                    _ = tokio::time::sleep_until(shutdown.deadline().into()), if shutdown.is_triggered() => {
                        return Err(SendError::GaveUp(format!("producing to {topic}: not acknowledged by the shutdown deadline")));
                    }
                };
                let err = match sent {
                    Ok(_) => return Ok(()),
                    Err((e, _)) => e,
                };
                metrics.produce_errors.inc();
                if refused_for_good(&err) {
                    return Err(SendError::Refused(format!("{topic}: {err}")));
                }
                if shutdown.is_triggered() && Instant::now() >= shutdown.deadline() {
                    return Err(SendError::GaveUp(format!(
                        "producing to {topic} failed at the shutdown deadline: {err}"
                    )));
                }
                tracing::warn!(topic = %topic, error = %err, "produce failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        })
    }

    fn max_record_bytes(&self) -> usize {
        self.max_record_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::refused_for_good;
    use rdkafka::error::{KafkaError, RDKafkaErrorCode as C};

    #[test]
    fn only_answers_that_cannot_change_are_refusals() {
        let produce = KafkaError::MessageProduction;
        for c in [
            C::MessageSizeTooLarge,
            C::TopicAuthorizationFailed,
            C::UnknownTopicOrPartition,
            C::InvalidRecord,
        ] {
            assert!(refused_for_good(&produce(c)), "{c:?}");
        }
        for c in [
            C::QueueFull,
            C::NotEnoughReplicas,
            C::RequestTimedOut,
            C::AllBrokersDown,
            C::NotLeaderForPartition,
            C::InvalidMessage,
        ] {
            assert!(!refused_for_good(&produce(c)), "{c:?}");
        }
    }
}
