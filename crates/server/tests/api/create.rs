//! Creating an auction: a failure at any step leaves nothing a client can see or a complete
//! auction, and the `Idempotency-Key` makes a retry safe.

use std::time::{Duration, Instant};

use auction_proto::AuctionId;
use auction_server::store::{CreateOutcome, Keys, NewAuction};
use chrono::Utc;
use serde_json::json;

use crate::helpers::*;

/// An auction open from a second ago for `seconds`, titled `title`.
fn open_body(title: &str, seconds: i64) -> serde_json::Value {
    let now = Utc::now();
    json!({
        "title": title,
        "start_time": (now - chrono::Duration::seconds(1)).to_rfc3339(),
        "end_time": (now + chrono::Duration::seconds(seconds)).to_rfc3339(),
        "starting_bid": "10.00",
    })
}

/// POSTs a create with the given Idempotency-Key header values; status, body and whether the
/// answer says it replayed an earlier create.
async fn post_keyed(api: &Api, keys: &[&[u8]], body: &serde_json::Value) -> (u16, serde_json::Value, bool) {
    let mut request = api.http.post(api.url("/api/v1/auctions")).json(body);
    for key in keys {
        request = request.header("idempotency-key", reqwest::header::HeaderValue::from_bytes(key).unwrap());
    }
    let response = request.send().await.expect("post");
    let status = response.status().as_u16();
    let replayed = response.headers().get("idempotent-replayed").is_some_and(|v| v == "true");
    (status, response.json().await.unwrap_or(serde_json::Value::Null), replayed)
}

/// The ids of every auction the list shows.
async fn listed(api: &Api) -> Vec<String> {
    let (status, list) = api.get("/api/v1/auctions?limit=1000").await;
    assert_eq!(status, 200, "{list}");
    list["auctions"].as_array().unwrap().iter().map(|a| a["auction_id"].as_str().unwrap().to_owned()).collect()
}

