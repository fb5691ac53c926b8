//! The model registry (`models/registry.toml`): ids, files, sizes, checksums, licences.
//! Native only; the browser gets the same data as JSON from the JS package.

use serde::Deserialize;
use std::path::{Path, PathBuf};

/// One registry entry.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ModelEntry {
    pub id: String,
    pub name: String,
    pub file: String,
    pub bytes: u64,
    pub sha256: String,
    pub licence: String,
    pub architecture: String,
    pub quant: String,
    #[serde(default)]
    pub chat: bool,
}

/// The parsed registry.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Registry {
    pub default: String,
    #[serde(rename = "model")]
    pub models: Vec<ModelEntry>,
}

impl Registry {
    /// Parses registry TOML text.
    pub fn parse(text: &str) -> Result<Registry, String> {
        toml::from_str(text).map_err(|e| format!("models/registry.toml: {e}"))
    }

    /// Reads `<root>/models/registry.toml`.
    pub fn load(root: &Path) -> Result<Registry, String> {
        let p = root.join("models/registry.toml");
        let text = std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        Registry::parse(&text)
    }

    /// The entry for an id.
    pub fn get(&self, id: &str) -> Option<&ModelEntry> {
        self.models.iter().find(|m| m.id == id)
    }

    /// Resolves a model argument: an existing file path, or a registry id whose file is in
    /// `<root>/models/cache/` (the error says to run `make models` when it is not).
    pub fn resolve(&self, root: &Path, arg: &str) -> Result<PathBuf, String> {
        let direct = PathBuf::from(arg);
        if direct.is_file() {
            return Ok(direct);
        }
        let entry = self.get(arg).ok_or_else(|| {
            let ids: Vec<&str> = self.models.iter().map(|m| m.id.as_str()).collect();
            format!("{arg:?} is neither a file nor a registry id (known: {})", ids.join(", "))
        })?;
        let path = root.join("models/cache").join(&entry.file);
        if path.is_file() {
            Ok(path)
        } else {
            Err(format!("{} is not downloaded: run `python3 models/fetch.py {}` (or `make models`)", entry.id, entry.id))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_committed_registry_parses_and_has_its_default() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let reg = Registry::load(root).unwrap();
        let d = reg.get(&reg.default).expect("default model listed");
        assert_eq!(d.sha256.len(), 64);
        assert!(reg.resolve(root, "no-such-model").unwrap_err().contains("known:"));
    }
}
