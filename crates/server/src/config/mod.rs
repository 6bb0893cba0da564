//! Configuration: `config.yaml` (searched in `.`, `./config`, `/etc/auction-system/`, or named by
//! `CONFIG_FILE`) overridden by environment variables. Any bad value fails start-up with a message
//! that names where it came from: `environment variable X: ...` or `<file>: key: ...`.
//!
//! Every setting is declared once, in a `settings!` table (`common.rs`: what every service reads;
//! `services.rs`: each service's own): its field and doc, its variable, its YAML key, its default
//! and its parser (`parse.rs`). A service reads the common settings and its own section, nothing
//! else, so the bidding service starts whatever `MYSQL_DSN` says. One file may serve all three
//! services, so it may hold any service's keys; a key no service declares is an error.

mod common;
mod file;
mod parse;
mod services;
mod setting;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

pub use common::{AuthConfig, HttpConfig, LogFormat, RedisConfig};
pub use services::{AnalyticsConfig, AuctionConfig, BiddingConfig, Durability, MySqlPool};
pub use setting::Sources;

use file::{FILE_NAME, FileSettings};

/// Which service is starting: sets the default port and the instance id's prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Bidding,
    Auction,
    Analytics,
}

impl Service {
    pub fn name(self) -> &'static str {
        match self {
            Service::Bidding => "bidding",
            Service::Auction => "auction",
            Service::Analytics => "analytics",
        }
    }

    pub fn default_port(self) -> u16 {
        match self {
            Service::Bidding => 8080,
            Service::Auction => 8081,
            Service::Analytics => 8082,
        }
    }
}

/// A configuration problem, naming where the bad value came from.
#[derive(Debug, thiserror::Error)]
#[error("{source_name}: {message}")]
pub struct ConfigError {
    pub source_name: String,
    pub message: String,
}

impl ConfigError {
    fn new(source_name: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError { source_name: source_name.into(), message: message.into() }
    }
}

/// A service's own settings: its section, read only when that service starts.
pub trait ServiceConfig: Sized {
    const SERVICE: Service;

    /// Reads the section and checks it as a whole.
    fn resolve(sources: &Sources<'_>) -> Result<Self, ConfigError>;
}

/// The configuration of one starting service: what every service reads, and its own section.
#[derive(Debug, Clone)]
pub struct Config<S> {
    pub host: String,
    /// 0 picks a free port (tests).
    pub port: u16,
    pub instance_id: String,
    pub log_level: String,
    pub log_format: LogFormat,
    pub http: HttpConfig,
    pub redis: RedisConfig,
    pub auth: AuthConfig,
    /// The starting service's own settings.
    pub service: S,
}

impl<S: ServiceConfig> Config<S> {
    /// Loads the configuration from the file (if any) and the process environment.
    pub fn load() -> Result<Config<S>, ConfigError> {
        let env = |name: &str| std::env::var(name).ok();
        let path = match env("CONFIG_FILE") {
            Some(path) => Some(PathBuf::from(path)),
            None => [".", "./config", "/etc/auction-system"]
                .iter()
                .map(|dir| Path::new(dir).join(FILE_NAME))
                .find(|p| p.is_file()),
        };
        let file = match path {
            Some(path) => FileSettings::read(&path, &file_keys())?,
            None => FileSettings::none(),
        };
        Config::resolve(&file, &env)
    }

    /// The configuration from defaults and `env` alone (tests pass their own).
    pub fn from_env(env: impl Fn(&str) -> Option<String>) -> Result<Config<S>, ConfigError> {
        Config::resolve(&FileSettings::none(), &env)
    }

    fn resolve(file: &FileSettings, env: &dyn Fn(&str) -> Option<String>) -> Result<Config<S>, ConfigError> {
        let sources = Sources::new(env, file);
        let server = common::Server::read(&sources)?;
        let service = S::SERVICE;
        let random_id = || format!("{}-{}", service.name(), &uuid::Uuid::new_v4().simple().to_string()[..8]);
        Ok(Config {
            host: server.host,
            port: server.port.unwrap_or(service.default_port()),
            instance_id: server.instance_id.unwrap_or_else(random_id),
            log_level: server.log_level,
            log_format: server.log_format,
            http: HttpConfig::read(&sources)?,
            redis: RedisConfig::resolve(&sources)?,
            auth: AuthConfig::read(&sources)?,
            service: S::resolve(&sources)?,
        })
    }
}

/// Every key a file may hold: every service's, whichever is starting.
fn file_keys() -> Vec<&'static str> {
    [
        common::Server::SETTINGS,
        HttpConfig::SETTINGS,
        common::RedisSettings::SETTINGS,
        AuthConfig::SETTINGS,
        BiddingConfig::SETTINGS,
        AuctionConfig::SETTINGS,
        AnalyticsConfig::SETTINGS,
    ]
    .into_iter()
    .flatten()
    .filter_map(|key| key.yaml)
    .collect()
}
