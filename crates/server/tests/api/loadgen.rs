//! A short, gentle `auction-loadgen` run against the real stack: the report has the documented
//! shape and its books balance.

use auction_loadgen::opt::Opt;
use clap::Parser;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_run_reports_consistent_numbers() {
    let mut env = TestEnv::new().await;
    let api = env.auction_service().await;
    let a = env.bidding_service().await;
    let b = env.bidding_service().await;
    let opt = Opt::parse_from([
        "auction-loadgen",
        "--api-url",
        &api.base,
        "--ws-url",
        &format!("ws://{},ws://{}", a.addr, b.addr),
        "--auctions",
        "2",
        "--bidders",
        "8",
        "--watchers",
        "4",
        "--rate",
        "100",
        "--warmup",
        "500ms",
        "--duration",
        "2s",
    ]);
    let report = auction_loadgen::run(opt).await.expect("loadgen run");
    let json = serde_json::to_value(&report).unwrap();
    let n = |k: &str| json[k].as_u64().unwrap();
    assert_eq!(n("accepted") + n("rejected_total") + n("errors"), n("attempted"), "{json}");
    assert_eq!(
        json["rejected"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum::<u64>(),
        n("rejected_total")
    );
    assert_eq!((n("nodes"), n("auctions"), n("bidders"), n("watchers")), (2, 2, 8, 4));
    assert!(n("attempted") >= 100, "{json}");
    assert!(n("accepted") > 0, "{json}");
    assert_eq!(n("errors"), 0, "{json}");
    assert_eq!(json["ack_latency_ms"]["count"].as_u64().unwrap(), n("attempted"));
    assert!(json["fanout_latency_ms"]["count"].as_u64().unwrap() > 0, "{json}");
    // Everything the run saw as accepted is in Redis.
    let (_, list) = api.get("/api/v1/auctions").await;
    let bids: u64 = list["auctions"].as_array().unwrap().iter().map(|a| a["bid_count"].as_u64().unwrap()).sum();
    assert!(bids >= n("accepted"), "{bids} bids in redis, {} accepted", n("accepted"));
}
