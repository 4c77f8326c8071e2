//! Helpers shared by the benchmarks: the default model, and the llama-cpp-python peer's Python.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

/// The default model, fetched (or found in the cache) by `scripts/fetch-model.sh`.
pub fn model_path() -> PathBuf {
    let o = Command::new("scripts/fetch-model.sh")
        .output()
        .expect("run scripts/fetch-model.sh");
    assert!(
        o.status.success(),
        "fetch-model failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    PathBuf::from(String::from_utf8(o.stdout).unwrap().trim())
}

/// Python with llama-cpp-python and numpy, installed into `bench-data/llama-venv` on first use
/// (pip builds llama.cpp from source: minutes).
pub fn peer_python() -> PathBuf {
    let venv = PathBuf::from("bench-data/llama-venv");
    let py = venv.join("bin/python");
    if !py.exists() {
        eprintln!(
            "installing llama-cpp-python and numpy into {} (builds llama.cpp: minutes)",
            venv.display()
        );
        assert!(Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .unwrap()
            .success());
        let ok = Command::new(&py)
            .args(["-m", "pip", "install", "-q", "llama-cpp-python", "numpy"])
            .status()
            .unwrap();
        assert!(ok.success());
    }
    py
}
