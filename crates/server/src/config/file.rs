//! The configuration file: YAML flattened to `section.key` -> text, so that a file value goes
//! through the same parser as the variable that overrides it. A key no setting declares, of any
//! service, is an error naming it: typos are caught at start, and one file serves every service.

use std::collections::HashMap;
use std::path::Path;

use yaml_serde::Value;

use super::ConfigError;

/// The name errors use when no file was found.
pub const FILE_NAME: &str = "config.yaml";

/// The settings a file gave, by their dotted YAML key.
#[derive(Debug)]
pub struct FileSettings {
    name: String,
    values: HashMap<String, String>,
}

impl FileSettings {
    /// No file: every setting comes from the environment or its default.
    pub fn none() -> FileSettings {
        FileSettings { name: FILE_NAME.to_owned(), values: HashMap::new() }
    }

    /// Reads the file at `path`; `known` is every key a file may hold.
    pub fn read(path: &Path, known: &[&str]) -> Result<FileSettings, ConfigError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::new(&name, format!("cannot read: {e}")))?;
        FileSettings::parse(name, &text, known)
    }

    /// Parses `text` as the file called `name`.
    pub fn parse(name: String, text: &str, known: &[&str]) -> Result<FileSettings, ConfigError> {
        let root: Value = yaml_serde::from_str(text).map_err(|e| ConfigError::new(&name, e.to_string()))?;
        let mut file = FileSettings { name, values: HashMap::new() };
        match root {
            Value::Null => Ok(file),
            Value::Mapping(_) => match file.walk("", root, known) {
                Ok(()) => Ok(file),
                Err(message) => Err(ConfigError::new(&file.name, message)),
            },
            _ => Err(ConfigError::new(&file.name, "expected a mapping of settings such as `server:` and `redis:`")),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn get(&self, key: &str) -> Option<String> {
        self.values.get(key).cloned()
    }

    /// Records every value under `path` (empty at the top), checking each key against `known`.
    fn walk(&mut self, path: &str, value: Value, known: &[&str]) -> Result<(), String> {
        match value {
            // `key:` with nothing after it leaves the setting unset, as leaving the key out does.
            Value::Null => {}
            Value::Bool(b) => self.insert(path, b.to_string()),
            Value::Number(n) => self.insert(path, n.to_string()),
            Value::String(s) => self.insert(path, s),
            Value::Sequence(_) => return Err(format!("{path}: expected one value, not a list")),
            Value::Tagged(tagged) => return Err(format!("{path}: YAML tags such as {} are not supported", tagged.tag)),
            Value::Mapping(map) => {
                for (key, value) in map {
                    let Value::String(key) = key else {
                        return Err(format!(
                            "{}: keys must be names",
                            if path.is_empty() { "top level" } else { path }
                        ));
                    };
                    let child = if path.is_empty() { key } else { format!("{path}.{key}") };
                    let is_setting = known.contains(&child.as_str());
                    let section = children(&child, known);
                    if is_setting && matches!(value, Value::Mapping(_)) {
                        return Err(format!("{child}: expected one value, not a mapping"));
                    }
                    if !is_setting && section.is_empty() {
                        let expected = children(path, known).join(", ");
                        return Err(format!("{child}: unknown key, expected one of {expected}"));
                    }
                    if !is_setting && !matches!(value, Value::Mapping(_) | Value::Null) {
                        return Err(format!("{child}: expected a mapping of {}", section.join(", ")));
                    }
                    self.walk(&child, value, known)?;
                }
            }
        }
        Ok(())
    }

    fn insert(&mut self, key: &str, text: String) {
        self.values.insert(key.to_owned(), text);
    }
}

/// The names one level below `path` (`""` for the top) among the known keys, in declaration order.
fn children<'a>(path: &str, known: &[&'a str]) -> Vec<&'a str> {
    let mut names: Vec<&str> = Vec::new();
    for key in known {
        let rest = if path.is_empty() { Some(*key) } else { key.strip_prefix(path).and_then(|r| r.strip_prefix('.')) };
        if let Some(name) = rest.and_then(|r| r.split('.').next())
            && !names.contains(&name)
        {
            names.push(name);
        }
    }
    names
}
