//! How a setting is declared and read: a [`Setting`] names its variable, its YAML key, its default
//! and its parser; the `settings!` macro turns a table of them into a struct, its doc comments
//! into the fields' docs, and gives the struct a `read` from [`Sources`] and a list of its keys.

use super::ConfigError;
use super::file::FileSettings;

/// Where a setting comes from: the variable (which wins), the YAML key (`None`: the environment
/// only, as for secrets), and the default, as text an operator could have typed.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    pub env: &'static str,
    pub yaml: Option<&'static str>,
    pub default: &'static str,
}

/// One setting: its [`Key`] and the parser that turns its text (or the default) into a value.
/// The parser's message is prefixed with where the text came from.
pub struct Setting<T> {
    key: Key,
    parse: fn(&str) -> Result<T, String>,
}

impl<T> Setting<T> {
    /// A setting read from the variable `env`, else the file's `yaml` key, else `default`.
    pub const fn new(
        env: &'static str,
        yaml: &'static str,
        default: &'static str,
        parse: fn(&str) -> Result<T, String>,
    ) -> Setting<T> {
        Setting { key: Key { env, yaml: Some(yaml), default }, parse }
    }

    /// A setting only the environment may give (a secret, or a switch for tests).
    pub const fn env_only(
        env: &'static str,
        default: &'static str,
        parse: fn(&str) -> Result<T, String>,
    ) -> Setting<T> {
        Setting { key: Key { env, yaml: None, default }, parse }
    }

    pub const fn key(&self) -> Key {
        self.key
    }
}

/// What settings are read from: the environment (first) and the file.
pub struct Sources<'a> {
    env: &'a dyn Fn(&str) -> Option<String>,
    file: &'a FileSettings,
}

impl<'a> Sources<'a> {
    pub(super) fn new(env: &'a dyn Fn(&str) -> Option<String>, file: &'a FileSettings) -> Sources<'a> {
        Sources { env, file }
    }

    /// The setting's text, if given, and the name to blame when it is bad.
    fn lookup(&self, key: &Key) -> (Option<String>, String) {
        if let Some(text) = (self.env)(key.env) {
            return (Some(text), format!("environment variable {}", key.env));
        }
        match key.yaml {
            Some(yaml) => (self.file.get(yaml), format!("{}: {yaml}", self.file.name())),
            None => (None, format!("environment variable {}", key.env)),
        }
    }

    /// Reads one setting: the environment wins over the file, the file over the default.
    pub(super) fn read<T>(&self, setting: &Setting<T>) -> Result<T, ConfigError> {
        let (text, source) = self.lookup(&setting.key);
        (setting.parse)(text.as_deref().unwrap_or(setting.key.default))
            .map_err(|message| ConfigError::new(source, message))
    }

    /// An error about a value that parsed but does not fit with another, naming where it came from.
    pub(super) fn blame<T>(&self, setting: &Setting<T>, message: impl Into<String>) -> ConfigError {
        ConfigError::new(self.lookup(&setting.key).1, message)
    }
}

/// Declares a group of settings once: each field with its doc comment, its type and the
/// [`Setting`] it is read from (inline, or a named constant when two groups share it). Generates
/// the struct, `SETTINGS` (every [`Key`], for the file's check of unknown keys) and
/// `read(&Sources)`.
macro_rules! settings {
    (
        $(#[$attr:meta])*
        $vis:vis struct $name:ident {
            $(
                $(#[doc = $doc:expr])*
                $field_vis:vis $field:ident: $ty:ty = $setting:expr
            ),* $(,)?
        }
    ) => {
        $(#[$attr])*
        $vis struct $name {
            $( $(#[doc = $doc])* $field_vis $field: $ty, )*
        }

        impl $name {
            /// Where every setting of this group comes from.
            pub(super) const SETTINGS: &'static [$crate::config::setting::Key] =
                &[$( $crate::config::setting::Setting::<$ty>::key(&$setting) ),*];

            /// Reads every setting of this group, each from the environment, the file or its default.
            pub(super) fn read(
                sources: &$crate::config::setting::Sources<'_>,
            ) -> Result<Self, $crate::config::ConfigError> {
                Ok($name { $( $field: sources.read::<$ty>(&$setting)?, )* })
            }
        }
    };
}

pub(super) use settings;
