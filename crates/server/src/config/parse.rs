//! The parsers settings name: each turns the text of one value (from a variable, the file or the
//! default) into its type, or says in a lowercase sentence what is wrong. Where the text came from
//! is added by the caller. An empty text means "unset" only where a setting is optional.

use std::str::FromStr;
use std::time::Duration;

use auction_proto::Amount;
use sqlx::mysql::MySqlConnectOptions;

pub const DEFAULT_MYSQL_DSN: &str = "mysql://auction:auction@127.0.0.1:3306/auction";

/// Any text, as it is.
pub fn text(text: &str) -> Result<String, String> {
    Ok(text.to_owned())
}

/// Any text; empty is unset.
pub fn optional_text(text: &str) -> Result<Option<String>, String> {
    Ok(Some(text.to_owned()).filter(|t| !t.is_empty()))
}

/// An http(s) URL, or an absolute path (resolved by the browser against the page); empty is unset.
pub fn web_url(text: &str) -> Result<Option<String>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let absolute = url::Url::parse(text).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host());
    let path = text.starts_with('/') && !text.starts_with("//");
    if !absolute && !path {
        return Err(format!("{text:?} is not an http(s) URL or a path such as /"));
    }
    Ok(Some(text.to_owned()))
}

pub fn number<T: FromStr>(text: &str) -> Result<T, String> {
    text.trim().parse().map_err(|_| format!("{text:?} is not a valid number here"))
}

/// A number; empty is unset.
pub fn optional_number<T: FromStr>(text: &str) -> Result<Option<T>, String> {
    if text.is_empty() { Ok(None) } else { number(text).map(Some) }
}

/// A number of which 0 means the same as 1 (a rate or a count that must allow something).
pub fn at_least_one<T: FromStr + Ord + From<u8>>(text: &str) -> Result<T, String> {
    number(text).map(|n: T| n.max(T::from(1)))
}

/// A byte count of which 0 means "leave it to the kernel".
pub fn bytes_or_kernel_default(text: &str) -> Result<Option<usize>, String> {
    number(text).map(|n: usize| Some(n).filter(|n| *n > 0))
}

/// A duration in the grammar every tool shares (`500ms`, `10s`, `1h30m`, `2d`, `90`).
pub fn duration(text: &str) -> Result<Duration, String> {
    auction_proto::duration::parse(text).map_err(|e| e.to_string())
}

/// A [`duration`] above zero (a timer of zero would close everything at once).
pub fn positive_duration(text: &str) -> Result<Duration, String> {
    match duration(text)? {
        Duration::ZERO => Err(format!("{text:?} must be above zero")),
        d => Ok(d),
    }
}

/// A [`duration`] of which 0 means "no limit" (as the Go driver's `conn_max_lifetime` has it).
pub fn optional_duration(text: &str) -> Result<Option<Duration>, String> {
    duration(text).map(|d| Some(d).filter(|d| !d.is_zero()))
}

pub fn amount(text: &str) -> Result<Amount, String> {
    Amount::parse(text.trim()).map_err(|e| e.to_string())
}

/// `1` or `true` switch it on; anything else leaves it off.
pub fn flag(text: &str) -> Result<bool, String> {
    Ok(text == "1" || text == "true")
}

/// `*` for any origin, else a comma-separated list of `scheme://host[:port]`.
pub fn origins(text: &str) -> Result<Option<Vec<String>>, String> {
    let text = text.trim();
    if text == "*" {
        return Ok(None);
    }
    let origins: Vec<String> = text.split(',').map(|o| o.trim().trim_end_matches('/').to_owned()).collect();
    for origin in &origins {
        let valid = url::Url::parse(origin).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.path() == "/");
        if !valid {
            return Err(format!("{origin:?} is not an origin such as https://bids.example.com"));
        }
    }
    Ok(Some(origins))
}

/// `host:port` or a `redis://` (or `rediss://`) URL.
pub fn redis_address(text: &str) -> Result<url::Url, String> {
    let with_scheme = if text.contains("://") { text.to_owned() } else { format!("redis://{text}") };
    let url = url::Url::parse(&with_scheme).map_err(|e| format!("{text:?} is not host:port or a redis:// URL: {e}"))?;
    if !matches!(url.scheme(), "redis" | "rediss") || url.host_str().is_none() {
        return Err(format!("{text:?} is not host:port or a redis:// URL"));
    }
    Ok(url)
}

