//! The cost of judging one degenerate text: `cargo bench --bench bounded [-- --mb N]`.
//!
//! The corpus is every licence in `/usr/share/common-licenses` and the demo corpus: real text
//! with long runs (the MPL-2.0 holds 72-character lines of `*`, the GPL a line of `=`). Each text
//! is `--mb` (1) megabytes of one kind: novel words; `*` over and over; `=-` over and over; one
//! word repeated; one corpus line repeated; one corpus paragraph repeated; a letter with a
//! combining accent repeated; whitespace. Each is checked by `memaudit check` in a process of
//! its own, exact spans alone and with near-verbatim spans (`--near`), under the daemon's default
//! work budget (`--max-seconds 5 --max-spans 20000`), and `/usr/bin/time` gives its CPU and peak
//! resident memory. The table prints CPU against novel text's, and memory above an empty
//! text's (the process at idle: the mapped index and the runtime).

use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs `memaudit check` on `text` and returns (CPU seconds, peak RSS KiB, spans, incomplete).
fn check(bin: &Path, index: &Path, text: &Path, near: bool) -> (f64, u64, usize, String) {
    let out = Command::new("/usr/bin/time")
        .args(["-f", "%U %S %M"])
        .arg(bin)
        .args([
            "check",
            "--json",
            "--max-seconds",
            "5",
            "--max-spans",
            "20000",
        ])
        .args(near.then_some("--near"))
        .arg("--index")
        .arg(index)
        .arg(text)
        .output()
        .expect("runs /usr/bin/time");
    assert!(
        out.status.success(),
        "memaudit check failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    let last = err.lines().last().expect("time's line");
    let f: Vec<f64> = last
        .split_whitespace()
        .map(|x| x.parse().expect("a number"))
        .collect();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    let spans = report["spans"].as_array().map_or(0, Vec::len);
    let incomplete = match &report["incomplete"] {
        serde_json::Value::Null => "-".to_string(),
        i => format!(
            "{} at {}",
            i["reason"].as_str().unwrap_or("?"),
            i["checked_chars"]
        ),
    };
    (f[0] + f[1], f[2] as u64, spans, incomplete)
}

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_string())
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let mb: f64 = arg("--mb", "1").parse().expect("--mb N");
    let bytes = (mb * 1e6) as usize;
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_memaudit"));
    let work = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-bounded");
    std::fs::create_dir_all(&work).unwrap();
    let index = work.join("index");
    if !index.join("manifest.json").exists() {
        // The licences have no extension: copied as .txt files, which the build reads.
        let licences = work.join("licences");
        std::fs::create_dir_all(&licences).unwrap();
        for e in std::fs::read_dir("/usr/share/common-licenses").unwrap() {
            let p = e.unwrap().path();
            if p.is_file() {
                let name = p.file_name().unwrap().to_string_lossy().to_string();
                std::fs::copy(&p, licences.join(format!("{name}.txt"))).unwrap();
            }
        }
        let demo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/demo/corpus");
        let st = Command::new(&bin)
            .args(["index", "build", "--force", "--out"])
            .arg(&index)
            .arg(&licences)
            .arg(&demo)
            .status()
            .unwrap();
        assert!(st.success(), "index build failed");
    }
    let mpl = std::fs::read_to_string("/usr/share/common-licenses/MPL-2.0").unwrap();
    let line = "This program is free software: you can redistribute it and/or modify\n";
    let paragraph: String = mpl.chars().skip(2000).take(600).collect();
    // Novel words: a seeded generator, no corpus text.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut novel = String::new();
    while novel.len() < bytes {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let len = 2 + (x % 8) as usize;
        novel.extend((0..len).map(|k| (b'a' + ((x >> (8 + 5 * k)) % 26) as u8) as char));
        novel.push(' ');
    }
    let fill = |unit: &str| unit.repeat(bytes / unit.len() + 1)[..bytes].to_string();
    let mut kinds: Vec<(&str, String)> = vec![
        ("novel words", novel),
        ("`*` run", fill("*")),
        ("`=-` run", fill("=-")),
        ("one word repeated", fill("the ")),
        ("a corpus line repeated", fill(line)),
        ("a corpus paragraph repeated", fill(&paragraph)),
        ("combining accents", fill("e\u{301}")),
        ("whitespace", fill(" \t\n")),
    ];
    for (_, t) in &mut kinds {
        while !t.is_char_boundary(t.len()) {
            t.pop();
        }
    }
    let empty = work.join("empty.txt");
    std::fs::write(&empty, "").unwrap();
    println!("{mb} MB per text; corpus: /usr/share/common-licenses and data/demo/corpus");
    println!(
        "| text | mode | CPU s | × novel CPU | peak RSS MiB | above idle MiB | spans | incomplete |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---|");
    for near in [false, true] {
        let (_, idle, _, _) = check(&bin, &index, &empty, near);
        let mut novel_cpu = None;
        for (name, text) in &kinds {
            let path = work.join("text.txt");
            std::fs::write(&path, text).unwrap();
            let (cpu, rss, spans, incomplete) = check(&bin, &index, &path, near);
            let base = *novel_cpu.get_or_insert(cpu.max(0.01));
            println!(
                "| {name} | {} | {cpu:.2} | {:.1} | {:.1} | {:.1} | {spans} | {incomplete} |",
                if near { "exact+near" } else { "exact" },
                cpu / base,
                rss as f64 / 1024.0,
                rss.saturating_sub(idle) as f64 / 1024.0,
            );
        }
    }
}
