//! The configuration's unit tests: defaults, the environment over the file, each service reading
//! only its own settings, and every error naming its key.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use super::*;

fn load<S: ServiceConfig>(vars: &[(&str, &str)]) -> Result<Config<S>, ConfigError> {
    let vars: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    Config::from_env(|name| vars.get(name).cloned())
}

fn bidding(vars: &[(&str, &str)]) -> Result<Config<BiddingConfig>, ConfigError> {
    load(vars)
}

fn file(text: &str) -> Result<FileSettings, ConfigError> {
    FileSettings::parse("config.yaml".to_owned(), text, &file_keys())
}

/// The configuration of `S` from a file's text and no environment.
fn from_file<S: ServiceConfig>(text: &str) -> Result<Config<S>, ConfigError> {
    Config::resolve(&file(text)?, &|_| None)
}

#[test]
fn defaults() {
    let config = bidding(&[]).unwrap();
    assert_eq!(config.port, 8080);
    assert_eq!(config.host, "0.0.0.0");
    assert_eq!(config.log_level, "info");
    assert_eq!(config.log_format, LogFormat::Text);
    assert_eq!(config.redis.url, "redis://127.0.0.1:6379");
    assert_eq!(config.redis.timeout, Duration::from_secs(2));
    assert!(config.instance_id.starts_with("bidding-"));
    assert!(config.auth.secret.is_none() && config.auth.admin_token.is_none());
    let bidding = config.service;
    assert_eq!((bidding.max_frame_bytes, bidding.max_message_bytes, bidding.watcher_queue), (4096, 65536, 256));
    assert_eq!((bidding.bid_rate_per_connection, bidding.bid_rate_per_user), (20, 50));
    assert_eq!((bidding.max_connections, bidding.max_connections_per_user), (100_000, 20));
    assert_eq!((bidding.send_timeout, bidding.idle_timeout), (Duration::from_secs(10), Duration::from_secs(60)));
    assert_eq!((bidding.send_buffer, bidding.allowed_origins), (None, None));
    assert_eq!(bidding.max_bid, auction_proto::Amount::MAX);

    let auction = load::<AuctionConfig>(&[]).unwrap();
    assert_eq!(auction.port, 8081);
    assert!(auction.instance_id.starts_with("auction-"));
    assert_eq!(auction.service.leader_ttl, Duration::from_secs(10));
    assert_eq!(auction.service.max_duration, Duration::from_secs(365 * 86_400));
    assert_eq!(auction.service.max_extend, Duration::from_secs(86_400));
    assert_eq!(auction.service.max_bid, auction_proto::Amount::MAX);
    assert_eq!(auction.service.mysql.get_database(), Some("auction"));

    let analytics = load::<AnalyticsConfig>(&[]).unwrap();
    assert_eq!(analytics.port, 8082);
    assert_eq!((analytics.service.batch, analytics.service.sweep), (500, Duration::from_secs(2)));
    assert_eq!(analytics.service.claim_ttl, Duration::from_secs(10));
    assert!(!analytics.service.crash_after_commit);
}

#[test]
fn env_overrides() {
    let config = bidding(&[
        ("SERVER_PORT", "9000"),
        ("REDIS_ADDRESS", "redis.internal:6380"),
        ("REDIS_PASSWORD", "p@ss"),
        ("REDIS_DB", "3"),
        ("INSTANCE_ID", "node-7"),
        ("WS_IDLE_TIMEOUT", "1ms"),
        ("WS_SEND_BUFFER", "65536"),
        ("WS_BID_RATE", "0"),
        ("WS_ALLOWED_ORIGINS", "https://a.example/, http://b.example:8000"),
        ("AUTH_SECRET", "0123456789abcdef0123456789abcdef"),
    ])
    .unwrap();
    assert_eq!(config.port, 9000);
    assert_eq!(config.redis.url, "redis://:p%40ss@redis.internal:6380/3");
    assert_eq!(config.instance_id, "node-7");
    assert_eq!(config.service.idle_timeout, Duration::from_millis(100), "the idle timeout has a floor");
    assert_eq!(config.service.send_buffer, Some(65536));
    assert_eq!(config.service.bid_rate_per_connection, 1, "a rate of 0 still allows one bid a second");
    let origins = config.service.allowed_origins.unwrap();
    assert_eq!(origins, ["https://a.example", "http://b.example:8000"]);
    assert_eq!(config.auth.secret.as_deref(), Some(&b"0123456789abcdef0123456789abcdef"[..]));
    assert_eq!(config.service.web_api_url, None, "unset: the page's host on port 8081");
    for url in ["/", "/auction-api/", "https://api.example:8443"] {
        assert_eq!(bidding(&[("WEB_API_URL", url)]).unwrap().service.web_api_url.as_deref(), Some(url));
    }

    let auction = load::<AuctionConfig>(&[("LEADER_TTL", "1500ms"), ("MAX_EXTEND", "90")]).unwrap();
    assert_eq!(auction.service.leader_ttl, Duration::from_millis(1500));
    assert_eq!(auction.service.max_extend, Duration::from_secs(90), "a bare number is seconds");
    let analytics = load::<AnalyticsConfig>(&[("ANALYTICS_CRASH_AFTER_COMMIT", "1")]).unwrap();
    assert!(analytics.service.crash_after_commit);
    assert!(!analytics.service.crash_before_commit);
    let analytics = load::<AnalyticsConfig>(&[("ANALYTICS_CRASH_BEFORE_COMMIT", "1")]).unwrap();
    assert!(analytics.service.crash_before_commit && !analytics.service.crash_after_commit);
}

