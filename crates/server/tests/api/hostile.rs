//! A corpus of hostile input over WebSocket and REST: every item gets a clear error, nothing
//! panics, and the auction's state is byte-for-byte what it was.

use std::sync::{Mutex, Once};

use auction_proto::ws::ServerFrame;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::*;

/// The name of every thread of the corpus test's own runtime, where the services it starts run
/// (tasks and blocking work alike). The test binary runs tests in parallel in one process, so a
/// process-wide panic hook sees every test's panics: it keeps only those on these threads.
const CORPUS_THREADS: &str = "hostile-corpus";

/// Panics raised on the corpus test's runtime, recorded by a process-wide hook.
static SERVICE_PANICS: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn record_service_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if std::thread::current().name() == Some(CORPUS_THREADS) {
                SERVICE_PANICS.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(info.to_string());
            }
            previous(info);
        }));
    });
}

/// Hostile WebSocket text frames (none is a well-formed bid, so none may reach the bid script).
fn ws_corpus() -> Vec<String> {
    let mut corpus: Vec<String> = [
        "",
        " ",
        "{",
        "}",
        "[",
        "]",
        "null",
        "true",
        "0",
        "\"\"",
        "nul",
        "{\"type\":",
        "{\"type\"}",
        "{type:\"ping\"}",
        "{'type':'ping'}",
        "{\"type\":\"ping\",}",
        "NaN",
        "Infinity",
        "-Infinity",
        "\u{0}",
        "\u{1b}[2J",
        "\u{feff}{}",
        "{\"type\":null}",
        "{\"type\":1}",
        "{\"type\":[\"ping\"]}",
        "{\"type\":{\"a\":1}}",
        "{\"type\":true}",
        "{\"type\":\"PLACE_BID\"}",
        "{\"type\":\"place_bid \"}",
        "{\"type\":\"place-bid\"}",
        "{\"type\":\"\"}",
        "{\"type\":\"place_bid\",\"type\":\"teleport\"}",
        "{\"type\":\"teleport\",\"amount\":\"1\"}",
        "{\"type\":\"place_bid\"}",
        "{\"type\":\"place_bid\",\"amount\":null}",
        "{\"type\":\"place_bid\",\"amount\":true}",
        "{\"type\":\"place_bid\",\"amount\":[]}",
        "{\"type\":\"place_bid\",\"amount\":{}}",
        "{\"type\":\"place_bid\",\"amount\":[1]}",
        "{\"type\":\"place_bid\",\"amount\":\"10\",\"bid_id\":7}",
        "{\"type\":\"place_bid\",\"amount\":\"10\",\"bid_id\":null}",
        "{\"type\":\"place_bid\",\"amount\":\"10\",\"extra\":1}",
        "{\"type\":\"place_bid\",\"amount\":1e309}",
        "{\"type\":\"place_bid\",\"amount\":NaN}",
        "{\"type\":\"place_bid\",\"amount\":Infinity}",
        "{\"type\":\"place_bid\",\"amount\":-Infinity}",
        "{\"type\":\"place_bid\",\"amount\":\"10\"",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    // Amounts that are not money: each answered as invalid_amount.
    for amount in [
        "\"abc\"",
        "\"-1\"",
        "\"-0.01\"",
        "\"0\"",
        "\"0.00\"",
        "\"1.001\"",
        "\"0.001\"",
        "\"1e2\"",
        "\"1e400\"",
        "\"NaN\"",
        "\"Infinity\"",
        "\"-Infinity\"",
        "\" 10\"",
        "\"10 \"",
        "\"+10\"",
        "\"0x10\"",
        "\"10,00\"",
        "\"١٠\"",
        "\"10.\"",
        "\".5\"",
        "\"1_000\"",
        "\"\"",
        "\"10\\u0000\"",
        "1e20",
        "-5",
        "0",
        "0.001",
        "1.005",
        "-0",
        "1e-7",
        "123456789012345678901234567890",
        "-123456789012345678901234567890",
        "100000000000.01",
        "1.7976931348623157e308",
        "5e-324",
        "9007199254740993",
    ] {
        corpus.push(format!("{{\"type\":\"place_bid\",\"amount\":{amount}}}"));
        corpus.push(format!("{{\"type\":\"place_bid\",\"amount\":{amount},\"bid_id\":\"h-{}\"}}", corpus.len()));
    }
    corpus.push(format!("{{\"type\":\"place_bid\",\"amount\":\"{}\"}}", "9".repeat(3000)));
    // Bid ids with separators, quotes, controls, and lengths past the limit.
    for id in [
        "a:b",
        "a\\nb",
        "a\\u0000b",
        "a\\u001bb",
        "{x}",
        "a|b",
        "a b",
        "a/b",
        "a\\\\b",
        "a\\\"b",
        "é",
        "🙂",
        "",
        "a\\tb",
        "a%3Ab",
        "a;DROP TABLE bids",
        "$(reboot)",
        "\\u2028",
    ] {
        corpus.push(format!("{{\"type\":\"place_bid\",\"amount\":\"10\",\"bid_id\":\"{id}\"}}"));
    }
    corpus.push(format!("{{\"type\":\"place_bid\",\"amount\":\"10\",\"bid_id\":\"{}\"}}", "x".repeat(65)));
    corpus.push(format!("{{\"type\":\"place_bid\",\"amount\":\"10\",\"bid_id\":\"{}\"}}", "x".repeat(3000)));
    // Deep nesting, inside and past the frame size.
    corpus.push(format!("{}{}", "[".repeat(1000), "]".repeat(1000)));
    corpus.push(format!("{{\"type\":\"ping\",\"x\":{}1{}}}", "[".repeat(1500), "]".repeat(1500)));
    corpus.push(format!("{}{}", "{\"a\":".repeat(600), "1}".repeat(600)));
    // Every truncation of a well-formed bid.
    let bid = r#"{"type":"place_bid","amount":"10.00","bid_id":"whole"}"#;
    for cut in 1..bid.len() {
        corpus.push(bid[..cut].to_owned());
    }
    corpus
}

/// Hostile REST requests: (method, path, body) answered with 4xx and the JSON error shape.
fn rest_corpus() -> Vec<(&'static str, String, Option<String>)> {
    let mut corpus = Vec::new();
    let valid =
        json!({"start_time": "2030-01-01T00:00:00Z", "end_time": "2030-01-02T00:00:00Z", "starting_bid": "10.00"});
    let with = |key: &str, value: Value| {
        let mut body = valid.clone();
        body[key] = value;
        body.to_string()
    };
    let bodies = [
        "".to_owned(), "{".to_owned(), "[]".to_owned(), "null".to_owned(), "\"x\"".to_owned(), "{}".to_owned(),
        "{\"start_time\":".to_owned(), format!("{}{}", "[".repeat(500), "]".repeat(500)),
        "{\"starting_bid\":NaN}".to_owned(), "\u{0}\u{1}\u{2}".to_owned(),
        with("starting_bid", json!("-1")), with("starting_bid", json!("0")), with("starting_bid", json!("1.001")),
        with("starting_bid", json!(1e20)), with("starting_bid", json!("NaN")), with("starting_bid", json!("Infinity")),
        with("starting_bid", json!(true)), with("starting_bid", json!(null)), with("starting_bid", json!([1])),
        with("starting_bid", json!("9".repeat(5000))),
        with("start_time", json!("yesterday")), with("start_time", json!(1_700_000_000)), with("start_time", json!("2030-13-01T00:00:00Z")),
        with("end_time", json!("2029-01-01T00:00:00Z")), with("end_time", json!("")),
        with("title", json!("a\u{0}b")), with("title", json!("x".repeat(300))), with("title", json!(5)),
        with("extension_window_s", json!(-1)), with("extension_window_s", json!(1e10)), with("extension_s", json!("30")),
        with("extension_s", json!(0)), with("colour", json!("red")),
        r#"{"start_time":"2030-01-01T00:00:00Z","start_time":"bad","end_time":"2030-01-02T00:00:00Z","starting_bid":"1"}"#.to_owned(),
        r#"{"start_time":"2030-01-01T00:00:00Z","end_time":"2030-01-02T00:00:00Z","starting_bid":"1""#.to_owned(),
    ];
    for body in bodies {
        corpus.push(("POST", "/api/v1/auctions".to_owned(), Some(body)));
    }
    for body in [
        "",
        "{",
        "{\"increments\":null}",
        "{\"increments\":[]}",
        "{\"increments\":[{\"from\":\"1\",\"increment\":\"1\"}]}",
        "{\"increments\":[{\"from\":\"0\",\"increment\":\"-1\"}]}",
        "{\"increments\":[{\"from\":\"0\",\"increment\":\"NaN\"}]}",
        "{\"increments\":[{\"from\":\"0\",\"increment\":\"1\",\"x\":1}]}",
        "{\"bands\":[]}",
    ] {
        corpus.push(("PUT", "/api/v1/rules".to_owned(), Some(body.to_owned())));
    }
    let long = "a".repeat(4096);
    for id in ["a%3Ab", "a%22b", "a%0Ab", "a%00b", "%C3%A9", "%F0%9F%99%82", "a%20b", "a%7Bb%7D", long.as_str()] {
        corpus.push(("GET", format!("/api/v1/auctions/{id}"), None));
        corpus.push(("POST", format!("/api/v1/auctions/{id}/cancel"), Some("{}".to_owned())));
    }
    for query in [
        "status=NaN",
        "status=",
        "limit=-1",
        "limit=0",
        "limit=99999999999999999999",
        "limit=abc",
        "x=1",
        "status=active&status=ended",
    ] {
        corpus.push(("GET", format!("/api/v1/auctions?{query}"), None));
    }
    corpus
}

/// Runs on a runtime of its own, whose threads carry [`CORPUS_THREADS`] as their name, so that
/// only the panics of the services this test started count against it.
#[test]
fn two_hundred_hostile_inputs_change_nothing_and_panic_nothing() {
    record_service_panics();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(CORPUS_THREADS)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(hostile_inputs_change_nothing());
    // What the services do while they stop counts too.
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    let panics = SERVICE_PANICS.lock().unwrap().clone();
    assert!(panics.is_empty(), "the services panicked: {panics:?}");
}

async fn hostile_inputs_change_nothing() {
    let mut env = TestEnv::new().await;
    let api = env.auction_service().await;
    let node = env.bidding_service().await;
    let auction = api.create_open(600, "10", 0).await;
    let id = auction.auction_id.to_string();
    let (mut ws, _) = node.connect(&id, "alice").await;
    assert!(matches!(ws.bid("10", None).await, ServerFrame::BidAccepted(_)));
    let before = env.dump_auction(&id).await;
    let (_, rules_before) = api.get("/api/v1/rules").await;
    let (_, list_before) = api.get("/api/v1/auctions").await;

    let ws_inputs = ws_corpus();
    let rest_inputs = rest_corpus();
    assert!(ws_inputs.len() + rest_inputs.len() >= 200, "only {} inputs", ws_inputs.len() + rest_inputs.len());

    let (mut ws, _) = node.connect(&id, "mallory").await;
    for text in &ws_inputs {
        ws.send_text(text).await;
        let answer = ws
            .next_matching(|f| match f {
                ServerFrame::Error(e) => Some(e.message.clone()),
                ServerFrame::BidRejected(r) => Some(r.message.clone()),
                ServerFrame::BidAccepted(a) => panic!("{text:.80} was accepted: {a:?}"),
                _ => None,
            })
            .await;
        assert!(!answer.is_empty(), "no explanation for {text:.80}");
    }
    for frame in [vec![], vec![0u8, 159, 146, 150], b"{\"type\":\"ping\"}".to_vec()] {
        ws.send_message(Message::binary(frame)).await;
        assert_eq!(ws.error_code().await, "unsupported_frame");
    }
    // Still serving.
    ws.send(&auction_proto::ClientFrame::Ping).await;
    ws.next_matching(|f| matches!(f, ServerFrame::Pong).then_some(())).await;

    for (method, path, body) in &rest_inputs {
        let mut request = api.http.request(method.parse().unwrap(), api.url(path));
        if let Some(body) = body {
            request = request.header("content-type", "application/json").body(body.clone());
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        assert!((400..500).contains(&status), "{method} {path:.60} {body:.80?} -> {status} {text}");
        let error: Value =
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("{method} {path:.60}: not JSON: {text}"));
        assert!(
            error["error"]["code"].is_string() && !error["error"]["message"].as_str().unwrap_or("").is_empty(),
            "{text}"
        );
    }

    assert_eq!(env.dump_auction(&id).await, before, "the auction's keys changed");
    assert_eq!(api.get("/api/v1/rules").await.1, rules_before);
    let (_, list_after) = api.get("/api/v1/auctions").await;
    let ids = |l: &Value| l["auctions"].as_array().unwrap().iter().map(|a| a["auction_id"].clone()).collect::<Vec<_>>();
    assert_eq!(ids(&list_after), ids(&list_before), "an auction was created");
}
