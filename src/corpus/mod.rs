//! Reading corpus files: finding inputs, decompressing them, and turning them into documents.
//!
//! Formats, chosen by file name:
//! - `.txt`: the whole file is one document; metadata `{"source": path}`.
//! - `.jsonl`: one JSON object per line; the text field (default `text`) is the document, every other
//!   field is kept as metadata, plus `source` and `line`.
//! - either with `.gz` or `.zst` appended.
//!
//! Directories are walked recursively in sorted order (builds are reproducible); files of other
//! types inside them are ignored and counted. A file named explicitly must have a known type.
//! Nothing here aborts a build on bad data: an unreadable file, invalid UTF-8, a bad JSON line or a
//! missing text field becomes a [`Skipped`] record with the reason, and reading goes on.

pub mod fold;
pub mod normalize;

use anyhow::{bail, Context, Result};
use serde_json::{Map, Value};
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// How a file's documents are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    Txt,
    Jsonl,
}

/// How a file is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// One input file, found and classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputFile {
    pub path: PathBuf,
    pub layout: Layout,
    pub compression: Compression,
    /// Size on disk (compressed size for compressed files).
    pub bytes: u64,
}

/// A document read from the corpus: raw text (not yet normalized) and its metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub text: String,
    pub meta: Map<String, Value>,
}

/// A document that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub source: String,
    pub line: Option<u64>,
    pub reason: String,
}

/// What reading yields, in input order.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Doc(Document),
    Skipped(Skipped),
}

/// Classifies a file by name; `None` for types memaudit does not read.
pub fn classify(path: &Path) -> Option<(Layout, Compression)> {
    let name = path.file_name()?.to_str()?.to_ascii_lowercase();
    let (stem, compression) = if let Some(s) = name.strip_suffix(".gz") {
        (s, Compression::Gzip)
    } else if let Some(s) = name.strip_suffix(".zst") {
        (s, Compression::Zstd)
    } else {
        (name.as_str(), Compression::None)
    };
    if stem.ends_with(".txt") {
        Some((Layout::Txt, compression))
    } else if stem.ends_with(".jsonl") {
        Some((Layout::Jsonl, compression))
    } else {
        None
    }
}

/// What [`discover`] found.
#[derive(Debug, Default)]
pub struct Discovered {
    pub files: Vec<InputFile>,
    /// Files inside directories whose type memaudit does not read.
    pub ignored: u64,
}

/// Expands the command-line inputs into input files. Fails on a missing path or on an explicitly
/// named file of an unknown type (a typo should not silently build an empty index).
pub fn discover(inputs: &[PathBuf]) -> Result<Discovered> {
    let mut out = Discovered::default();
    for input in inputs {
        let meta = std::fs::metadata(input)
            .with_context(|| format!("input {}: cannot read it", input.display()))?;
        if meta.is_dir() {
            walk(input, &mut out)?;
        } else {
            let Some((layout, compression)) = classify(input) else {
                bail!(
                    "input {}: unknown file type; memaudit reads .txt and .jsonl files, optionally \
                     compressed as .gz or .zst",
                    input.display()
                );
            };
            out.files.push(InputFile {
                path: input.clone(),
                layout,
                compression,
                bytes: meta.len(),
            });
        }
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Discovered) -> Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("input directory {}: cannot list it", dir.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .collect();
    entries.sort();
    for path in entries {
        let Ok(meta) = std::fs::metadata(&path) else {
            out.ignored += 1;
            continue;
        };
        if meta.is_dir() {
            walk(&path, out)?;
        } else if let Some((layout, compression)) = classify(&path) {
            out.files.push(InputFile {
                path,
                layout,
                compression,
                bytes: meta.len(),
            });
        } else {
            out.ignored += 1;
        }
    }
    Ok(())
}

/// Counts bytes read from the underlying file, for progress reporting.
struct Counting<R> {
    inner: R,
    counter: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.counter.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

fn open(file: &InputFile, counter: Arc<AtomicU64>) -> std::io::Result<Box<dyn BufRead>> {
    let raw = Counting {
        inner: File::open(&file.path)?,
        counter,
    };
    Ok(match file.compression {
        Compression::None => Box::new(BufReader::with_capacity(1 << 20, raw)),
        Compression::Gzip => Box::new(BufReader::with_capacity(
            1 << 20,
            flate2::read::MultiGzDecoder::new(BufReader::new(raw)),
        )),
        Compression::Zstd => Box::new(BufReader::with_capacity(
            1 << 20,
            zstd::stream::read::Decoder::new(raw)?,
        )),
    })
}

/// Reads every document of `file`, calling `emit` for each document or skip, in order.
/// `counter` advances by the bytes read from disk.
pub fn read_file(
    file: &InputFile,
    text_field: &str,
    counter: Arc<AtomicU64>,
    emit: &mut dyn FnMut(Item),
) {
    let source = file.path.display().to_string();
    let skip = |line: Option<u64>, reason: String| {
        Item::Skipped(Skipped {
            source: source.clone(),
            line,
            reason,
        })
    };
    let mut reader = match open(file, counter) {
        Ok(r) => r,
        Err(e) => return emit(skip(None, format!("cannot open: {e}"))),
    };
    match file.layout {
        Layout::Txt => {
            let mut bytes = Vec::with_capacity(file.bytes as usize);
            if let Err(e) = reader.read_to_end(&mut bytes) {
                return emit(skip(None, format!("read error: {e}")));
            }
            match String::from_utf8(bytes) {
                Ok(text) => {
                    let mut meta = Map::new();
                    meta.insert("source".into(), Value::String(source.clone()));
                    emit(Item::Doc(Document { text, meta }));
                }
                Err(e) => emit(skip(
                    None,
                    format!("invalid UTF-8 at byte {}", e.utf8_error().valid_up_to()),
                )),
            }
        }
        Layout::Jsonl => {
            let mut buf = Vec::new();
            let mut line_no = 0u64;
            loop {
                buf.clear();
                match reader.read_until(b'\n', &mut buf) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) => {
                        emit(skip(
                            Some(line_no + 1),
                            format!("read error, rest of file skipped: {e}"),
                        ));
                        break;
                    }
                }
                line_no += 1;
                let trimmed = buf.trim_ascii();
                if trimmed.is_empty() {
                    continue;
                }
                match parse_jsonl_line(trimmed, text_field, &source, line_no) {
                    Ok(doc) => emit(Item::Doc(doc)),
                    Err(reason) => emit(skip(Some(line_no), reason)),
                }
            }
        }
    }
}

