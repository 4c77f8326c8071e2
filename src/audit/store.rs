//! What an audit has scored so far, on disk in its report directory, so that a killed audit
//! resumes without redoing finished rows.
//!
//! - `audit.json`: the parameters that decide the rows and their scores (models, index, seed,
//!   sizes, switches). A resumed audit must have the same, or it is refused.
//! - `rows.jsonl`: one line per scored row and model ([`RowRecord`]), written and flushed as each
//!   batch finishes. A line cut by a kill is dropped on resume.
//! - `hidden-m{model}.f16`: for the rows of the base set, the final hidden states at positions
//!   0..C+K−2 as little-endian f16, one fixed-size record per row, in the order of that model's
//!   base-set lines in `rows.jsonl`. A record is written before its line, so on resume the file is
//!   cut back to the lines that exist.

use super::rows::Origin;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

/// One scored row of one model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RowRecord {
    /// The row set (`base`, or `c{C}` for another context size).
    pub set: String,
    /// The row's index in its set.
    pub row: usize,
    /// The model's index in the audit's model list.
    pub model: usize,
    /// Where the row comes from.
    pub origin: Origin,
    /// Context tokens `C`.
    pub context: usize,
    /// The row's tokens: `C` of context, then the true continuation (as long as decoded).
    pub tokens: Vec<u32>,
    /// The greedy continuation.
    pub generated: Vec<u32>,
    /// Match bitmap, `1` where the generated token equals the true one.
    pub matches: String,
    /// Entropy H(p), nats, for p = `entropy_from`..C+K−1.
    pub entropy: Vec<f32>,
    /// The first position with an entropy: 1 (the base set: context and continuation), or C
    /// (other sets: the continuation only).
    #[serde(default = "one")]
    pub entropy_from: usize,
}

/// The report directory's scoring state.
pub struct Store {
    dir: PathBuf,
    rows: File,
    hidden: HashMap<usize, (File, usize)>,
    /// Records already on disk, in file order.
    pub done: Vec<RowRecord>,
}

impl Store {
    /// Opens (or starts) the store in `dir` for an audit with `params`. An existing store with
    /// other parameters is refused unless `force`, which starts over.
    pub fn open(dir: &Path, params: &serde_json::Value, force: bool) -> Result<Store> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("{}: cannot create the report directory", dir.display()))?;
        let params_path = dir.join("audit.json");
        let rows_path = dir.join("rows.jsonl");
        let mut done = Vec::new();
        match std::fs::read(&params_path) {
            Ok(old) if !force => {
                let old: serde_json::Value = serde_json::from_slice(&old)
                    .with_context(|| format!("{}: not JSON", params_path.display()))?;
                if &old != params {
                    bail!(
                        "{} holds an audit with other parameters ({}): use another --out, or \
                         --force to start over",
                        dir.display(),
                        differences(&old, params).join(", ")
                    );
                }
                done = read_records(&rows_path)?;
            }
            _ => {
                for f in std::fs::read_dir(dir)?.flatten() {
                    let name = f.file_name().to_string_lossy().to_string();
                    if name == "rows.jsonl" || name.starts_with("hidden-m") {
                        std::fs::remove_file(f.path())?;
                    }
                }
                std::fs::write(&params_path, serde_json::to_vec_pretty(params)?)?;
            }
        }
        // Rewrite rows.jsonl with the complete lines only (drops a line cut by a kill).
        let mut text = String::new();
        for r in &done {
            text.push_str(&serde_json::to_string(r)?);
            text.push('\n');
        }
        std::fs::write(&rows_path, text)?;
        let rows = OpenOptions::new().append(true).open(&rows_path)?;
        let store = Store {
            dir: dir.to_path_buf(),
            rows,
            hidden: HashMap::new(),
            done,
        };
        Ok(store)
    }

    /// Opens model `model`'s hidden-state file for appending records of `floats` values, cut
    /// back to the base-set rows `rows.jsonl` holds for it (a record written just before a kill
    /// has no line and goes).
    pub fn prepare_hidden(&mut self, model: usize, floats: usize) -> Result<()> {
        let rows = self
            .done
            .iter()
            .filter(|r| r.set == "base" && r.model == model)
            .count();
        let want = (rows * floats * 2) as u64;
        let path = hidden_path(&self.dir, model);
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        if file.metadata()?.len() < want {
            bail!(
                "{}: holds fewer hidden states than rows.jsonl has rows for model {model}: use --force to start over",
                path.display()
            );
        }
        file.set_len(want)?;
        self.hidden.insert(model, (file, floats));
        Ok(())
    }

    /// Appends one model's hidden-state record for a base-set row (before its line).
    pub fn append_hidden(&mut self, model: usize, hidden: &[f32]) -> Result<()> {
        let (file, floats) = self
            .hidden
            .get_mut(&model)
            .context("hidden states appended before prepare_hidden")?;
        if hidden.len() != *floats {
            bail!(
                "hidden-state record of {} values, expected {floats}",
                hidden.len()
            );
        }
        let bytes: Vec<u8> = hidden
            .iter()
            .flat_map(|&x| half::f16::from_f32(x).to_le_bytes())
            .collect();
        file.write_all(&bytes)?;
        Ok(())
    }

    /// Appends records (after their hidden states) and flushes them to disk.
    pub fn append(&mut self, records: Vec<RowRecord>) -> Result<()> {
        for f in self.hidden.values_mut() {
            f.0.sync_data()?;
        }
        let mut text = String::new();
        for r in &records {
            text.push_str(&serde_json::to_string(r)?);
            text.push('\n');
        }
        self.rows.write_all(text.as_bytes())?;
        self.rows.sync_data()?;
        self.done.extend(records);
        Ok(())
    }

    /// Every base-set hidden-state record of `model`, as f32, `floats` per row.
    pub fn read_hidden(&self, model: usize, floats: usize) -> Result<Vec<Vec<f32>>> {
        let path = hidden_path(&self.dir, model);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).with_context(|| path.display().to_string()),
        };
        Ok(bytes
            .chunks_exact(floats * 2)
            .map(|rec| {
                rec.chunks_exact(2)
                    .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                    .collect()
            })
            .collect())
    }
}

fn one() -> usize {
    1
}

fn hidden_path(dir: &Path, model: usize) -> PathBuf {
    dir.join(format!("hidden-m{model}.f16"))
}

/// Complete records of `path`, stopping at the first line that does not parse (a cut write).
fn read_records(path: &Path) -> Result<Vec<RowRecord>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| path.display().to_string()),
    };
    let mut out = Vec::new();
    for line in BufReader::new(file).lines() {
        let Ok(line) = line else { break };
        match serde_json::from_str::<RowRecord>(&line) {
            Ok(r) => out.push(r),
            Err(_) => break,
        }
    }
    Ok(out)
}

/// Top-level keys whose values differ, with both values.
fn differences(old: &serde_json::Value, new: &serde_json::Value) -> Vec<String> {
    let keys: std::collections::BTreeSet<&String> = old
        .as_object()
        .into_iter()
        .chain(new.as_object())
        .flat_map(|o| o.keys())
        .collect();
    keys.into_iter()
        .filter(|k| old.get(k.as_str()) != new.get(k.as_str()))
        .map(|k| {
            format!(
                "{k}: {} before, {} now",
                old.get(k.as_str()).unwrap_or(&serde_json::Value::Null),
                new.get(k.as_str()).unwrap_or(&serde_json::Value::Null)
            )
        })
        .collect()
}
