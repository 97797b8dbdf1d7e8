//! Reading a config: TOML parsing with errors located at file:line:column and key, relative
//! paths resolved against the config's directory, and the built-in defaults when there is no file.

use std::path::Path;

use super::{Config, ConfigError, ConfigOrigin, default_path};

pub(crate) fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let before = &src[..offset.min(src.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// The dotted key at `offset`: the `[table]` above it plus the key on its line.
pub(crate) fn key_at(src: &str, offset: usize) -> String {
    let offset = offset.min(src.len());
    let line_start = src[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line_end = src[offset..].find('\n').map_or(src.len(), |i| offset + i);
    let line = src[line_start..line_end].trim();
    let mut table = String::new();
    for l in src[..line_start].lines().rev() {
        let l = l.trim();
        if l.starts_with('[') {
            table = l.trim_matches(|c| c == '[' || c == ']').trim().to_string();
            break;
        }
    }
    if line.starts_with('[') {
        return line
            .trim_matches(|c| c == '[' || c == ']')
            .trim()
            .to_string();
    }
    let key = line
        .split('=')
        .next()
        .unwrap_or("")
        .trim()
        .trim_matches('"')
        .to_string();
    match (table.is_empty(), key.is_empty()) {
        (true, _) => key,
        (false, true) => table,
        (false, false) => format!("{table}.{key}"),
    }
}

/// serde names an unsigned key's type ("expected u32"); a person needs its range.
fn counts_in_words(message: &str) -> String {
    let ranges = [
        ("expected u32", u64::from(u32::MAX)),
        ("expected u64", u64::MAX),
        ("expected usize", usize::MAX as u64),
    ];
    for (serde_says, max) in ranges {
        if message.contains(serde_says) {
            return message.replace(
                serde_says,
                &format!("expected a whole number from 0 to {max}"),
            );
        }
    }
    message.to_string()
}

/// Byte offset of `table.key = …` in `src`, for errors found after parsing.
pub(super) fn offset_of(src: &str, table: &str, key: &str) -> Option<usize> {
    let mut in_table = table.is_empty();
    let mut offset = 0;
    for line in src.split_inclusive('\n') {
        let t = line.trim();
        if t.starts_with('[') {
            in_table = t.trim_matches(|c| c == '[' || c == ']').trim() == table;
        } else if in_table && t.split('=').next().is_some_and(|k| k.trim() == key) {
            return Some(offset + (line.len() - line.trim_start().len()));
        }
        offset += line.len();
    }
    None
}

impl Config {
    /// Parses and validates `src`, read from `path` (named in errors).
    pub fn parse(src: &str, path: &Path) -> Result<Self, ConfigError> {
        let cfg: Config = toml::from_str(src).map_err(|e| {
            let offset = e.span().map_or(0, |s| s.start);
            let (line, column) = line_col(src, offset);
            ConfigError::Invalid {
                path: path.to_path_buf(),
                line,
                column,
                key: key_at(src, offset),
                message: counts_in_words(e.message().trim()),
            }
        })?;
        let mut cfg = cfg;
        cfg.resolve_paths(path.parent().unwrap_or(Path::new("")));
        if let Some((table, key, message)) = cfg.signals.unknown_kind_key() {
            let offset = offset_of(src, table, &key).unwrap_or(0);
            let (line, column) = line_col(src, offset);
            return Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                line,
                column,
                key: format!("{table}.{key}"),
                message,
            });
        }
        cfg.validate().map_err(|(table, key, message)| {
            let offset = offset_of(src, table, key).unwrap_or(0);
            let (line, column) = line_col(src, offset);
            ConfigError::Invalid {
                path: path.to_path_buf(),
                line,
                column,
                key: format!("{table}.{key}"),
                message,
            }
        })?;
        cfg.origin = ConfigOrigin {
            path: path.to_path_buf(),
            text: src.to_string(),
        };
        Ok(cfg)
    }

    /// Makes every relative path in the config relative to `base`, the directory of the config
    /// file, as kubectl does for the paths in a kubeconfig: a config then means the same files
    /// whichever directory fleetdeck is started from. Empty values (unset) stay empty.
    fn resolve_paths(&mut self, base: &Path) {
        if base.as_os_str().is_empty() {
            return;
        }
        let resolve = |p: &mut String| {
            if !p.trim().is_empty() && Path::new(p.as_str()).is_relative() {
                *p = base.join(p.as_str()).to_string_lossy().into_owned();
            }
        };
        resolve(&mut self.kubernetes.kubeconfig);
        resolve(&mut self.store.path);
        resolve(&mut self.runbooks.dir);
        resolve(&mut self.runbooks.kill_switch_file);
        resolve(&mut self.tls.ca_file);
        resolve(&mut self.tls.endpoints_ca_file);
        resolve(&mut self.prometheus.bearer_token_file);
        resolve(&mut self.prometheus.ca_file);
        for d in &mut self.gpu.dcgm {
            resolve(&mut d.ca_file);
        }
        resolve(&mut self.cost.opencost_ca_file);
        for f in &mut self.cost.focus {
            resolve(f);
        }
        resolve(&mut self.headless.token_file);
        resolve(&mut self.headless.tls_cert);
        resolve(&mut self.headless.tls_key);
        resolve(&mut self.mlflow.token_file);
        resolve(&mut self.mlflow.ca_file);
        resolve(&mut self.airflow.password_file);
        resolve(&mut self.airflow.token_file);
        resolve(&mut self.airflow.ca_file);
        for sink in self.notify.sinks.values_mut() {
            resolve(&mut sink.url_file);
            resolve(&mut sink.routing_key_file);
        }
    }

    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let src = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&src, path)
    }

    /// The config at `path` if given (it must exist), else the default location if a file is
    /// there, else the built-in defaults.
    pub fn load_or_default(path: Option<&Path>) -> Result<Self, ConfigError> {
        match path {
            Some(p) => Self::load(p),
            None => match default_path() {
                Ok(p) if p.exists() => Self::load(&p),
                _ => Ok(Self::default()),
            },
        }
    }
}