/// Parses one JSONL line into a document; the error is the reason it was skipped.
fn parse_jsonl_line(
    line: &[u8],
    text_field: &str,
    source: &str,
    line_no: u64,
) -> std::result::Result<Document, String> {
    let line = std::str::from_utf8(line)
        .map_err(|e| format!("invalid UTF-8 at byte {}", e.valid_up_to()))?;
    let value: Value = serde_json::from_str(line).map_err(|e| format!("invalid JSON: {e}"))?;
    let Value::Object(mut meta) = value else {
        return Err("not a JSON object".into());
    };
    let text = match meta.remove(text_field) {
        Some(Value::String(s)) => s,
        Some(_) => return Err(format!("field {text_field:?} is not a string")),
        None => return Err(format!("no {text_field:?} field")),
    };
    meta.insert("source".into(), Value::String(source.to_string()));
    meta.insert("line".into(), Value::from(line_no));
    Ok(Document { text, meta })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn collect(file: &InputFile) -> Vec<Item> {
        let mut items = Vec::new();
        read_file(file, "text", Arc::new(AtomicU64::new(0)), &mut |i| {
            items.push(i)
        });
        items
    }

    #[test]
    fn classifies_by_name() {
        assert_eq!(
            classify(Path::new("a/b.jsonl.zst")),
            Some((Layout::Jsonl, Compression::Zstd))
        );
        assert_eq!(
            classify(Path::new("B.TXT.GZ")),
            Some((Layout::Txt, Compression::Gzip))
        );
        assert_eq!(classify(Path::new("x.json")), None);
    }

    #[test]
    fn jsonl_keeps_metadata_and_skips_bad_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.jsonl.gz");
        let mut gz = flate2::write::GzEncoder::new(File::create(&p).unwrap(), Default::default());
        gz.write_all(b"{\"text\":\"hello\",\"url\":\"u1\"}\nnot json\n{\"txt\":\"x\"}\n\n[1]\n{\"text\":5}\n")
            .unwrap();
        gz.write_all(b"{\"text\":\"\xff\"}\n{\"text\":\"bye\"}")
            .unwrap();
        gz.finish().unwrap();
        let found = discover(&[dir.path().to_path_buf()]).unwrap();
        assert_eq!(found.files.len(), 1);
        let items = collect(&found.files[0]);
        let docs: Vec<_> = items
            .iter()
            .filter_map(|i| match i {
                Item::Doc(d) => Some(d),
                _ => None,
            })
            .collect();
        let skipped: Vec<_> = items
            .iter()
            .filter_map(|i| match i {
                Item::Skipped(s) => Some(s),
                _ => None,
            })
            .collect();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].text, "hello");
        assert_eq!(docs[0].meta["url"], "u1");
        assert_eq!(docs[0].meta["line"], 1);
        assert_eq!(docs[1].meta["line"], 8);
        let reasons: Vec<_> = skipped
            .iter()
            .map(|s| (s.line.unwrap(), s.reason.as_str()))
            .collect();
        assert_eq!(reasons.len(), 5, "{reasons:?}");
        assert!(reasons[0].1.starts_with("invalid JSON"));
        assert!(reasons[1].1.contains("no \"text\" field"));
        assert!(reasons[2].1.contains("not a JSON object"));
        assert!(reasons[3].1.contains("not a string"));
        assert!(reasons[4].1.contains("invalid UTF-8"));
    }

    #[test]
    fn txt_invalid_utf8_and_missing_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.txt");
        std::fs::write(&p, b"ok \xc3\x28").unwrap();
        std::fs::write(dir.path().join("ignored.bin"), b"x").unwrap();
        let found = discover(&[dir.path().to_path_buf()]).unwrap();
        assert_eq!(found.ignored, 1);
        let items = collect(&found.files[0]);
        assert!(
            matches!(&items[0], Item::Skipped(s) if s.reason.contains("invalid UTF-8 at byte 3"))
        );
        let err = discover(&[dir.path().join("nope.txt")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("nope.txt"), "{err}");
        let err = discover(&[dir.path().join("ignored.bin")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown file type"), "{err}");
    }
}
