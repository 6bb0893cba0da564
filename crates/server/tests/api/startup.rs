//! Start-up before the servers: a service started while Redis or MySQL cannot be reached serves
//! at once, `/health` saying what it waits for, waits for them, saying why at warn, and serves its
//! API once they answer, in the same process; a bad password still stops it at once, and a stop
//! signal ends the wait.

use std::net::SocketAddr;
use std::process::Stdio;

use crate::helpers::*;

/// Whether `line` (a JSON log line) is a warning whose message starts with `start`.
fn warns(line: &str, start: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(line)
        .is_ok_and(|json| json["level"] == "WARN" && json["message"].as_str().is_some_and(|m| m.starts_with(start)))
}

/// Whether `line` (a JSON log line) says `server` answered after failed attempts.
fn answered(line: &str, server: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(line).is_ok_and(|json| json["message"] == format!("{server} answered"))
}

/// `GET /health`: its status and body.
async fn health(addr: SocketAddr) -> (u16, serde_json::Value) {
    let request = reqwest::Client::new().get(format!("http://{addr}/health")).timeout(WAIT).send();
    let response = request.await.unwrap_or_else(|e| panic!("no answer from /health: {e}"));
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test]
async fn a_service_started_before_redis_and_mysql_serves_and_says_what_it_waits_for() {
    let mut env = TestEnv::new().await;
    // The proxy stands in for one Redis: a cluster's clients would go to its nodes past it.
    env.unset("REDIS_CLUSTER_NODES");
    let redis = Proxy::start(&redis_target()).await;
    let mysql = Proxy::start(&mysql_target()).await;
    redis.down();
    mysql.down();
    let (mut child, mut output) = env.starting_process(
        env!("CARGO_BIN_EXE_auction-service"),
        "early",
        &[
            ("REDIS_ADDRESS", &redis_through(redis.addr)),
            ("MYSQL_DSN", &mysql_through(&env, mysql.addr)),
            ("LOG_FORMAT", "json"),
        ],
    );

    // It listens at once, and says what it waits for, each with its last failure once there is one.
    let listening = output.line_matching(|line| listening_address(line).is_some()).await;
    let addr = listening.as_deref().and_then(listening_address);
    let addr = addr.unwrap_or_else(|| panic!("the service exited instead of serving: {:?}", output.seen));
    assert!(output.line_matching(|line| warns(line, "redis is not ready yet")).await.is_some());
    assert!(output.line_matching(|line| warns(line, "mysql is not ready yet")).await.is_some());
    let (status, body) = health(addr).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "starting", "{body}");
    for server in ["redis", "mysql"] {
        let check = body["checks"][server].as_str().unwrap_or_default();
        assert!(check.starts_with("connecting: "), "{server}: {body}");
    }
    let list = reqwest::get(format!("http://{addr}/api/v1/auctions")).await.unwrap();
    assert_eq!(list.status(), 503);
    let error: serde_json::Value = list.json().await.unwrap();
    assert_eq!(error["error"]["code"], "unavailable", "{error}");
    assert!(error["error"]["message"].as_str().unwrap().contains("starting: waiting for mysql and redis"), "{error}");

    redis.restore();
    assert!(output.line_matching(|line| answered(line, "redis")).await.is_some(), "{:?}", output.seen);
    let (status, body) = health(addr).await;
    assert_eq!((status, &body["checks"]["redis"]), (503, &serde_json::json!("ok")), "{body}");
    assert!(body["checks"]["mysql"].as_str().unwrap().starts_with("connecting"), "{body}");
    assert!(child.try_wait().unwrap().is_none(), "the service gave up: {:?}", output.seen);

    mysql.restore();
    assert!(output.line_matching(is_ready).await.is_some(), "never ready: {:?}", output.seen);
    let (status, body) = health(addr).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!((&body["status"], &body["checks"]["mysql"]), (&serde_json::json!("ok"), &serde_json::json!("ok")));
    let list = reqwest::get(format!("http://{addr}/api/v1/auctions")).await.unwrap();
    assert_eq!(list.status(), 200, "the same process serves the API");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_analytics_service_serves_without_mysql_or_redis_and_recovers() {
    for missing in ["mysql", "redis"] {
        let mut env = TestEnv::new().await;
        env.unset("REDIS_CLUSTER_NODES");
        let proxy = match missing {
            "mysql" => Proxy::start(&mysql_target()).await,
            _ => Proxy::start(&redis_target()).await,
        };
        proxy.down();
        match missing {
            "mysql" => env.set("MYSQL_DSN", &mysql_through(&env, proxy.addr)),
            _ => env.set("REDIS_ADDRESS", &redis_through(proxy.addr)),
        }
        let (addr, _, ready) = env.start_analytics_starting().await;
        let (status, body) = health(addr).await;
        assert_eq!((status, &body["status"]), (503, &serde_json::json!("starting")), "{missing}: {body}");
        let check = body["checks"][missing].as_str().unwrap_or_default();
        assert!(check.starts_with("connecting"), "{missing}: {body}");

        proxy.restore();
        tokio::time::timeout(WAIT, ready).await.unwrap_or_else(|_| panic!("{missing}: never ready"));
        let (status, body) = health(addr).await;
        assert_eq!(status, 200, "{missing}: {body}");
        assert_eq!(body["checks"][missing], "ok", "{missing}: {body}");
    }
}

