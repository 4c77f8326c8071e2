//! Reading the configuration: the TOML file, then `MEMAUDIT_<SECTION>__<KEY>` environment
//! variables, then `--set section.key=value` flags; every error names the key and where its
//! value came from.

use super::{err, Config, ConfigError};
use std::collections::BTreeMap;
use std::path::Path;

/// Prefix of environment overrides; `__` separates the path (`MEMAUDIT_KAFKA__GROUP_ID`).
pub const ENV_PREFIX: &str = "MEMAUDIT_";

/// Where an override came from, for error messages.
#[derive(Debug, Clone)]
struct Override {
    path: Vec<String>,
    raw: String,
    origin: String,
}

impl Config {
    /// Reads `file` (if any), applies the environment (`vars`, normally `std::env::vars()`) and
    /// then the `--set key=value` flags, and validates.
    pub fn load(
        file: Option<&Path>,
        vars: impl IntoIterator<Item = (String, String)>,
        sets: &[String],
    ) -> Result<Config, ConfigError> {
        let mut table = match file {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| err("", format!("cannot read {}: {e}", p.display())))?;
                text.parse::<toml::Table>()
                    .map_err(|e| err("", format!("{} is not valid TOML: {e}", p.display())))?
            }
            None => toml::Table::new(),
        };
        let mut overrides = Vec::new();
        let mut env: Vec<(String, String)> = vars
            .into_iter()
            .filter(|(k, _)| k.starts_with(ENV_PREFIX) && k.contains("__"))
            .collect();
        env.sort();
        for (k, v) in env {
            overrides.push(Override {
                path: env_path(&k[ENV_PREFIX.len()..]),
                raw: v,
                origin: format!("environment variable {k}"),
            });
        }
        for s in sets {
            let (k, v) = s
                .split_once('=')
                .ok_or_else(|| err(s, "a --set flag is `section.key=value`"))?;
            overrides.push(Override {
                path: flag_path(k.trim()),
                raw: v.to_string(),
                origin: format!("--set {k}"),
            });
        }
        let mut origins = BTreeMap::new();
        for o in &overrides {
            apply(&mut table, o)?;
            origins.insert(o.path.join("."), o.origin.clone());
        }
        let config: Config =
            serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
                let key = e.path().to_string();
                let key = if key == "." { String::new() } else { key };
                // serde's message lists the accepted keys for an unknown one: keep it whole.
                let message = e.inner().to_string();
                let origin = origins
                    .iter()
                    .find(|(k, _)| **k == key || k.starts_with(&format!("{key}.")))
                    .map(|(_, o)| o.clone());
                ConfigError {
                    origin,
                    key,
                    message,
                }
            })?;
        config.validate().map_err(|mut e| {
            e.origin = origins.get(&e.key).cloned();
            e
        })?;
        Ok(config)
    }
}

/// `KAFKA__OPTIONS__SASL__MECHANISM` → `["kafka", "options", "sasl.mechanism"]`.
fn env_path(rest: &str) -> Vec<String> {
    let parts: Vec<String> = rest.split("__").map(|p| p.to_ascii_lowercase()).collect();
    join_options(parts)
}

/// `kafka.options.sasl.mechanism` → `["kafka", "options", "sasl.mechanism"]`.
fn flag_path(key: &str) -> Vec<String> {
    join_options(key.split('.').map(str::to_string).collect())
}

/// librdkafka property names contain dots: everything after `kafka.options` is one key.
fn join_options(parts: Vec<String>) -> Vec<String> {
    if parts.len() > 3 && parts[0] == "kafka" && parts[1] == "options" {
        let mut head = parts[..2].to_vec();
        head.push(parts[2..].join("."));
        head
    } else {
        parts
    }
}

fn apply(table: &mut toml::Table, o: &Override) -> Result<(), ConfigError> {
    let key = o.path.join(".");
    let fail = |m: &str| ConfigError {
        key: key.clone(),
        message: m.to_string(),
        origin: Some(o.origin.clone()),
    };
    if o.path.iter().any(|p| p.is_empty()) {
        return Err(fail("is not a key path like section.key"));
    }
    // Strings stay strings under kafka.options; elsewhere the value is read as TOML (numbers,
    // booleans, quoted strings) and falls back to a bare string.
    let value = if o.path.len() == 3 && o.path[0] == "kafka" && o.path[1] == "options" {
        toml::Value::String(o.raw.clone())
    } else {
        match format!("v = {}", o.raw).parse::<toml::Table>() {
            Ok(mut t) => t.remove("v").unwrap_or(toml::Value::String(o.raw.clone())),
            Err(_) => toml::Value::String(o.raw.clone()),
        }
    };
    let mut cur = table;
    for p in &o.path[..o.path.len() - 1] {
        let next = cur
            .entry(p.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        cur = match next {
            toml::Value::Table(t) => t,
            _ => return Err(fail(&format!("`{p}` is a value, not a section"))),
        };
    }
    cur.insert(o.path[o.path.len() - 1].clone(), value);
    Ok(())
}
