//! A Kafka-protocol broker on 127.0.0.1 for the end-to-end tests, with helpers to create topics,
//! produce inputs, read outputs and committed offsets, and run `memaudit serve` as a child
//! process. Two kinds:
//!
//! - [`Broker::start`]: a real broker, tansu with its SQLite storage, as a child process. It
//!   answers a fetch at an offset inside a record batch with that offset, as Kafka does
//!   (`tests/serve_stress.rs` checks it), and keeps its data across a restart. The binary:
//!   `$MEMAUDIT_TANSU`, else `~/.cache/memaudit/tansu/bin/tansu` (where
//!   `scripts/install-tansu.sh` puts it), else `tansu` on the PATH.
//! - [`Broker::start_memory`]: the same with tansu 0.6's memory storage, which answers a fetch
//!   inside a batch with the *next* batch (it skips records): kept to show that the daemon
//!   sees such gaps.
//!
//! Inputs are produced the way real producers do (batched, optionally compressed); test
//! oracles use the offsets the produce acknowledgements return ([`Acks`]), never the broker's
//! `ListOffsets` (tansu's memory engine answers "last batch base + 1").
//! - [`Broker::mock`]: librdkafka's mock cluster, in this process but on real TCP listeners, so
//!   the daemon child connects to it like to any broker. It keeps its data while a broker is
//!   down and can fail chosen requests (fault injection); fast, no install.

#![allow(dead_code)]