#[tokio::test]
async fn the_bidding_service_needs_no_mysql_settings() {
    let mut env = TestEnv::new().await;
    env.unset("MYSQL_DSN");
    let node = env
        .process(
            env!("CARGO_BIN_EXE_bidding-service"),
            "no-mysql",
            &[("MYSQL_DSN", "nonsense"), ("MYSQL_MAX_OPEN_CONNS", "many"), ("MYSQL_CONN_MAX_LIFETIME", "soon")],
        )
        .await;
    let (status, body) = health(node.addr).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["checks"].get("mysql").is_none(), "{body}");
}

#[tokio::test]
async fn a_refused_mysql_password_stops_the_service_at_once() {
    let env = TestEnv::new().await;
    let base = mysql_base();
    let (credentials, server) = base.rsplit_once('@').unwrap();
    let user = credentials.rsplit_once(':').map_or(credentials, |(user, _)| user);
    let dsn = format!("{user}:not-the-password@{server}/{}", env.database);
    let mut command = env.command(env!("CARGO_BIN_EXE_auction-service"), "refused", &[("MYSQL_DSN", &dsn)]);
    command.stderr(Stdio::piped());

    let output = tokio::time::timeout(WAIT, command.output()).await.expect("still running").unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot prepare the mysql database") && stderr.contains("Access denied"), "{stderr}");
    assert!(!stdout.contains("not ready yet"), "retried a refused password: {stdout}");
}

#[tokio::test]
async fn a_service_waiting_for_redis_stops_cleanly_on_sigterm() {
    let mut env = TestEnv::new().await;
    env.unset("REDIS_CLUSTER_NODES");
    let redis = Proxy::start(&redis_target()).await;
    redis.down();
    let (mut child, mut output) = env.starting_process(
        env!("CARGO_BIN_EXE_bidding-service"),
        "stopped-early",
        &[("REDIS_ADDRESS", &redis_through(redis.addr)), ("LOG_FORMAT", "json")],
    );
    let waiting = output.line_matching(|line| warns(line, "redis is not ready yet")).await;
    assert!(waiting.is_some(), "no warning while redis was unreachable: {:?}", output.seen);

    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id().unwrap()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = tokio::time::timeout(WAIT, child.wait()).await.expect("no exit after SIGTERM").unwrap();
    assert!(status.success(), "{status}: {:?}", output.seen);
}

