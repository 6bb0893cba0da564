//! Each service reads only its own settings: the bidding service starts and takes bids whatever
//! MySQL's settings say, or with none at all, while the services that use MySQL still refuse a
//! bad DSN at start, naming the variable.

use std::process::Stdio;

use auction_proto::ServerFrame;

use crate::helpers::*;

/// `/health` answers 200 and a bid on `auction` is accepted.
async fn serves_a_bid(node: Node, auction: &str) {
    let health = reqwest::get(format!("http://{}/health", node.addr)).await.unwrap();
    assert_eq!(health.status(), 200);
    let (mut ws, snapshot) = node.connect(auction, "alice").await;
    let outcome = ws.bid(&snapshot.min_next_bid.to_string(), Some("first")).await;
    assert!(matches!(outcome, ServerFrame::BidAccepted(_)), "{outcome:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bidding_service_needs_no_mysql_settings() {
    let mut env = TestEnv::new().await;
    let auction = env.auction_service().await.create_open(60, "10.00", 0).await;
    env.unset("MYSQL_DSN");
    assert!(!env.vars().contains_key("MYSQL_DSN"));
    let node = env.bidding_service().await;
    serves_a_bid(node, auction.auction_id.as_str()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bidding_service_ignores_a_bogus_mysql_dsn() {
    let mut env = TestEnv::new().await;
    let auction = env.auction_service().await.create_open(60, "10.00", 0).await;
    // The real binary, so that the start-up path is the one operators run.
    let bidding = env.process(env!("CARGO_BIN_EXE_bidding-service"), "bidding-1", &[("MYSQL_DSN", "nonsense")]).await;
    serves_a_bid(Node { addr: bidding.addr }, auction.auction_id.as_str()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_auction_and_analytics_services_refuse_a_bogus_mysql_dsn() {
    let env = TestEnv::new().await;
    for (binary, service) in [
        (env!("CARGO_BIN_EXE_auction-service"), "auction-service"),
        (env!("CARGO_BIN_EXE_analytics-service"), "analytics-service"),
    ] {
        let run = tokio::process::Command::new(binary)
            .envs(env.vars())
            .env("MYSQL_DSN", "nonsense")
            .env("CONFIG_FILE", "/dev/null")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output();
        let output = tokio::time::timeout(WAIT, run).await.expect("the service should stop at once").unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{service}: {stderr}");
        let expected = format!("{service}: invalid configuration: environment variable MYSQL_DSN: \"nonsense\"");
        assert!(stderr.starts_with(&expected), "{stderr}");
    }
}
