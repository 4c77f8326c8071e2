//! Memory facts from `/proc` (Linux; `None` elsewhere): this process's resident set, now and
//! at its peak, and the machine's physical memory. The index build sizes its default memory
//! limit from them and reports its peak; the benchmarks print them.

/// A `Key:  N kB` field of a /proc file, in bytes (Linux only).
fn proc_kib_field(file: &str, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(file).ok()?;
    let line = text
        .lines()
        .find(|l| l.strip_prefix(key).is_some_and(|r| r.starts_with(':')))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Peak resident set size of this process.
pub fn peak_rss_bytes() -> Option<u64> {
    proc_kib_field("/proc/self/status", "VmHWM")
}

/// Current resident set size of this process.
pub fn rss_bytes() -> Option<u64> {
    proc_kib_field("/proc/self/status", "VmRSS")
}

/// Total physical memory, for the default memory limit.
pub fn physical_memory_bytes() -> Option<u64> {
    proc_kib_field("/proc/meminfo", "MemTotal")
}
