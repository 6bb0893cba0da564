//! Start-up before the servers: a service started while Redis or MySQL cannot be reached waits
//! for them, saying why at warn, and serves once they answer, in the same process; a bad
//! password still stops it at once, and a stop signal ends the wait.

use std::process::Stdio;

use crate::helpers::*;

/// Whether `line` (a JSON log line) is a warning whose message starts with `start`.
fn warns(line: &str, start: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(line)
        .is_ok_and(|json| json["level"] == "WARN" && json["message"].as_str().is_some_and(|m| m.starts_with(start)))
}

#[tokio::test]
async fn a_service_started_before_redis_and_mysql_serves_once_they_answer() {
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

    let waiting = output.line_matching(|line| warns(line, "redis is not ready yet")).await;
    assert!(waiting.is_some(), "no warning while redis was unreachable: {:?}", output.seen);
    redis.restore();
    let waiting = output.line_matching(|line| warns(line, "mysql is not ready yet")).await;
    assert!(waiting.is_some(), "no warning while mysql was unreachable: {:?}", output.seen);
    assert!(child.try_wait().unwrap().is_none(), "the service gave up: {:?}", output.seen);
    mysql.restore();

    let listening = output.line_matching(|line| listening_address(line).is_some()).await;
    let addr = listening.as_deref().and_then(listening_address);
    let addr = addr.unwrap_or_else(|| panic!("the service exited instead of serving: {:?}", output.seen));
    let health = reqwest::get(format!("http://{addr}/health")).await.unwrap();
    assert_eq!(health.status(), 200);
    let body: serde_json::Value = health.json().await.unwrap();
    assert_eq!(body["checks"]["redis"], "ok", "{body}");
    assert_eq!(body["checks"]["mysql"], "ok", "{body}");
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