/// The auction hashes under the test's prefix (`auction:{A}`, none of its other keys).
async fn auction_hashes(env: &TestEnv) -> Vec<String> {
    let mut conn = env.redis_connection().await;
    let keys: Vec<String> =
        redis::cmd("KEYS").arg(format!("{}auction:*", env.prefix)).query_async(&mut conn).await.unwrap();
    keys.into_iter().filter(|k| k.ends_with('}')).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_whose_deadline_cannot_be_written_leaves_no_auction_and_its_retry_makes_one() {
    let mut env = TestEnv::new().await;
    let api = env.auction_service().await;
    let deadlines = Keys::new(&env.prefix).deadlines();
    let mut conn = env.redis_connection().await;
    // The scheduler's index as a string: every ZADD to it fails (WRONGTYPE).
    let (): () = redis::cmd("SET").arg(&deadlines).arg("not a sorted set").query_async(&mut conn).await.unwrap();

    let body = open_body("Brass lamp", 60);
    let (status, answer, _) = post_keyed(&api, &[b"create-lamp-1"], &body).await;
    assert_eq!(status, 503, "{answer}");
    assert_eq!(listed(&api).await, Vec::<String>::new(), "a failed create shows no auction");
    assert_eq!(auction_hashes(&env).await, Vec::<String>::new(), "a failed create leaves no auction to bid on");

    let (): () = redis::cmd("DEL").arg(&deadlines).query_async(&mut conn).await.unwrap();
    let (status, first, replayed) = post_keyed(&api, &[b"create-lamp-1"], &body).await;
    assert_eq!(status, 201, "{first}");
    assert!(!replayed);
    let id = first["auction_id"].as_str().unwrap().to_owned();
    let (status, again, replayed) = post_keyed(&api, &[b"create-lamp-1"], &body).await;
    assert_eq!(status, 201, "{again}");
    assert!(replayed, "a retry says it replayed");
    assert_eq!(again["auction_id"], id.as_str());
    assert_eq!(listed(&api).await, std::slice::from_ref(&id), "exactly one auction");
    let scheduled: Option<f64> = redis::cmd("ZSCORE").arg(&deadlines).arg(&id).query_async(&mut conn).await.unwrap();
    assert!(scheduled.is_some(), "the auction is in the scheduler's index");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_reused_with_other_settings_conflicts_and_bad_keys_are_refused() {
    let mut env = TestEnv::new().await;
    let api = env.auction_service().await;
    let body = open_body("Brass lamp", 60);
    let (status, first, _) = post_keyed(&api, &[b"lamp"], &body).await;
    assert_eq!(status, 201, "{first}");
    let id = first["auction_id"].as_str().unwrap();

    // The same settings (once defaulted) are the same request.
    let mut same = body.clone();
    same["extension_window_s"] = json!(30);
    let (status, again, replayed) = post_keyed(&api, &[b"lamp"], &same).await;
    assert_eq!((status, replayed), (201, true), "{again}");
    assert_eq!(again["auction_id"], id);
    assert_eq!(again["title"], "Brass lamp");

    let mut other = body.clone();
    other["title"] = json!("Copper kettle");
    let (status, refused, _) = post_keyed(&api, &[b"lamp"], &other).await;
    assert_eq!(status, 409, "{refused}");
    assert_eq!(refused["error"]["code"], "conflict");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(message.contains("Idempotency-Key") && message.contains(id), "{message}");

    let long = [b'k'; 65];
    let bad: [&[&[u8]]; 5] = [&[b""], &[&long], &[b"tab\there"], &[b"caf\xc3\xa9"], &[b"one", b"two"]];
    for keys in bad {
        let (status, refused, _) = post_keyed(&api, keys, &other).await;
        assert_eq!(status, 400, "{keys:?}: {refused}");
        assert_eq!(refused["error"]["field"], "Idempotency-Key", "{keys:?}: {refused}");
        let message = refused["error"]["message"].as_str().unwrap();
        assert!(message.starts_with("Idempotency-Key: must be 1 to 64 printable ASCII"), "{message}");
    }
    // A key of 64 is fine, and another key is another auction.
    let (status, second, _) = post_keyed(&api, &[&[b'k'; 64]], &other).await;
    assert_eq!(status, 201, "{second}");
    assert_ne!(second["auction_id"], id);
    let mut ids = listed(&api).await;
    ids.sort();
    let mut expected = vec![id.to_owned(), second["auction_id"].as_str().unwrap().to_owned()];
    expected.sort();
    assert_eq!(ids, expected, "nothing else was created");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduler_drops_a_deadline_entry_whose_auction_does_not_exist() {
    let mut env = TestEnv::new().await;
    let api = env.auction_service().await;
    let live = api.create_open(60, "1", 0).await;
    let deadlines = Keys::new(&env.prefix).deadlines();
    let mut conn = env.redis_connection().await;
    let (): () =
        redis::cmd("ZADD").arg(&deadlines).arg(0).arg("0123456789abcdef").query_async(&mut conn).await.unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        let left: Vec<String> =
            redis::cmd("ZRANGE").arg(&deadlines).arg(0).arg(-1).query_async(&mut conn).await.unwrap();
        if left == [live.auction_id.as_str()] {
            break;
        }
        assert!(Instant::now() < deadline, "the entry without an auction is still there: {left:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_create_script_refuses_after_its_window_and_when_the_id_is_taken() {
    let env = TestEnv::new().await;
    let store = env.store().await;
    let now = store.now_ms().await.unwrap();
    let id = AuctionId::parse("create-1").unwrap();
    let new = NewAuction {
        id: &id,
        title: "t",
        start_ms: now - 1000,
        end_ms: now + 60_000,
        starting_bid: amount("1"),
        extension_window_s: 0,
        extension_s: 30,
        idempotency: None,
        reserve: None,
        buy_now: None,
    };
    // A create whose Redis time was read an hour ago: its window is long over.
    assert_eq!(store.create(&new, now - 3_600_000).await.unwrap(), CreateOutcome::Late);
    assert!(store.load(&id).await.unwrap().is_none(), "nothing was created");
    assert!(store.log_events(&id).await.unwrap().is_empty(), "nothing was logged");

    assert!(matches!(store.create(&new, now).await.unwrap(), CreateOutcome::Created(_)));
    assert_eq!(store.create(&new, now).await.unwrap(), CreateOutcome::Taken);
    let keyed = NewAuction { idempotency: Some(("some key", "some fingerprint")), ..new };
    assert_eq!(store.create(&keyed, now).await.unwrap(), CreateOutcome::Taken, "an auction made without the key");
    assert_eq!(store.log_events(&id).await.unwrap().len(), 1, "one creation logged");

    // The script itself failing (its log key of the wrong type) writes nothing either: a script
    // that fails keeps what it wrote before the failure, so the log comes first.
    let broken = AuctionId::parse("create-2").unwrap();
    let mut conn = env.redis_connection().await;
    let log = Keys::new(&env.prefix).auction(&broken).log;
    let (): () = redis::cmd("SET").arg(&log).arg("not a stream").query_async(&mut conn).await.unwrap();
    assert!(store.create(&NewAuction { id: &broken, ..new }, now).await.is_err());
    assert!(store.load(&broken).await.unwrap().is_none(), "no auction half made");
}
