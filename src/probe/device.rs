//! Choosing the device the probe runs on, once, at start-up.
//!
//! `cpu` is the default and always available. `cuda` / `cuda:N` needs a build with
//! `--features cuda` and a visible NVIDIA GPU; asking for it otherwise is an error that says which
//! of the two is missing, never a silent fall-back to the CPU.

use anyhow::{bail, Result};
use candle_core::Device;

/// The device named `spec`: `cpu`, `cuda` (GPU 0) or `cuda:N`.
pub fn select(spec: &str) -> Result<Device> {
    let spec = spec.trim().to_ascii_lowercase();
    if spec == "cpu" {
        return Ok(Device::Cpu);
    }
    let ordinal = match spec.strip_prefix("cuda") {
        Some("") => 0,
        Some(n) => match n.strip_prefix(':').and_then(|n| n.parse::<usize>().ok()) {
            Some(n) => n,
            None => bail!("device {spec:?}: expected cpu, cuda or cuda:N"),
        },
        None => bail!("device {spec:?}: expected cpu, cuda or cuda:N"),
    };
    cuda(ordinal)
}

#[cfg(feature = "cuda")]
fn cuda(ordinal: usize) -> Result<Device> {
    Device::new_cuda(ordinal).map_err(|e| {
        anyhow::anyhow!("CUDA device {ordinal} is not available ({e}); use --device cpu")
    })
}

#[cfg(not(feature = "cuda"))]
fn cuda(_ordinal: usize) -> Result<Device> {
    bail!(
        "this memaudit was built without CUDA support: rebuild with \
         `cargo build --release --features cuda` (needs the CUDA toolkit), or use --device cpu"
    )
}

/// Short name of a device for logs and reports.
pub fn name(device: &Device) -> String {
    match device {
        Device::Cpu => "cpu".into(),
        Device::Cuda(_) => "cuda".into(),
        Device::Metal(_) => "metal".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses_clearly() {
        assert!(select("cpu").unwrap().is_cpu());
        assert!(select(" CPU ").unwrap().is_cpu());
        for bad in ["gpu", "cuda:", "cuda:x", "cudax", ""] {
            let e = select(bad).unwrap_err().to_string();
            assert!(e.contains("expected cpu, cuda or cuda:N"), "{bad}: {e}");
        }
        #[cfg(not(feature = "cuda"))]
        assert!(select("cuda:1")
            .unwrap_err()
            .to_string()
            .contains("built without CUDA"));
    }
}