/// The schema as MySQL tells it: every table's `SHOW CREATE TABLE`, without the counter.
async fn schema(conn: &mut sqlx::MySqlConnection) -> Vec<String> {
    use sqlx::Row;
    let tables: Vec<String> =
        sqlx::query("SHOW TABLES").fetch_all(&mut *conn).await.unwrap().iter().map(|r| r.get(0)).collect();
    let mut out = Vec::new();
    for table in tables.iter().filter(|t| *t != "_sqlx_migrations") {
        let row = sqlx::query(&format!("SHOW CREATE TABLE `{table}`")).fetch_one(&mut *conn).await.unwrap();
        let text: String = row.get(1);
        out.push(text.split(" AUTO_INCREMENT=").next().unwrap().to_owned());
    }
    out
}

/// MySQL commits each DDL statement on its own, so a service killed during a migration leaves it
/// half done and marked unsuccessful. From the proxy-bids migration on, every migration is safe
/// to run again (README, "Upgrading"): once its row is deleted, it runs to the same schema.
#[tokio::test]
async fn migrations_cut_short_complete_when_run_again() {
    let env = TestEnv::new().await;
    let url = format!("{}/{}", mysql_base(), env.database);
    let pool = sqlx::MySqlPool::connect(&url).await.unwrap();
    auction_server::db::MIGRATOR.run(&pool).await.unwrap();
    let mut conn = env.mysql().await;
    let whole = schema(&mut conn).await;
    let rerunnable = auction_server::db::MIGRATOR.iter().filter(|m| m.version >= 20261126000003);
    let versions: Vec<i64> = rerunnable.map(|m| m.version).collect();
    assert!(!versions.is_empty());
    for version in versions {
        // As a cut-short run leaves it: applied, and its row marked unsuccessful...
        sqlx::query("UPDATE _sqlx_migrations SET success = FALSE WHERE version = ?")
            .bind(version)
            .execute(&mut conn)
            .await
            .unwrap();
        let refused = auction_server::db::MIGRATOR.run(&pool).await.expect_err("a dirty migration is refused");
        assert!(refused.to_string().contains(&version.to_string()), "{refused}");
        // ...which the README's step repairs.
        sqlx::query("DELETE FROM _sqlx_migrations WHERE version = ? AND success = FALSE")
            .bind(version)
            .execute(&mut conn)
            .await
            .unwrap();
        auction_server::db::MIGRATOR.run(&pool).await.unwrap_or_else(|e| panic!("migration {version} again: {e}"));
        assert_eq!(schema(&mut conn).await, whole, "migration {version} run again changed the schema");
    }
}

/// A deployment's first start: several services migrate one fresh database at the same moment.
/// Every one must come up, with the whole schema applied once (before, MariaDB refused the
/// migration lock, and the later instances found a migration half done and stopped).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_started_together_on_a_fresh_database_all_migrate() {
    const INSTANCES: usize = 6;
    let env = TestEnv::new().await;
    let url = format!("{}/{}", mysql_base(), env.database);
    let mut pools = Vec::new();
    for _ in 0..INSTANCES {
        pools.push(sqlx::mysql::MySqlPoolOptions::new().max_connections(2).connect(&url).await.unwrap());
    }
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(INSTANCES));
    let runs = pools.iter().cloned().map(|pool| {
        let barrier = barrier.clone();
        tokio::spawn(async move {
            barrier.wait().await;
            auction_server::db::migrate(&pool).await
        })
    });
    for (i, run) in futures_util::future::join_all(runs).await.into_iter().enumerate() {
        run.unwrap().unwrap_or_else(|e| panic!("instance {i} of {INSTANCES} did not migrate: {e}"));
    }
    let mut conn = env.mysql().await;
    let rows: Vec<(i64, bool)> = sqlx::query_as("SELECT version, success FROM _sqlx_migrations ORDER BY version")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    let expected: Vec<(i64, bool)> = auction_server::db::MIGRATOR.iter().map(|m| (m.version, true)).collect();
    assert_eq!(rows, expected, "each migration applied once, successfully");
    // The same schema as one instance alone makes.
    let alone = TestEnv::new().await;
    let pool = sqlx::MySqlPool::connect(&format!("{}/{}", mysql_base(), alone.database)).await.unwrap();
    auction_server::db::migrate(&pool).await.unwrap();
    assert_eq!(schema(&mut conn).await, schema(&mut alone.mysql().await).await);
}