#[test]
fn bad_values_name_their_key() {
    fn err<S: ServiceConfig>(vars: &[(&str, &str)]) -> String {
        load::<S>(vars).err().map(|e| e.to_string()).unwrap_or_default()
    }
    let cases: [(&str, &str, String); 17] = [
        ("SERVER_PORT", "http", err::<BiddingConfig>(&[("SERVER_PORT", "http")])),
        ("SERVER_PORT", "70000", err::<AnalyticsConfig>(&[("SERVER_PORT", "70000")])),
        ("REDIS_ADDRESS", "http://x", err::<AuctionConfig>(&[("REDIS_ADDRESS", "http://x")])),
        ("REDIS_DB", "one", err::<BiddingConfig>(&[("REDIS_DB", "one")])),
        ("REDIS_KEY_PREFIX", "{a}", err::<BiddingConfig>(&[("REDIS_KEY_PREFIX", "{a}")])),
        ("LOG_LEVEL", "loud[", err::<BiddingConfig>(&[("LOG_LEVEL", "loud[")])),
        ("LOG_FORMAT", "xml", err::<BiddingConfig>(&[("LOG_FORMAT", "xml")])),
        ("INSTANCE_ID", "a:b", err::<BiddingConfig>(&[("INSTANCE_ID", "a:b")])),
        ("AUTH_SECRET", "short", err::<BiddingConfig>(&[("AUTH_SECRET", "short")])),
        ("MAX_BID", "-5", err::<BiddingConfig>(&[("MAX_BID", "-5")])),
        ("WS_SEND_BUFFER", "16k", err::<BiddingConfig>(&[("WS_SEND_BUFFER", "16k")])),
        ("LEADER_TTL", "10 parsecs", err::<AuctionConfig>(&[("LEADER_TTL", "10 parsecs")])),
        ("MYSQL_DSN", "nonsense", err::<AuctionConfig>(&[("MYSQL_DSN", "nonsense")])),
        ("MYSQL_DSN", "nonsense", err::<AnalyticsConfig>(&[("MYSQL_DSN", "nonsense")])),
        ("WEB_API_URL", "localhost:8081", err::<BiddingConfig>(&[("WEB_API_URL", "localhost:8081")])),
        ("WEB_API_URL", "//evil.example", err::<BiddingConfig>(&[("WEB_API_URL", "//evil.example")])),
        (
            "CORS_ALLOWED_ORIGINS",
            "bids.example.com",
            err::<AuctionConfig>(&[("CORS_ALLOWED_ORIGINS", "bids.example.com")]),
        ),
    ];
    for (var, value, message) in cases {
        assert!(message.starts_with(&format!("environment variable {var}: ")), "{var}={value}: {message:?}");
    }
    assert!(err::<AuctionConfig>(&[("CORS_ALLOWED_ORIGINS", "https://a.example/path")]).contains("not an origin"));
    assert!(err::<AuctionConfig>(&[("LEADER_TTL", "10 parsecs")]).contains("unknown unit \"parsecs\""));
    let sizes = err::<BiddingConfig>(&[("WS_MAX_FRAME_BYTES", "8192"), ("WS_MAX_MESSAGE_BYTES", "4096")]);
    assert_eq!(sizes, "environment variable WS_MAX_MESSAGE_BYTES: must be at least WS_MAX_FRAME_BYTES");
}

