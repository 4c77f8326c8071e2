//! The `[kafka]` and `[topics]` sections, and the librdkafka properties memaudit sets: the
//! forced ones (one table that both sets them and refuses them in `kafka.options`) and the
//! defaults a user may replace. `serve::kafka` builds its clients from
//! [`Config::kafka_properties`].

use super::{err, Config, ConfigError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Which librdkafka client a property is given to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KafkaClient {
    Consumer,
    Producer,
    Both,
}

impl KafkaClient {
    /// Whether a property for `self` goes to `client`.
    pub fn includes(self, client: KafkaClient) -> bool {
        self == KafkaClient::Both || self == client
    }
}

/// Where a forced property's value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForcedValue {
    /// Always this value.
    Fixed(&'static str),
    /// The value of this `[kafka]` key.
    Key(&'static str),
}

/// A librdkafka property memaudit sets itself, and why. `kafka.options` may not set it:
/// validation refuses it naming `why`, and `serve::kafka` sets exactly these, after the options.
#[derive(Debug, Clone, Copy)]
pub struct ForcedOption {
    pub key: &'static str,
    pub client: KafkaClient,
    pub value: ForcedValue,
    pub why: &'static str,
}

/// Every librdkafka property memaudit forces: the one list that both sets them and refuses them
/// in `kafka.options`.
pub const FORCED_KAFKA_OPTIONS: &[ForcedOption] = &[
    ForcedOption {
        key: "bootstrap.servers",
        client: KafkaClient::Both,
        value: ForcedValue::Key("kafka.brokers"),
        why: "set it with kafka.brokers",
    },
    ForcedOption {
        key: "group.id",
        client: KafkaClient::Consumer,
        value: ForcedValue::Key("kafka.group_id"),
        why: "set it with kafka.group_id",
    },
    ForcedOption {
        key: "statistics.interval.ms",
        client: KafkaClient::Consumer,
        value: ForcedValue::Key("kafka.statistics_interval_ms"),
        why: "set it with kafka.statistics_interval_ms",
    },
    ForcedOption {
        key: "enable.auto.commit",
        client: KafkaClient::Consumer,
        value: ForcedValue::Fixed("false"),
        why: "memaudit commits an offset only after its message's verdict is acknowledged \
              (at-least-once); an automatic commit would lose messages in a crash",
    },
    ForcedOption {
        key: "enable.auto.offset.store",
        client: KafkaClient::Consumer,
        value: ForcedValue::Fixed("false"),
        why: "memaudit stores only finished offsets (at-least-once)",
    },
    ForcedOption {
        key: "acks",
        client: KafkaClient::Producer,
        value: ForcedValue::Fixed("all"),
        why: "must stay `all` for at-least-once: a verdict counts as written only when every \
              in-sync replica has it, and only then is its input offset committed",
    },
    ForcedOption {
        key: "message.timeout.ms",
        client: KafkaClient::Producer,
        value: ForcedValue::Fixed("0"),
        why: "must stay 0 (never give up): librdkafka would otherwise drop verdicts during a \
              broker outage; shutdown.deadline_secs bounds the wait instead",
    },
];

/// A librdkafka property memaudit sets unless `kafka.options` sets it.
#[derive(Debug, Clone, Copy)]
pub struct DefaultOption {
    pub key: &'static str,
    pub client: KafkaClient,
    pub value: &'static str,
    pub why: &'static str,
}

/// memaudit's defaults for librdkafka properties a user may change in `kafka.options`.
pub const DEFAULT_KAFKA_OPTIONS: &[DefaultOption] = &[
    DefaultOption {
        key: "auto.offset.reset",
        client: KafkaClient::Consumer,
        value: "earliest",
        why: "a new group reads the topic from its start; `latest` skips a backlog",
    },
    DefaultOption {
        key: "partition.assignment.strategy",
        client: KafkaClient::Consumer,
        value: "cooperative-sticky",
        why: "a rebalance revokes (and drains) only the partitions that move",
    },
    DefaultOption {
        key: "queued.max.messages.kbytes",
        client: KafkaClient::Consumer,
        value: "16384",
        why: "bounds librdkafka's prefetch queue, the rest of the input memory beside \
              limits.max_in_flight_bytes",
    },
    DefaultOption {
        key: "linger.ms",
        client: KafkaClient::Producer,
        value: "5",
        why: "batches verdicts for up to 5 ms",
    },
];

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// `host:port[,host:port]`.
    pub brokers: String,
    pub group_id: String,
    /// Any librdkafka property (SASL, TLS, timeouts), given to the consumer and the producers.
    pub options: BTreeMap<String, String>,
    /// How often consumer statistics (lag) are collected.
    pub statistics_interval_ms: u64,
    /// How often finished offsets are committed (also on rebalance and shutdown).
    pub commit_interval_ms: u64,
    /// Stop committing a partition at the first offset the broker skipped (an offset gap),
    /// for topics where a gap is never legitimate (no compaction, no transactions, retention
    /// longer than any lag). Off: gaps are counted and logged, and commits go on.
    pub strict_offsets: bool,
}

/// Whether librdkafka property `key` holds a secret (a password, a private key, a client
/// secret, or a configuration string that may embed one): printed as `***` wherever the
/// configuration is shown (`serve --check-config`, logs).
pub fn is_secret(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k.contains("password")
        || k.contains("secret")
        || k == "ssl.key.pem"
        || k == "ssl_key"
        || k.starts_with("sasl.oauthbearer.config")
        || k.ends_with(".jaas.config")
}

impl KafkaConfig {
    /// A copy to show: every secret property's value replaced by `***`.
    pub fn redacted(&self) -> KafkaConfig {
        let mut c = self.clone();
        for (k, v) in &mut c.options {
            if is_secret(k) {
                *v = "***".into();
            }
        }
        c
    }
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: "127.0.0.1:9092".into(),
            group_id: "memaudit".into(),
            options: BTreeMap::new(),
            statistics_interval_ms: 5000,
            commit_interval_ms: 1000,
            strict_offsets: false,
        }
    }
}

