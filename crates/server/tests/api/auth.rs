//! Who may do what: bidder tokens before the upgrade, the operator token on every change.

use auction_proto::UserId;
use auction_proto::ws::ServerFrame;
use serde_json::json;

use crate::helpers::*;

const SECRET: &str = "a-test-secret-that-is-long-enough-0123";
const ADMIN: &str = "operator-token-0123456789";

fn now_s() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

fn token(user: &str, secret: &str, issued: u64, ttl: u64) -> String {
    auction_proto::auth::mint(secret.as_bytes(), &UserId::parse(user).unwrap(), issued, ttl).unwrap()
}

async fn secured() -> (TestEnv, Api, Node) {
    let mut env = TestEnv::new().await;
    env.set("AUTH_SECRET", SECRET);
    env.set("ADMIN_TOKEN", ADMIN);
    let api = env.auction_service().await;
    let node = env.bidding_service().await;
    (env, api, node)
}

async fn create(api: &Api) -> String {
    let now = chrono::Utc::now();
    let body = json!({
        "start_time": (now - chrono::Duration::seconds(1)).to_rfc3339(),
        "end_time": (now + chrono::Duration::minutes(10)).to_rfc3339(),
        "starting_bid": "10.00",
    });
    let response = api.http.post(api.url("/api/v1/auctions")).bearer_auth(ADMIN).json(&body).send().await.unwrap();
    assert_eq!(response.status(), 201);
    response.json::<serde_json::Value>().await.unwrap()["auction_id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_for_alice_cannot_bid_as_bob() {
    let (_env, api, node) = secured().await;
    let id = create(&api).await;
    let alice = token("alice", SECRET, now_s(), 3600);
    let (stream, _) =
        tokio_tungstenite::connect_async(format!("ws://{}/ws/auction/{id}?user_id=bob&token={alice}", node.addr))
            .await
            .unwrap();
    let mut ws = Ws::from_stream(stream);
    assert!(matches!(ws.next().await, ServerFrame::Snapshot(_)));
    assert!(matches!(ws.bid("10", None).await, ServerFrame::BidAccepted(_)));
    let placed = ws
        .next_matching(|f| match f {
            ServerFrame::BidPlaced(p) => Some(p.bidder.to_string()),
            _ => None,
        })
        .await;
    assert_eq!(placed, "alice", "user_id=bob beside the token is ignored");
    assert_eq!(api.auction(&id).await.highest_bidder.unwrap().as_str(), "alice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_forged_none_and_expired_tokens_get_401_before_the_upgrade() {
    let (_env, api, node) = secured().await;
    let id = create(&api).await;
    let forged = token("alice", "someone-elses-secret-that-is-long-0123", now_s(), 3600);
    let expired = token("alice", SECRET, now_s() - 7200, 3600);
    let none = {
        let b64 = |s: &str| {
            const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
            let bytes = s.as_bytes();
            let mut out = String::new();
            for chunk in bytes.chunks(3) {
                let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
                let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
                for i in 0..=chunk.len() {
                    out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
                }
            }
            out
        };
        format!(
            "{}.{}.",
            b64(r#"{"alg":"none","typ":"JWT"}"#),
            b64(&format!(r#"{{"sub":"alice","exp":{}}}"#, now_s() + 3600))
        )
    };
    for query in [
        "user_id=alice".to_owned(),
        format!("token={forged}"),
        format!("token={expired}"),
        format!("token={none}"),
        "token=garbage".to_owned(),
    ] {
        assert_eq!(node.refused_status(&format!("/ws/auction/{id}?{query}")).await, 401, "{query:.40}");
    }
    let response = api.http.get(format!("http://{}/ws/auction/{id}?token={expired}", node.addr)).send().await.unwrap();
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");
    assert!(body["error"]["message"].as_str().unwrap().contains("expired"), "{body}");
}

async fn connect_with(node: &Node, id: &str, token: &str) -> Ws {
    let url = format!("ws://{}/ws/auction/{id}?token={token}", node.addr);
    let (stream, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let mut ws = Ws::from_stream(stream);
    assert!(matches!(ws.next().await, ServerFrame::Snapshot(_)));
    ws
}

fn unix_now() -> std::time::Duration {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_is_closed_when_its_token_expires_and_places_no_bid_after() {
    let (_env, api, node) = secured().await;
    let id = create(&api).await;
    let issued = now_s();
    let exp = issued + 2;
    let mut alice = connect_with(&node, &id, &token("alice", SECRET, issued, 2)).await;
    let mut bob = connect_with(&node, &id, &token("bob", SECRET, issued, 2)).await;
    assert!(matches!(alice.bid("10.00", Some("a-1")).await, ServerFrame::BidAccepted(_)));
    assert!(matches!(bob.bid("20.00", Some("b-1")).await, ServerFrame::BidAccepted(_)));

    // Alice's connection ends at the expiry, saying why in a frame and in the close.
    let (code, reason) = alice.close_frame().await;
    let closed_at = unix_now();
    assert_eq!((code, reason.as_str()), (4001, "token expired"));
    assert!(closed_at >= std::time::Duration::from_secs(exp), "closed at {closed_at:?}, before the expiry {exp}");
    assert!(
        closed_at < std::time::Duration::from_secs(exp + 3),
        "closed at {closed_at:?}, long after the expiry {exp}"
    );
    assert!(
        alice.seen.iter().any(|f| matches!(f, ServerFrame::Error(e) if e.code == "token_expired")),
        "an error frame token_expired before the close: {:?}",
        alice.seen
    );

    // Bob bids once his token has expired: not placed, whatever the connection does with it.
    while unix_now() < std::time::Duration::from_secs(exp) {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let before = bob.seen.len();
    bob.send_text(r#"{"type":"place_bid","amount":"30.00","bid_id":"b-late"}"#).await;
    let (code, _) = bob.close_frame().await;
    assert_eq!(code, 4001);
    let after = &bob.seen[before..];
    let late = |f: &ServerFrame| match f {
        ServerFrame::BidAccepted(a) => a.bid_id.as_str() == "b-late",
        ServerFrame::BidPlaced(p) => p.bid_id.as_str() == "b-late",
        _ => false,
    };
    assert!(!after.iter().any(late), "{after:?}");
    let auction = api.auction(&id).await;
    assert_eq!((auction.bid_count, auction.current_bid), (2, Some(amount("20.00"))), "the late bid was not placed");
    assert_eq!(scrape(node.addr, "bidding_tokens_expired_total").await, 2.0);
    // And the expired token cannot come back.
    assert_eq!(node.refused_status(&format!("/ws/auction/{id}?token={}", token("bob", SECRET, issued, 2))).await, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_need_the_operator_token_and_happen_with_it_and_reads_stay_open() {
    let (_env, api, _node) = secured().await;
    let id = create(&api).await;
    let before = api.auction(&id).await;
    let (_, rules_before) = api.get("/api/v1/rules").await;
    let now = chrono::Utc::now();
    let new_auction = json!({
        "start_time": now.to_rfc3339(), "end_time": (now + chrono::Duration::minutes(5)).to_rfc3339(), "starting_bid": "1"
    });
    let new_rules =
        json!({"increments": [{"from": "0.00", "increment": "1.00"}, {"from": "50.00", "increment": "7.00"}]});
    // In this order, so that each call with the right token still finds the auction open.
    let calls = [
        ("POST", "/api/v1/auctions".to_owned(), new_auction),
        ("POST", format!("/api/v1/auctions/{id}/extend"), json!({"seconds": 30})),
        ("PUT", "/api/v1/rules".to_owned(), new_rules.clone()),
        ("POST", format!("/api/v1/auctions/{id}/cancel"), json!({})),
    ];
    let call = |method: &str, path: &str, body: &serde_json::Value, auth: Option<&str>| {
        let mut request = api.http.request(method.parse().unwrap(), api.url(path)).json(body);
        if let Some(token) = auth {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    for (method, path, body) in &calls {
        for auth in [None, Some("wrong-token-0123456789"), Some("")] {
            let response = call(method, path, body, auth).await.unwrap();
            assert_eq!(response.status(), 401, "{method} {path} with {auth:?}");
            let error: serde_json::Value = response.json().await.unwrap();
            assert_eq!(error["error"]["code"], "unauthorized");
        }
    }
    let after = api.auction(&id).await;
    assert_eq!((after.status, after.end_time), (before.status, before.end_time), "nothing changed");
    assert_eq!(api.get("/api/v1/rules").await.1, rules_before);
    let (_, list) = api.get("/api/v1/auctions").await;
    assert_eq!(list["auctions"].as_array().unwrap().len(), 1);
    // Reads need nothing.
    for path in ["/api/v1/auctions", "/api/v1/rules", "/api/v1/leader"] {
        assert_eq!(api.get(path).await.0, 200, "{path}");
    }

    // The right token: every call succeeds, and its change is really made.
    for (method, path, body) in &calls {
        let response = call(method, path, body, Some(ADMIN)).await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        assert_eq!(status, if path == "/api/v1/auctions" { 201 } else { 200 }, "{method} {path}: {text}");
    }
    let (_, list) = api.get("/api/v1/auctions").await;
    assert_eq!(list["auctions"].as_array().unwrap().len(), 2, "the auction was created: {list}");
    let after = api.auction(&id).await;
    assert_eq!(after.end_time, before.end_time + chrono::Duration::seconds(30), "the close moved");
    assert_eq!(after.status, auction_proto::AuctionStatus::Cancelled);
    assert_eq!(api.get("/api/v1/rules").await.1, new_rules, "the rules were replaced");
}