#[test]
fn each_service_reads_only_its_own_settings() {
    let others = [
        ("MYSQL_DSN", "nonsense"),
        ("LEADER_TTL", "soon"),
        ("CORS_ALLOWED_ORIGINS", "nowhere"),
        ("ANALYTICS_BATCH", "many"),
        ("ANALYTICS_SWEEP", "often"),
    ];
    let config = bidding(&others).expect("the bidding service ignores the other services' settings");
    assert_eq!(config.port, 8080);
    let ws = [("WS_SEND_TIMEOUT", "never"), ("WS_MAX_FRAME_BYTES", "big"), ("ANALYTICS_SWEEP", "often")];
    load::<AuctionConfig>(&ws).expect("the auction service ignores bidding and analytics settings");
    let ws = [("WS_SEND_TIMEOUT", "never"), ("LEADER_TTL", "soon"), ("CORS_ALLOWED_ORIGINS", "nowhere")];
    load::<AnalyticsConfig>(&ws).expect("the analytics service ignores bidding and auction settings");

    // The same holds for a file shared by the three services.
    let shared = "mysql:\n  dsn: nonsense\nbidding:\n  max_frame_bytes: 1024\n";
    assert_eq!(from_file::<BiddingConfig>(shared).unwrap().service.max_frame_bytes, 1024);
    let err = from_file::<AuctionConfig>(shared).unwrap_err().to_string();
    assert!(err.starts_with("config.yaml: mysql.dsn: \"nonsense\" is neither"), "{err}");
}

#[test]
fn the_example_config_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deployments/config.example.yaml");
    let example = FileSettings::read(&path, &file_keys()).unwrap();
    let none = |_: &str| None;
    let config = Config::<BiddingConfig>::resolve(&example, &none).unwrap();
    assert_eq!(config.service.bid_rate_per_connection, 20);
    assert_eq!(config.service.send_buffer, None, "0 leaves the kernel's autotuning");
    let auction = Config::<AuctionConfig>::resolve(&example, &none).unwrap();
    assert_eq!(auction.service.max_duration, Duration::from_secs(365 * 86_400));
    let analytics = Config::<AnalyticsConfig>::resolve(&example, &none).unwrap();
    assert_eq!(analytics.service.claim_ttl, Duration::from_secs(10));
}

#[test]
fn the_example_config_names_every_file_setting() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deployments/config.example.yaml");
    let example = std::fs::read_to_string(path).unwrap();
    let groups = [
        common::Server::SETTINGS,
        HttpConfig::SETTINGS,
        common::RedisSettings::SETTINGS,
        BiddingConfig::SETTINGS,
        AuctionConfig::SETTINGS,
        AnalyticsConfig::SETTINGS,
    ];
    for key in groups.into_iter().flatten() {
        let Some(leaf) = key.yaml.and_then(|k| k.rsplit('.').next()) else { continue };
        let named = example.lines().any(|line| line.contains(&format!("{leaf}:")) && line.contains(key.env));
        assert!(named, "no line of the example gives {leaf} with its variable {}", key.env);
    }
}

#[test]
fn mysql_dsn_forms() {
    let go = parse::mysql_dsn("auction:secret@tcp(db.local:3307)/bids?parseTime=true").unwrap();
    assert_eq!(go.get_host(), "db.local");
    assert_eq!(go.get_port(), 3307);
    assert_eq!(go.get_database(), Some("bids"));
    let url = parse::mysql_dsn("mysql://u:p@127.0.0.1:3306/auction").unwrap();
    assert_eq!(url.get_database(), Some("auction"));
    assert!(parse::mysql_dsn("u:p@db:3306/auction").is_err());
}

#[test]
fn file_values_and_the_environment_over_them() {
    let text = "server:\n  port: 8085\nleader_ttl: 5s\nredis:\n  password:\n  db: 2\n";
    let config = from_file::<AuctionConfig>(text).unwrap();
    assert_eq!((config.port, config.service.leader_ttl), (8085, Duration::from_secs(5)));
    assert_eq!(config.redis.url, "redis://127.0.0.1:6379/2", "an empty key is unset");
    let env = |name: &str| (name == "SERVER_PORT").then(|| "9001".to_owned());
    let config = Config::<AuctionConfig>::resolve(&file(text).unwrap(), &env).unwrap();
    assert_eq!(config.port, 9001);
    assert!(file("").unwrap().get("server.port").is_none());
    assert!(file("# only comments\n").unwrap().get("server.port").is_none());
}