impl KafkaConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.brokers.trim().is_empty() {
            return Err(err(
                "kafka.brokers",
                "must name at least one broker (host:port)",
            ));
        }
        if self.group_id.trim().is_empty() {
            return Err(err("kafka.group_id", "must not be empty"));
        }
        for k in self.options.keys() {
            if let Some(f) = FORCED_KAFKA_OPTIONS.iter().find(|f| f.key == k) {
                return Err(err(
                    &format!("kafka.options.{k}"),
                    format!("is set by memaudit and cannot be changed: {}", f.why),
                ));
            }
        }
        if self.statistics_interval_ms == 0 {
            return Err(err("kafka.statistics_interval_ms", "must be > 0"));
        }
        if self.commit_interval_ms == 0 {
            return Err(err("kafka.commit_interval_ms", "must be > 0"));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Topics {
    pub input: String,
    pub verdicts: String,
    pub alerts: String,
    pub dead_letters: String,
}

impl Default for Topics {
    fn default() -> Self {
        Topics {
            input: "llm-outputs".into(),
            verdicts: "memaudit-verdicts".into(),
            alerts: "memaudit-alerts".into(),
            dead_letters: "memaudit-dead-letters".into(),
        }
    }
}

impl Topics {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        for (name, t) in [
            ("topics.input", &self.input),
            ("topics.verdicts", &self.verdicts),
            ("topics.alerts", &self.alerts),
            ("topics.dead_letters", &self.dead_letters),
        ] {
            if t.is_empty()
                || t.len() > 249
                || !t
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
            {
                return Err(err(
                    name,
                    format!("`{t}` is not a valid Kafka topic name (1-249 of [A-Za-z0-9._-])"),
                ));
            }
        }
        if [&self.verdicts, &self.alerts, &self.dead_letters].contains(&&self.input) {
            return Err(err("topics.input", "must differ from the output topics"));
        }
        Ok(())
    }
}

impl Config {
    /// The librdkafka properties for `client`: memaudit's defaults, replaced by `kafka.options`
    /// where it sets them, then the forced ones (which validation keeps out of the options).
    pub fn kafka_properties(&self, client: KafkaClient) -> BTreeMap<String, String> {
        let mut props: BTreeMap<String, String> = DEFAULT_KAFKA_OPTIONS
            .iter()
            .filter(|d| d.client.includes(client))
            .map(|d| (d.key.to_string(), d.value.to_string()))
            .collect();
        props.extend(self.kafka.options.clone());
        for f in FORCED_KAFKA_OPTIONS
            .iter()
            .filter(|f| f.client.includes(client))
        {
            let v = match f.value {
                ForcedValue::Fixed(v) => v.to_string(),
                ForcedValue::Key("kafka.brokers") => self.kafka.brokers.clone(),
                ForcedValue::Key("kafka.group_id") => self.kafka.group_id.clone(),
                ForcedValue::Key("kafka.statistics_interval_ms") => {
                    self.kafka.statistics_interval_ms.to_string()
                }
                ForcedValue::Key(k) => {
                    unreachable!("FORCED_KAFKA_OPTIONS names no [kafka] key {k}")
                }
            };
            props.insert(f.key.to_string(), v);
        }
        props
    }

    /// The producer's `message.max.bytes`: `kafka.options` or librdkafka's default.
    pub fn producer_max_message_bytes(&self) -> usize {
        self.kafka
            .options
            .get("message.max.bytes")
            .and_then(|v| v.parse().ok())
            .unwrap_or(1_000_000)
    }
}