pub mod workload;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn tansu_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("MEMAUDIT_TANSU") {
        return PathBuf::from(p);
    }
    let cached = PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
        .join(".cache/memaudit/tansu/bin/tansu");
    if cached.exists() {
        return cached;
    }
    let on_path = Command::new("sh")
        .args(["-c", "command -v tansu"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    on_path.unwrap_or_else(|| {
        panic!(
            "the tansu broker is not installed: run scripts/install-tansu.sh (or set MEMAUDIT_TANSU)"
        )
    })
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running broker.
pub struct Broker {
    pub port: u16,
    child: Option<Child>,
    log: PathBuf,
    /// The storage engine URL; SQLite's path is relative to `dir`.
    storage: String,
    dir: PathBuf,
    mock: Option<MockCluster<'static, rdkafka::producer::DefaultProducerContext>>,
}

impl Broker {
    /// tansu with SQLite storage (in `dir`) on a free port.
    pub fn start(dir: &Path) -> Broker {
        Self::start_with(dir, "sqlite://tansu.db")
    }

    /// tansu with its memory storage, which skips records on a fetch inside a batch.
    pub fn start_memory(dir: &Path) -> Broker {
        Self::start_with(dir, "memory://tansu/")
    }

    fn start_with(dir: &Path, storage: &str) -> Broker {
        let mut b = Broker {
            port: free_port(),
            child: None,
            log: dir.join("tansu.log"),
            storage: storage.to_string(),
            dir: dir.to_path_buf(),
            mock: None,
        };
        b.launch();
        b
    }

    /// A one-broker librdkafka mock cluster (broker id 1).
    pub fn mock() -> Broker {
        let m = MockCluster::new(1).expect("librdkafka mock cluster");
        let port = m
            .bootstrap_servers()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("mock bootstrap port");
        Broker {
            port,
            child: None,
            log: PathBuf::new(),
            storage: String::new(),
            dir: PathBuf::new(),
            mock: Some(m),
        }
    }

    /// The mock cluster (fault injection); panics for tansu.
    pub fn mock_cluster(&self) -> &MockCluster<'static, rdkafka::producer::DefaultProducerContext> {
        self.mock.as_ref().expect("a mock cluster")
    }

    fn launch(&mut self) {
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(tansu_binary())
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
                "--storage-engine",
                &self.storage,
            ])
            .current_dir(&self.dir)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting tansu");
        self.child = Some(child);
        let until = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < until,
                "tansu did not listen on {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn brokers(&self) -> String {
        match &self.mock {
            Some(m) => m.bootstrap_servers(),
            None => format!("127.0.0.1:{}", self.port),
        }
    }

    /// Kills the broker (SQLite storage stays, memory storage goes with it) and starts a new
    /// one on the same port.
    pub fn restart(&mut self, down_for: Duration) {
        self.kill();
        std::thread::sleep(down_for);
        self.launch();
    }

    /// Freezes the broker (SIGSTOP): connections stay open and nothing answers, a hung broker.
    pub fn freeze(&self) {
        self.signal("STOP");
    }

    /// Lets a frozen broker go on (SIGCONT).
    pub fn thaw(&self) {
        self.signal("CONT");
    }

    fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().expect("a tansu child").id();
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &pid.to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig} tansu");
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", self.brokers());
        c
    }

    pub fn create_topics(&self, topics: &[(&str, i32)]) {
        if let Some(m) = &self.mock {
            // The mock cluster has no CreateTopics API.
            for (t, p) in topics {
                m.create_topic(t, *p, 1).expect("mock create_topic");
            }
            return;
        }
        let admin: AdminClient<DefaultClientContext> = self.config().create().unwrap();
        let new: Vec<NewTopic> = topics
            .iter()
            .map(|(t, p)| NewTopic::new(t, *p, TopicReplication::Fixed(1)))
            .collect();
        let rt = tokio::runtime::Runtime::new().unwrap();
        let res = rt
            .block_on(admin.create_topics(&new, &AdminOptions::new()))
            .unwrap();
        for r in res {
            r.unwrap();
        }
    }

    /// Produces `(partition, key, payload)` records the way a real producer does (batched, up
    /// to 20 ms of linger) and waits for every acknowledgement; returns them.
    pub fn produce(&self, topic: &str, records: &[(i32, String, Vec<u8>)]) -> Acks {
        self.produce_compressed(topic, records, "none")
    }

    /// The same with `compression.type` = `codec` (none, gzip, snappy, lz4, zstd).
    pub fn produce_compressed(
        &self,
        topic: &str,
        records: &[(i32, String, Vec<u8>)],
        codec: &str,
    ) -> Acks {
        let p: FutureProducer = self
            .config()
            .set("linger.ms", "20")
            .set("compression.type", codec)
            .set("message.timeout.ms", "60000")
            .create()
            .unwrap();
        let rt = tokio::runtime::Runtime::new().unwrap();
        let acks = rt.block_on(async {
            let futs = records.iter().map(|(part, key, payload)| {
                p.send(
                    FutureRecord::to(topic)
                        .partition(*part)
                        .key(key)
                        .payload(payload),
                    Duration::from_secs(10),
                )
            });
            futures::future::join_all(futs).await
        });
        Acks(
            acks.into_iter()
                .map(|r| {
                    let d = r.map_err(|(e, _)| e).expect("produce");
                    (d.partition, d.offset)
                })
                .collect(),
        )
    }

    /// Reads `topic` from the beginning until `stop(records so far)` or `timeout`.
    pub fn read(
        &self,
        topic: &str,
        timeout: Duration,
        mut stop: impl FnMut(&[Output]) -> bool,
    ) -> Vec<Output> {
        let c: BaseConsumer = self
            .config()
            .set("group.id", format!("reader-{}", free_port()))
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        c.subscribe(&[topic]).unwrap();
        let until = Instant::now() + timeout;
        let mut out = Vec::new();
        while Instant::now() < until && !stop(&out) {
            if let Some(Ok(m)) = c.poll(Duration::from_millis(200)) {
                let headers = m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|x| {
                                (
                                    x.key.to_string(),
                                    String::from_utf8_lossy(x.value.unwrap_or_default())
                                        .into_owned(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                out.push(Output {
                    key: m
                        .key()
                        .map(|k| String::from_utf8_lossy(k).into_owned())
                        .unwrap_or_default(),
                    payload: m.payload().unwrap_or_default().to_vec(),
                    headers,
                });
            }
        }
        out
    }

    /// Waits up to `timeout` until `group` has committed `topic` to the acknowledged ends of
    /// its `partitions`; panics with both when it does not.
    pub fn wait_committed(
        &self,
        group: &str,
        topic: &str,
        acks: &Acks,
        partitions: i32,
        timeout: Duration,
    ) {
        let ends = acks.ends(partitions);
        let until = Instant::now() + timeout;
        loop {
            // A partition that never had a record has nothing committed (-1).
            let c: Vec<i64> = self
                .committed(group, topic, partitions)
                .into_iter()
                .map(|o| o.max(0))
                .collect();
            if c == ends {
                return;
            }
            assert!(
                Instant::now() < until,
                "{group} committed {c:?}; the acknowledged ends are {ends:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The group's committed offsets of `partitions` of `topic` (-1 when none).
    pub fn committed(&self, group: &str, topic: &str, partitions: i32) -> Vec<i64> {
        let c: BaseConsumer = self
            .config()
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition(topic, p);
        }
        let got = c.committed_offsets(tpl, Duration::from_secs(10)).unwrap();
        (0..partitions)
            .map(|p| match got.find_partition(topic, p).map(|e| e.offset()) {
                Some(Offset::Offset(o)) => o,
                _ => -1,
            })
            .collect()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The (partition, offset) the broker acknowledged for each produced record, in order.
#[derive(Debug, Clone, Default)]
pub struct Acks(pub Vec<(i32, i64)>);

impl Acks {
    /// Per partition, the offset after the last acknowledged record (0 when none): where a
    /// group that finished everything has committed.
    pub fn ends(&self, partitions: i32) -> Vec<i64> {
        let mut e = vec![0i64; partitions as usize];
        for &(p, o) in &self.0 {
            e[p as usize] = e[p as usize].max(o + 1);
        }
        e
    }

    pub fn extend(&mut self, more: Acks) {
        self.0.extend(more.0);
    }
}

/// One record read back.
#[derive(Debug, Clone)]
pub struct Output {
    pub key: String,
    pub payload: Vec<u8>,
    pub headers: Vec<(String, String)>,
}

impl Output {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.payload).expect("a JSON record")
    }
    pub fn header(&self, k: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    }
}

/// `memaudit serve` as a child process with a config file in `dir`.
pub struct Daemon {
    pub child: Child,
    pub http: u16,
    pub log: PathBuf,
}

impl Daemon {
    pub fn start(dir: &Path, config: &str, name: &str) -> Daemon {
        Self::start_env(dir, config, name, &[])
    }

    /// The same with more environment variables (`MEMAUDIT_*` overrides, failpoints).
    pub fn start_env(dir: &Path, config: &str, name: &str, env: &[(&str, &str)]) -> Daemon {
        let http = free_port();
        let cfg = dir.join(format!("{name}.toml"));
        std::fs::write(&cfg, config).unwrap();
        let log = dir.join(format!("{name}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_memaudit"))
            .args(["serve", "--config"])
            .arg(&cfg)
            .args(["--http", &format!("127.0.0.1:{http}")])
            .env("MEMAUDIT_LOG", "info,rdkafka=warn")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("starting memaudit serve");
        Daemon { child, http, log }
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig}");
    }

    /// SIGTERM, then the daemon must drain and exit 0 within 30 s.
    pub fn stop(&mut self) {
        self.signal("TERM");
        assert_eq!(
            self.wait(Duration::from_secs(30)),
            Some(0),
            "{}",
            self.log_text()
        );
    }

    /// Waits for exit; the status code (None when killed by a signal).
    pub fn wait(&mut self, timeout: Duration) -> Option<i32> {
        let until = Instant::now() + timeout;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s.code();
            }
            assert!(
                Instant::now() < until,
                "memaudit serve did not exit within {timeout:?}; log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// GET a path of the daemon's HTTP server.
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        memaudit::loopback::get(([127, 0, 0, 1], self.http).into(), path).ok()
    }

    /// Waits until `/readyz` answers 200.
    pub fn wait_ready(&self, timeout: Duration) {
        let until = Instant::now() + timeout;
        loop {
            if let Some((200, _)) = self.get("/readyz") {
                return;
            }
            assert!(
                Instant::now() < until,
                "memaudit serve not ready within {timeout:?}: {:?}\nlog:\n{}",
                self.get("/readyz"),
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