#[test]
fn yaml_file_errors_name_the_key() {
    let err = |text: &str| file(text).unwrap_err().to_string();
    let unknown = err("server:\n  port: 8085\nredis:\n  adress: x\n");
    assert!(
        unknown.starts_with("config.yaml: redis.adress: unknown key, expected one of address, cluster_nodes, password"),
        "{unknown}"
    );
    let top = err("servers:\n  port: 1\n");
    assert!(top.starts_with("config.yaml: servers: unknown key, expected one of server, instance_id"), "{top}");
    assert_eq!(
        err("server: 8080\n"),
        "config.yaml: server: expected a mapping of host, port, header_timeout, idle_timeout, max_connections"
    );
    assert_eq!(err("leader_ttl:\n  s: 5\n"), "config.yaml: leader_ttl: expected one value, not a mapping");
    assert_eq!(err("redis:\n  address: [a, b]\n"), "config.yaml: redis.address: expected one value, not a list");
    assert!(err("- server\n").contains("expected a mapping of settings"));
    assert!(err("server:\n  port: 1\n  port: 2\n").starts_with("config.yaml: "));
    assert!(err("server: [\n").starts_with("config.yaml: "));
    // A value of the wrong kind is the setting's own parser's to refuse, naming the key.
    let port = from_file::<BiddingConfig>("server:\n  port: lots\n").unwrap_err().to_string();
    assert_eq!(port, "config.yaml: server.port: \"lots\" is not a valid number here");
    // A secret has no file key: it belongs in the environment.
    assert!(err("auth_secret: x\n").contains("auth_secret: unknown key"));
}

#[test]
fn a_missing_file_names_its_path() {
    let err = FileSettings::read(Path::new("/nonexistent/config.yaml"), &file_keys()).unwrap_err().to_string();
    assert!(err.starts_with("/nonexistent/config.yaml: cannot read"), "{err}");
}

#[test]
fn the_mysql_pool_keys_size_the_pool() {
    let text = "mysql:\n  max_open_conns: 25\n  max_idle_conns: 5\n  conn_max_lifetime: 5m\n";
    let pool = from_file::<AuctionConfig>(text).unwrap().service.pool();
    let five_minutes = Some(Duration::from_secs(300));
    assert_eq!(pool, MySqlPool { max_open: 25, keep_idle: 5, max_lifetime: five_minutes });
    let options = crate::db::pool_options(pool);
    assert_eq!((options.get_max_connections(), options.get_min_connections()), (25, 5));
    assert_eq!(options.get_max_lifetime(), five_minutes);
    assert_eq!(from_file::<AnalyticsConfig>(text).unwrap().service.pool(), pool);
    // One file serves every service: the bidding service reads none of it, and refuses none.
    assert!(from_file::<BiddingConfig>(text).is_ok());

    let env = [("MYSQL_MAX_OPEN_CONNS", "4"), ("MYSQL_MAX_IDLE_CONNS", "9"), ("MYSQL_CONN_MAX_LIFETIME", "0")];
    let pool = load::<AnalyticsConfig>(&env).unwrap().service.pool();
    assert_eq!(pool, MySqlPool { max_open: 4, keep_idle: 4, max_lifetime: None }, "idle is capped, 0 is no limit");
    assert_eq!(crate::db::pool_options(pool).get_max_lifetime(), None);

    let defaults = load::<AuctionConfig>(&[]).unwrap().service.pool();
    assert_eq!(defaults, MySqlPool { max_open: 10, keep_idle: 0, max_lifetime: Some(Duration::from_secs(1800)) });
}

#[test]
fn a_bad_mysql_pool_value_names_its_key() {
    let err = from_file::<AuctionConfig>("mysql:\n  max_open_conns: many\n").unwrap_err().to_string();
    assert_eq!(err, "config.yaml: mysql.max_open_conns: \"many\" is not a valid number here");
    let err = from_file::<AnalyticsConfig>("mysql:\n  max_idle_conns: -1\n").unwrap_err().to_string();
    assert!(err.starts_with("config.yaml: mysql.max_idle_conns: "), "{err}");
    let err = load::<AuctionConfig>(&[("MYSQL_CONN_MAX_LIFETIME", "soon")]).unwrap_err().to_string();
    assert!(err.starts_with("environment variable MYSQL_CONN_MAX_LIFETIME: "), "{err}");
}

#[test]
fn http_timeouts_and_their_errors() {
    let config = bidding(&[]).unwrap().http;
    assert_eq!((config.header_timeout, config.idle_timeout), (Duration::from_secs(10), Duration::from_secs(60)));
    assert_eq!(config.max_connections, 10_000);
    let text = "server:\n  header_timeout: 2s\n  idle_timeout: 5m\n  max_connections: 7\n";
    let config = from_file::<AnalyticsConfig>(text).unwrap().http;
    assert_eq!((config.header_timeout, config.idle_timeout), (Duration::from_secs(2), Duration::from_secs(300)));
    assert_eq!(config.max_connections, 7);
    let err = load::<AuctionConfig>(&[("HTTP_HEADER_TIMEOUT", "0s")]).unwrap_err().to_string();
    assert_eq!(err, "environment variable HTTP_HEADER_TIMEOUT: \"0s\" must be above zero");
    let err = from_file::<BiddingConfig>("server:\n  idle_timeout: forever\n").unwrap_err().to_string();
    assert!(err.starts_with("config.yaml: server.idle_timeout: "), "{err}");
}