/// Seed nodes of a Redis Cluster, comma-separated `host:port` (or `redis://` URLs); empty is unset
/// (a single Redis at `REDIS_ADDRESS`).
pub fn redis_cluster_nodes(text: &str) -> Result<Vec<url::Url>, String> {
    let mut nodes = Vec::new();
    for node in text.split(',').map(str::trim) {
        if node.is_empty() {
            if text.trim().is_empty() {
                break;
            }
            return Err(format!("{text:?} has an empty node: give host:port,host:port,..."));
        }
        let url = redis_address(node)?;
        if !url.path().trim_start_matches('/').is_empty() {
            return Err(format!("{node:?}: a cluster has only database 0, so a node takes no database"));
        }
        nodes.push(url);
    }
    Ok(nodes)
}

/// A Redis database number; empty is unset (the URL's own, else 0).
pub fn redis_db(text: &str) -> Result<Option<u32>, String> {
    optional_number(text).map_err(|_| format!("{text:?} is not a database number"))
}

/// The prefix of every key and channel: braces would change which slot a key hashes to.
pub fn key_prefix(text: &str) -> Result<String, String> {
    if text.contains(['{', '}']) || text.chars().any(char::is_control) {
        return Err("must not contain braces or control characters".to_owned());
    }
    Ok(text.to_owned())
}

/// A level (`info`) or any `tracing` filter (`info,auction_server=debug`).
pub fn log_level(text: &str) -> Result<String, String> {
    match tracing_subscriber::EnvFilter::try_new(text) {
        Ok(_) => Ok(text.to_owned()),
        Err(_) => Err(format!("{text:?} is not a log level or filter")),
    }
}

/// `local` or `replicated`.
pub fn durability(text: &str) -> Result<super::services::Durability, String> {
    match text {
        "local" => Ok(super::services::Durability::Local),
        "replicated" => Ok(super::services::Durability::Replicated),
        other => Err(format!("{other:?} is not local or replicated")),
    }
}

/// `text` or `json`.
pub fn log_format(text: &str) -> Result<super::common::LogFormat, String> {
    match text {
        "text" => Ok(super::common::LogFormat::Text),
        "json" => Ok(super::common::LogFormat::Json),
        other => Err(format!("{other:?} is not text or json")),
    }
}

/// An instance name, by the same rule as every id; empty is unset (the service picks one).
pub fn instance_id(text: &str) -> Result<Option<String>, String> {
    if text.is_empty() {
        return Ok(None);
    }
    auction_proto::ids::validate_id("instance_id", text).map_err(|e| e.to_string())?;
    Ok(Some(text.to_owned()))
}

/// The bidder-token secret; empty is unset (development).
pub fn auth_secret(text: &str) -> Result<Option<Vec<u8>>, String> {
    match text {
        "" => Ok(None),
        s if s.len() < 32 => Err("must be at least 32 bytes long".to_owned()),
        s => Ok(Some(s.as_bytes().to_vec())),
    }
}

/// The operator token; empty is unset (development).
pub fn admin_token(text: &str) -> Result<Option<String>, String> {
    match text {
        "" => Ok(None),
        t if t.len() < 16 => Err("must be at least 16 characters long".to_owned()),
        t => Ok(Some(t.to_owned())),
    }
}

/// Parses `mysql://user:pass@host:port/db` or the older `user:pass@tcp(host:port)/db?params`.
/// A MySQL DSN as [`mysql_dsn`] reads it; empty is unset.
pub fn optional_mysql_dsn(dsn: &str) -> Result<Option<MySqlConnectOptions>, String> {
    if dsn.is_empty() { Ok(None) } else { mysql_dsn(dsn).map(Some) }
}

pub fn mysql_dsn(dsn: &str) -> Result<MySqlConnectOptions, String> {
    let url = if dsn.starts_with("mysql://") || dsn.starts_with("mariadb://") {
        dsn.replacen("mariadb://", "mysql://", 1)
    } else {
        go_dsn_to_url(dsn)?
    };
    url.parse::<MySqlConnectOptions>().map_err(|e| format!("{dsn:?} is not a MySQL DSN: {e}"))
}

/// `user:pass@tcp(host:port)/db?params` -> `mysql://user:pass@host:port/db`. Parameters of the old
/// form (`parseTime`, `charset`, `loc`) describe client behaviour this service fixes itself, so
/// they are dropped.
fn go_dsn_to_url(dsn: &str) -> Result<String, String> {
    let shape = || format!("{dsn:?} is neither mysql://user:pass@host:port/db nor user:pass@tcp(host:port)/db");
    let (credentials, rest) = dsn.rsplit_once('@').ok_or_else(shape)?;
    let rest = rest.strip_prefix("tcp(").ok_or_else(shape)?;
    let (address, rest) = rest.split_once(')').ok_or_else(shape)?;
    let database = rest.strip_prefix('/').ok_or_else(shape)?;
    let database = database.split('?').next().unwrap_or_default();
    let (user, password) = credentials.split_once(':').unwrap_or((credentials, ""));
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    Ok(format!("mysql://{}:{}@{}/{}", enc(user), enc(password), address, enc(database)))
}
