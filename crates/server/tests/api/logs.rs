//! Logs operators can use: each service, run as its own process with `LOG_FORMAT=json`, writes
//! nothing but JSON lines with a timestamp, level, target and message; a REST request's id goes
//! from its header to the response and to its completion line (with method, route template and
//! status); a bid's lines carry its `bid_id` and its connection's `auction_id`, `user` and
//! `conn_id`. Text logs written to a pipe carry no colour codes.

use auction_proto::ws::ServerFrame;
use chrono::DateTime;
use serde_json::Value;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::helpers::*;

/// Starts `binary` with JSON logs, at debug level for this crate (bids log at debug).
async fn json_process(env: &TestEnv, binary: &str, instance_id: &str) -> Process {
    env.process(binary, instance_id, &[("LOG_FORMAT", "json"), ("LOG_LEVEL", "info,auction_server=debug")]).await
}

/// Parses every line, failing on any that is not a JSON object with the fields every line has.
fn parse_every_line(lines: &[String]) -> Vec<Value> {
    assert!(!lines.is_empty(), "the service wrote nothing");
    lines
        .iter()
        .map(|line| {
            let json: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            let timestamp = json["timestamp"].as_str().unwrap_or_else(|| panic!("no timestamp: {line}"));
            DateTime::parse_from_rfc3339(timestamp).unwrap_or_else(|e| panic!("timestamp {timestamp:?}: {e}"));
            let level = json["level"].as_str().unwrap_or_default();
            assert!(["ERROR", "WARN", "INFO", "DEBUG", "TRACE"].contains(&level), "level: {line}");
            assert!(json["target"].as_str().is_some_and(|t| !t.is_empty()), "no target: {line}");
            assert!(json["message"].is_string(), "no message: {line}");
            json
        })
        .collect()
}

/// The span named `name` on `line`, if the line was logged inside one.
fn span<'a>(line: &'a Value, name: &str) -> Option<&'a Value> {
    line["spans"].as_array()?.iter().find(|span| span["name"] == name)
}

/// The completion line of the request with id `request_id`; fails the test if there is none.
fn finished<'a>(lines: &'a [Value], request_id: &str) -> &'a Value {
    let found = lines
        .iter()
        .filter(|line| line["message"] == "request finished")
        .filter_map(|line| span(line, "request"))
        .find(|request| request["request_id"] == request_id);
    found.unwrap_or_else(|| panic!("no completion line for request {request_id}"))
}

/// Checks a completion line's request span: the route template, status, and a latency.
fn assert_request(request: &Value, method: &str, route: &str, status: u16) {
    assert_eq!((request["method"].as_str(), request["route"].as_str()), (Some(method), Some(route)), "{request}");
    assert_eq!(request["status"], status, "{request}");
    assert!(request["latency_ms"].as_f64().is_some_and(|ms| ms >= 0.0), "{request}");
}

