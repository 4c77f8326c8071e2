//! The streamed-output state machine ([`memaudit::serve::chunks::Streams`]) driven by any
//! sequence of chunks (three outputs, seqs 0-7, repeats, conflicts, gaps, finals anywhere, texts
//! from the adversarial corpus's runs and arbitrary bytes, payloads of any size) and of idle
//! expiries, drops, revoked partitions, commit notes and index swaps (the whole corpus, and half
//! of it), under small caps. Checked after every step and at the end:
//! - no panic;
//! - the bytes held never pass `chunks.max_held_bytes`, the gauges match what is open, and
//!   everything is given back once every output ended;
//! - an output is ended at most once (until its partition is revoked);
//! - every chunk's envelope comes back exactly once (finished, dead-lettered, with its output's
//!   verdict, or with a revoked output);
//! - an output that ended complete, in order, with nothing left out, has exactly the spans a
//!   whole-text check of its text finds on the index in use when it ended.
#![no_main]

use libfuzzer_sys::fuzz_target;
use memaudit::analyze::{Analyzer, Options};
use memaudit::config::ChunksConfig;
use memaudit::serve::chunks::{Ended, Streams};
use memaudit::serve::message::{ChunkMark, Decoded, Envelope, Origin};
use memaudit::verdict::Severity;
use memaudit_fuzz::Choices;
use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

const MAX_HELD: usize = 1500;

fn analyzer() -> &'static Analyzer {
    static A: OnceLock<Analyzer> = OnceLock::new();
    A.get_or_init(|| {
        memaudit_fuzz::analyzer(Options {
            min_chars: 8,
            ..Options::default()
        })
    })
}

/// Pieces that match the corpus in many ways.
const PIECES: &[&str] = &[
    "*",
    "****",
    "=-",
    "=-=-=-=-",
    "the ",
    "e\u{301}",
    "\u{301}",
    " ",
    " \t\n",
    "\u{a0}",
    "日本語",
    "\u{1100}\u{1161}",
    "aab",
    "We the People of the United States, ",
    "Four score and seven years ago ",
    "in Order to form a more perfect Union",
];

fn text(c: &mut Choices) -> String {
    if c.byte().is_multiple_of(2) {
        return c.text(40);
    }
    let mut s = String::new();
    for _ in 0..1 + c.below(4) {
        let p = PIECES[c.below(PIECES.len())];
        for _ in 0..1 + c.below(8) {
            s.push_str(p);
        }
    }
    s
}

struct State {
    /// Offsets pushed and not yet given back.
    out: HashSet<i64>,
    /// Outputs ended since their partition was last revoked.
    ended: HashSet<String>,
    /// Whether an HTTP-style drop (no envelopes back) happened.
    dropped: bool,
}

impl State {
    fn back(&mut self, envs: impl IntoIterator<Item = Envelope>) {
        for e in envs {
            assert!(
                self.out.remove(&e.origin.offset),
                "offset {} given back twice or never pushed",
                e.origin.offset
            );
        }
    }

    fn ended(&mut self, a: &Analyzer, e: Ended) {
        assert!(
            self.ended.insert(e.id.clone()),
            "output {} ended twice",
            e.id
        );
        let held: Vec<Envelope> = e.held;
        self.back(held);
        if e.info.complete && e.info.left_out.is_empty() && e.info.missing.is_empty() {
            let whole = a.spans(&e.text);
            assert_eq!(e.report.spans, whole.spans, "output text {:?}", e.text);
        }
    }
}

fn check_bounds(s: &Streams, held: &prometheus::IntGauge, open: &prometheus::IntGauge) {
    assert!(
        held.get() >= 0 && held.get() as usize <= MAX_HELD,
        "held {}",
        held.get()
    );
    assert_eq!(open.get() as usize, s.open_count());
}

fuzz_target!(|data: &[u8]| {
    let a = analyzer();
    // Every run starts on the whole corpus (a run before may have swapped it).
    static FULL_ID: OnceLock<String> = OnceLock::new();
    let full = FULL_ID.get_or_init(|| a.index().id().to_string());
    if a.index().id() != full {
        a.replace_index(memaudit_fuzz::open_index());
    }
    let mut c = Choices::new(data);
    let cfg = ChunksConfig {
        idle_timeout_secs: 0.0,
        max_open_outputs: 2,
        max_output_bytes: 400,
        remember_ended: 100,
        max_held_bytes: MAX_HELD,
    };
    let open = prometheus::IntGauge::new("open", "open").unwrap();
    let held = prometheus::IntGauge::new("held", "held").unwrap();
    let s = Streams::new(
        cfg,
        memaudit::config::Limits::default(),
        Severity::Low,
        true,
        open.clone(),
        held.clone(),
    );
    let mut st = State {
        out: HashSet::new(),
        ended: HashSet::new(),
        dropped: false,
    };
    let mut offset = 0i64;
    let mut committed: HashMap<i32, i64> = HashMap::new();
    let mut steps = 0;
    while c.more() && steps < 64 {
        steps += 1;
        match c.byte() % 16 {
            0 => {
                let mut dead = Vec::new();
                for e in s.expire(a, &mut dead) {
                    st.ended(a, e);
                }
                st.back(dead.into_iter().map(|(e, _)| e));
            }
            1 => {
                s.drop_idle();
                st.dropped = true;
            }
            2 => {
                let p = c.below(2) as i32;
                let envs = s.forget_partitions(&[("in".to_string(), p)]);
                st.back(envs);
                st.ended.clear();
            }
            4 => {
                let dir = if c.byte().is_multiple_of(2) {
                    memaudit_fuzz::index_dir()
                } else {
                    memaudit_fuzz::half_index_dir()
                };
                a.replace_index(memaudit_fuzz::open(dir));
            }
            3 => {
                let p = c.below(2) as i32;
                let at = committed.entry(p).or_insert(0);
                *at = (*at).max(c.below(offset.max(1) as usize) as i64);
                let note = s.commit_note(&("in".to_string(), p), *at);
                s.noted(&("in".to_string(), p), &note);
            }
            _ => {
                let id = ["a", "b", "c"][c.below(3)].to_string();
                let seq = c.below(8) as u64;
                let last = c.byte().is_multiple_of(4);
                let partition = c.below(2) as i32;
                let msg = Decoded {
                    id,
                    text: text(&mut c),
                    model: None,
                    chunk: Some(ChunkMark { seq, last }),
                    prompt: None,
                };
                let env = Envelope {
                    origin: Origin {
                        topic: "in".into(),
                        partition,
                        offset,
                    },
                    key: None,
                    payload: vec![b'x'; c.below(200)],
                    received: std::time::Instant::now(),
                };
                st.out.insert(offset);
                offset += 1;
                let pushed = s.push(a, msg, env);
                st.back(pushed.finish_now);
                st.back(pushed.dead.into_iter().map(|(e, _)| e));
                if let Some(e) = pushed.ended {
                    st.ended(a, e);
                }
            }
        }
        check_bounds(&s, &held, &open);
    }
    let mut dead = Vec::new();
    for e in s.end_all(a, "input_end", &mut dead) {
        st.ended(a, e);
    }
    st.back(dead.into_iter().map(|(e, _)| e));
    check_bounds(&s, &held, &open);
    assert_eq!(s.open_count(), 0);
    assert_eq!(held.get(), 0, "bytes still held with no output open");
    if !st.dropped {
        assert!(
            st.out.is_empty(),
            "envelopes never given back: {:?}",
            st.out
        );
    }
});
