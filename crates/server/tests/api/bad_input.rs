//! Bad input at every entry point: a clear error, and no change of state.

use auction_proto::ws::ServerFrame;
use auction_proto::{ClientFrame, RejectReason};
use chrono::Utc;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_get_error_frames_and_the_connection_stays_usable() {
    let mut env = TestEnv::new().await;
    let api = env.auction_service().await;
    let node = env.bidding_service().await;
    let auction = api.create_open(600, "10", 0).await;
    let (mut ws, before) = node.connect(auction.auction_id.as_str(), "alice").await;

    for (text, code) in [
        ("{not json", "malformed_json"),
        ("", "malformed_json"),
        (r#"{"type":"teleport"}"#, "unknown_type"),
        (r#"{"amount":"10"}"#, "invalid_frame"),
        (r#"{"type":"place_bid"}"#, "invalid_frame"),
        (r#"{"type":"place_bid","amount":{"value":1}}"#, "invalid_frame"),
        (r#"{"type":"place_bid","amount":"10","bid_id":"a:b"}"#, "invalid_frame"),
        (r#"{"type":"place_bid","amount":"10","bid_id":"a\nb"}"#, "invalid_frame"),
        ("[1,2,3]", "invalid_frame"),
        (&format!(r#"{{"type":"place_bid","amount":"10","bid_id":"{}"}}"#, "x".repeat(4000)), "invalid_frame"),
        (&format!(r#"{{"type":"ping","pad":"{}"}}"#, "x".repeat(5000)), "frame_too_large"),
    ] {
        ws.send_text(text).await;
        assert_eq!(ws.error_code().await, code, "for {text:.60}");
    }
    ws.send_message(Message::binary(vec![1, 2, 3])).await;
    assert_eq!(ws.error_code().await, "unsupported_frame");

    for bad in [
        r#""abc""#,
        r#""-1""#,
        r#""0""#,
        r#""1.001""#,
        r#""1e400""#,
        r#""NaN""#,
        r#""Infinity""#,
        "1e20",
        "-5",
        "0.001",
    ] {
        ws.send_text(&format!(r#"{{"type":"place_bid","amount":{bad},"bid_id":"bad-amount"}}"#)).await;
        match ws.outcome().await {
            ServerFrame::BidRejected(r) => {
                assert_eq!(r.reason, RejectReason::InvalidAmount, "{bad}");
                assert!(!r.message.is_empty());
            }
            other => panic!("{bad}: {other:?}"),
        }
    }
    // Above the configured maximum (100 billion by default).
    match ws.bid("100000000000.01", None).await {
        ServerFrame::BidRejected(r) => assert_eq!(r.reason, RejectReason::InvalidAmount),
        other => panic!("{other:?}"),
    }

    // Still usable, and nothing changed.
    ws.send(&ClientFrame::Ping).await;
    ws.next_matching(|f| matches!(f, ServerFrame::Pong).then_some(())).await;
    let after = ws.sync().await;
    assert_eq!((after.seq, after.bid_count, after.current_bid), (before.seq, 0, None));
    assert!(matches!(ws.bid("10", None).await, ServerFrame::BidAccepted(_)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_over_the_hard_limit_closes_with_1009() {
    let mut env = TestEnv::new().await;
    let api = env.auction_service().await;
    let node = env.bidding_service().await;
    let auction = api.create_open(600, "10", 0).await;
    let (ws, _) = node.connect(auction.auction_id.as_str(), "alice").await;
    let huge = format!(r#"{{"type":"place_bid","amount":"{}"}}"#, "9".repeat(10 * 1024 * 1024));
    assert_eq!(ws.send_expecting_close(huge).await, Some(1009));
    let (mut other, snapshot) = node.connect(auction.auction_id.as_str(), "bob").await;
    assert_eq!(snapshot.bid_count, 0);
    assert!(matches!(other.bid("10", None).await, ServerFrame::BidAccepted(_)), "the node is fine");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_ids_and_unknown_auctions_are_refused_before_the_upgrade() {
    let mut env = TestEnv::new().await;
    let api = env.auction_service().await;
    let node = env.bidding_service().await;
    let auction = api.create_open(600, "10", 0).await;
    let id = auction.auction_id.as_str();
    let long = "u".repeat(4096);
    for user in ["a%3Ab", "a%22b", "a%0Ab", long.as_str(), ""] {
        assert_eq!(node.refused_status(&format!("/ws/auction/{id}?user_id={user}")).await, 400, "user {user:.20}");
    }
    assert_eq!(node.refused_status(&format!("/ws/auction/{id}")).await, 400, "user_id missing");
    for bad_id in ["a%3Ab", "a%22b", "a%0Ab", long.as_str()] {
        assert_eq!(node.refused_status(&format!("/ws/auction/{bad_id}?user_id=alice")).await, 400, "{bad_id:.20}");
    }
    assert_eq!(node.refused_status("/ws/auction/nosuchauction?user_id=alice").await, 404);

    // The HTTP answer names the field.
    let response = api.http.get(format!("http://{}/ws/auction/{id}?user_id=a%3Ab", node.addr)).send().await.unwrap();
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["field"], "user_id");
    assert!(body["error"]["message"].as_str().unwrap().contains("':'"), "{body}");

    let (status, body) = api.get("/api/v1/auctions/nosuchauction").await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("not_found")));
    let (status, body) = api.get("/api/v1/auctions/a%3Ab").await;
    assert_eq!((status, body["error"]["field"].as_str()), (400, Some("auction_id")));
    let (status, _) = api.get(&format!("/api/v1/auctions/{long}")).await;
    assert_eq!(status, 400);
    // Not even UTF-8: the same JSON error, on every route with an id.
    for path in ["/api/v1/auctions/%FF", "/api/v1/auctions/%FF/bids"] {
        let (status, body) = api.get(path).await;
        assert_eq!((status, body["error"]["field"].as_str()), (400, Some("auction_id")), "{path}: {body}");
    }
    let (status, body) = api.post("/api/v1/auctions/%FF/extend", &json!({"seconds": 1})).await;
    assert_eq!((status, body["error"]["field"].as_str()), (400, Some("auction_id")), "{body}");
    assert_eq!(api.auction(id).await.bid_count, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_create_requests_name_the_field_and_create_nothing() {
    let mut env = TestEnv::new().await;
    let api = env.auction_service().await;
    let now = Utc::now();
    let start = (now + chrono::Duration::minutes(1)).to_rfc3339();
    let end = (now + chrono::Duration::minutes(10)).to_rfc3339();
    let valid = json!({"start_time": start, "end_time": end, "starting_bid": "10.00"});
    let with = |key: &str, value: serde_json::Value| {
        let mut body = valid.clone();
        body[key] = value;
        body
    };
    let cases = [
        (with("end_time", json!(start)), "end_time"),
        (with("end_time", json!((now - chrono::Duration::minutes(1)).to_rfc3339())), "end_time"),
        (with("starting_bid", json!("-1")), "starting_bid"),
        (with("starting_bid", json!("0")), "starting_bid"),
        (with("starting_bid", json!(0)), "starting_bid"),
        (with("starting_bid", json!("1.001")), "starting_bid"),
        (with("starting_bid", json!("abc")), "starting_bid"),
        (with("start_time", json!("tomorrow")), "start_time"),
        (with("end_time", json!("2026-13-45T99:00:00Z")), "end_time"),
        (with("colour", json!("red")), "colour"),
        (with("title", json!("x".repeat(201))), "title"),
        (with("title", json!(" ".repeat(201))), "title"),
        (with("title", json!("a\u{0007}b")), "title"),
        (with("extension_window_s", json!(-1)), "extension_window_s"),
        (with("extension_s", json!(0)), "extension_s"),
        (json!({"end_time": end, "starting_bid": "1"}), "start_time"),
        // RFC 3339 has four-digit years; this close is in the year 10000 once in UTC.
        (
            json!({"start_time": "9999-12-31T20:00:00Z", "end_time": "9999-12-31T23:30:00-01:00", "starting_bid": "1"}),
            "end_time",
        ),
    ];
    for (body, field) in cases {
        let (status, answer) = api.post_auction(&body).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert_eq!(answer["error"]["code"], "invalid_request");
        assert_eq!(answer["error"]["field"], field, "{body}: {answer}");
        assert!(answer["error"]["message"].as_str().unwrap().starts_with(field), "{answer}");
    }
    // Not JSON at all, and too big.
    let response = api.http.post(api.url("/api/v1/auctions")).body("{oops").send().await.unwrap();
    assert_eq!(response.status(), 400);
    let response = api.http.post(api.url("/api/v1/auctions")).body("x".repeat(100_000)).send().await.unwrap();
    assert_eq!(response.status(), 413);
    let (_, list) = api.get("/api/v1/auctions").await;
    assert_eq!(list["auctions"], json!([]), "nothing was created");
    let (status, body) = api.get("/api/v1/auctions?status=open").await;
    assert_eq!((status, body["error"]["field"].as_str()), (400, Some("status")));
    let (status, _) = api.get("/api/v1/auctions?limit=0").await;
    assert_eq!(status, 400);
    let (status, _) = api.get("/api/v1/nothing-here").await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_extension_past_the_year_9999_is_refused() {
    let mut env = TestEnv::new().await;
    let api = env.auction_service().await;
    let (status, auction) = api
        .post_auction(
            &json!({"start_time": "9999-12-31T00:00:00Z", "end_time": "9999-12-31T23:00:00Z", "starting_bid": "1"}),
        )
        .await;
    assert_eq!(status, 201, "{auction}");
    let id = auction["auction_id"].as_str().unwrap();
    let (status, body) = api.post(&format!("/api/v1/auctions/{id}/extend"), &json!({"seconds": 86_400})).await;
    assert_eq!((status, body["error"]["field"].as_str()), (400, Some("seconds")), "{body}");
    let (status, body) = api.post(&format!("/api/v1/auctions/{id}/extend"), &json!({"seconds": 3_599})).await;
    assert_eq!((status, body["end_time"].as_str()), (200, Some("9999-12-31T23:59:59Z")), "{body}");
}