/// Sends `GET path` with `x-request-id: id` (if any); the status and the id the response echoes.
async fn get_with_id(api: &Api, path: &str, id: Option<&str>) -> (u16, String) {
    let mut request = api.http.get(api.url(path));
    if let Some(id) = id {
        request = request.header("x-request-id", id);
    }
    let response = request.send().await.expect("get");
    let echoed = response.headers().get("x-request-id").expect("the response has an x-request-id");
    (response.status().as_u16(), echoed.to_str().expect("a plain request id").to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_auction_service_logs_json_lines_that_follow_a_request_id() {
    let env = TestEnv::new().await;
    let service = json_process(&env, env!("CARGO_BIN_EXE_auction-service"), "logs-auction").await;
    let auction = service.api.create_open(600, "10", 0).await;
    let id = auction.auction_id.as_str();

    let path = format!("/api/v1/auctions/{id}");
    assert_eq!(get_with_id(&service.api, &path, Some("ops-ticket-42.a")).await, (200, "ops-ticket-42.a".to_owned()));
    // A missing, oversized or unsafe id is replaced by a fresh one, which the response tells.
    let mut fresh = Vec::new();
    for bad in [None, Some("x".repeat(129)), Some("two words".to_owned()), Some("a\"b".to_owned())] {
        let (status, echoed) = get_with_id(&service.api, "/api/v1/leader", bad.as_deref()).await;
        assert_eq!(status, 200);
        assert!(Some(&echoed) != bad.as_ref() && !echoed.is_empty() && echoed.len() <= 128, "{echoed:?}");
        fresh.push(echoed);
    }
    assert_eq!(get_with_id(&service.api, "/no/such/path", Some("lost-1")).await, (404, "lost-1".to_owned()));

    let lines = parse_every_line(&service.stop().await);
    assert_request(finished(&lines, "ops-ticket-42.a"), "GET", "/api/v1/auctions/{auction_id}", 200);
    for id in &fresh {
        assert_request(finished(&lines, id), "GET", "/api/v1/leader", 200);
    }
    assert_request(finished(&lines, "lost-1"), "GET", "unmatched", 404);
    let create = lines
        .iter()
        .filter_map(|line| span(line, "request"))
        .find(|request| request["method"] == "POST" && request["route"] == "/api/v1/auctions")
        .expect("a line of the create request");
    assert!(create["request_id"].as_str().is_some_and(|id| !id.is_empty()), "{create}");
    assert!(
        lines.iter().all(|line| !line.to_string().contains(&format!("/api/v1/auctions/{id}"))),
        "a line names the raw path rather than the route"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bidding_service_logs_each_bid_with_its_bid_id_and_connection() {
    let mut env = TestEnv::new().await;
    let api = env.auction_service().await;
    let auction = api.create_open(600, "10", 0).await;
    let id = auction.auction_id.as_str();
    let service = json_process(&env, env!("CARGO_BIN_EXE_bidding-service"), "logs-bidding").await;
    assert_eq!(get_with_id(&service.api, "/health", Some("probe-7")).await, (200, "probe-7".to_owned()));

    let node = Node { addr: service.addr };
    let mut handshake = node.ws_url(id, "alice").into_client_request().unwrap();
    handshake.headers_mut().insert("x-request-id", "hello-ws-1".parse().unwrap());
    let (stream, response) = tokio_tungstenite::connect_async(handshake).await.expect("ws connect");
    assert_eq!(response.headers().get("x-request-id").map(|v| v.as_bytes()), Some(b"hello-ws-1".as_slice()));
    let mut alice = Ws::from_stream(stream);
    assert!(matches!(alice.next().await, ServerFrame::Snapshot(_)));
    assert!(matches!(alice.bid("10", Some("log-bid-1")).await, ServerFrame::BidAccepted(_)));
    let (mut bob, _) = node.connect(id, "bob").await;
    // Without a client id the server makes one, and the lines name that one.
    let server_made = match bob.bid("5", None).await {
        ServerFrame::BidRejected(rejected) => rejected.bid_id.expect("a server-made bid id").as_str().to_owned(),
        other => panic!("{other:?}"),
    };
    assert!(matches!(bob.bid("11", Some("log-bid-2")).await, ServerFrame::BidAccepted(_)));

    let lines = parse_every_line(&service.stop().await);
    assert_request(finished(&lines, "probe-7"), "GET", "/health", 200);
    assert_request(finished(&lines, "hello-ws-1"), "GET", "/ws/auction/{auction_id}", 101);
    let bid_line = |bid_id: &str| {
        let found = lines.iter().find(|line| line["bid_id"] == bid_id);
        found.unwrap_or_else(|| panic!("no line for bid {bid_id}"))
    };
    let accepted = bid_line("log-bid-1");
    assert_eq!((accepted["message"].as_str(), accepted["level"].as_str()), (Some("bid accepted"), Some("DEBUG")));
    let alice_connection = span(accepted, "connection").expect("the bid's line is in its connection's span");
    assert_eq!(alice_connection["auction_id"], id);
    assert_eq!(alice_connection["user"], "alice");
    assert_eq!(alice_connection["request_id"], "hello-ws-1");
    let conn_id = alice_connection["conn_id"].as_str().expect("a connection id");
    assert!(!conn_id.is_empty());

    let bob_connection = span(bid_line("log-bid-2"), "connection").expect("bob's connection span");
    assert_eq!(bob_connection["user"], "bob");
    assert_ne!(bob_connection["conn_id"], conn_id, "each connection has its own id");
    let rejected = bid_line(&server_made);
    assert_eq!(
        (rejected["message"].as_str(), rejected["reason"].as_str()),
        (Some("bid rejected"), Some("bid_too_low"))
    );
    assert_eq!(span(rejected, "connection"), Some(bob_connection), "one connection, one span");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_analytics_service_logs_json_lines_with_request_ids() {
    let env = TestEnv::new().await;
    let service = json_process(&env, env!("CARGO_BIN_EXE_analytics-service"), "logs-analytics").await;
    assert_eq!(get_with_id(&service.api, "/health", Some("probe-8")).await, (200, "probe-8".to_owned()));
    assert_eq!(get_with_id(&service.api, "/metrics", Some("scrape-9")).await, (200, "scrape-9".to_owned()));

    let lines = parse_every_line(&service.stop().await);
    assert_request(finished(&lines, "probe-8"), "GET", "/health", 200);
    assert_request(finished(&lines, "scrape-9"), "GET", "/metrics", 200);
    let info = lines.iter().find(|line| line["message"] == "request finished").expect("a completion line");
    assert_eq!(info["level"], "INFO", "operators see each request at the default level");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_logs_to_a_pipe_have_no_colour_codes() {
    let env = TestEnv::new().await;
    // An empty NO_COLOR allows colours: only the pipe may turn them off.
    let extra = [("LOG_FORMAT", "text"), ("NO_COLOR", "")];
    let (_child, mut output) = env.starting_process(env!("CARGO_BIN_EXE_auction-service"), "plain", &extra);
    let listening = output.line_matching(|line| line.contains("listening")).await;
    assert!(listening.is_some(), "the service stopped before listening: {:?}", output.seen);
    let coloured: Vec<&String> = output.seen.iter().filter(|line| line.contains('\x1b')).collect();
    assert!(coloured.is_empty(), "escape codes in logs written to a pipe: {coloured:?}");
}
