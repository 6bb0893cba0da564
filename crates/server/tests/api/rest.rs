//! The auction service's REST API: create, get, list, rules, health.

use auction_proto::rest::AuctionList;
use chrono::Utc;
use serde_json::json;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_get_list_and_mysql_copy() {
    let mut env = TestEnv::new().await;
    let api = env.auction_service().await;
    let now = Utc::now();
    let (status, body) = api
        .post_auction(&json!({
            "title": "Brass lamp",
            "start_time": (now + chrono::Duration::hours(1)).to_rfc3339(),
            "end_time": (now + chrono::Duration::hours(2)).to_rfc3339(),
            "starting_bid": 12.5,
            "extension_window_s": 0
        }))
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["title"], "Brass lamp");
    assert_eq!(body["starting_bid"], "12.50");
    assert_eq!(body["min_next_bid"], "12.50");
    assert_eq!(body["status"], "scheduled");
    assert_eq!(body["extension_window_s"], 0);
    assert_eq!(body["current_bid"], serde_json::Value::Null);
    let id = body["auction_id"].as_str().unwrap().to_owned();

    let fetched = api.auction(&id).await;
    assert_eq!(fetched.title, "Brass lamp");
    let open = api.create_open(60, "1", 30).await;

    let (status, list) = api.get("/api/v1/auctions").await;
    assert_eq!(status, 200);
    let list: AuctionList = serde_json::from_value(list).unwrap();
    let ids: Vec<&str> = list.auctions.iter().map(|a| a.auction_id.as_str()).collect();
    assert_eq!(ids, [open.auction_id.as_str(), id.as_str()], "newest first");
    let (_, active) = api.get("/api/v1/auctions?status=active").await;
    let active: AuctionList = serde_json::from_value(active).unwrap();
    assert_eq!(active.auctions.len(), 1);
    assert_eq!(active.auctions[0].auction_id, open.auction_id);
    let (_, limited) = api.get("/api/v1/auctions?limit=1").await;
    assert_eq!(limited["auctions"].as_array().unwrap().len(), 1);

    // The durable copy in MySQL.
    let mut conn = env.mysql().await;
    let row: (String, rust_decimal::Decimal, String) =
        sqlx::query_as("SELECT title, starting_bid, status FROM auctions WHERE auction_id = ?")
            .bind(&id)
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(row.0, "Brass lamp");
    assert_eq!(row.1.to_string(), "12.50");
    assert_eq!(row.2, "scheduled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_get_put_and_validation() {
    let mut env = TestEnv::new().await;
    let api = env.auction_service().await;
    let node = env.bidding_service().await;
    let (status, rules) = api.get("/api/v1/rules").await;
    assert_eq!(status, 200);
    assert_eq!(rules["increments"].as_array().unwrap().len(), 10, "the default bands");
    assert_eq!(rules["increments"][4], json!({"from": "100.00", "increment": "2.50"}));

    for (bad, field, text) in [
        (json!({"increments": []}), "increments", "empty"),
        (json!({"increments": [{"from": "1.00", "increment": "1.00"}]}), "increments", "0.00"),
        (
            json!({"increments": [{"from": "0", "increment": "1"}, {"from": "0", "increment": "2"}]}),
            "increments",
            "increments[1].from",
        ),
        (json!({"increments": [{"from": "0", "increment": "0"}]}), "increments[0].increment", "greater than zero"),
        (json!({"increments": [{"from": "0", "increment": "1", "to": "5"}]}), "increments[0].to", "unknown field"),
    ] {
        let response = api.http.put(api.url("/api/v1/rules")).json(&bad).send().await.unwrap();
        assert_eq!(response.status(), 400, "{bad}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"]["field"], field, "{body}");
        assert!(body["error"]["message"].as_str().unwrap().contains(text), "{body}");
    }
    let (_, unchanged) = api.get("/api/v1/rules").await;
    assert_eq!(unchanged, rules, "refused rules change nothing");

    // Valid rules replace the old ones, and the next minimum of a live auction follows them.
    let auction = api.create_open(600, "10", 0).await;
    let id = auction.auction_id.as_str();
    let (mut ws, _) = node.connect(id, "alice").await;
    assert!(matches!(ws.bid("10", None).await, auction_proto::ws::ServerFrame::BidAccepted(_)));
    assert_eq!(api.auction(id).await.min_next_bid, amount("10.50"), "the default band for 10.00");
    let new = json!({"increments": [{"from": "0.00", "increment": "1.00"}, {"from": "50.00", "increment": "7.00"}]});
    let response = api.http.put(api.url("/api/v1/rules")).json(&new).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<serde_json::Value>().await.unwrap(), new);
    assert_eq!(api.get("/api/v1/rules").await.1, new);
    assert_eq!(api.auction(id).await.min_next_bid, amount("11.00"), "the new band for 10.00");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_persistence_settings_are_read_as_redis_reports_them() {
    let env = TestEnv::new().await;
    let found = env.store().await.persistence().await.expect("the test redis allows CONFIG GET");
    let mut conn = env.redis_connection().await;
    let mut get = async |name: &str| -> String {
        let pair: Vec<String> = redis::cmd("CONFIG").arg("GET").arg(name).query_async(&mut conn).await.unwrap();
        pair[1].clone()
    };
    assert_eq!(found.appendonly, get("appendonly").await == "yes");
    assert_eq!(found.eviction, get("maxmemory-policy").await);
    assert_eq!(found.maxmemory.to_string(), get("maxmemory").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_of_every_service() {
    let mut env = TestEnv::new().await;
    let api = env.auction_service().await;
    let node = env.bidding_service().await;
    let analytics = env.analytics_service().await;
    for (url, service) in [
        (api.url("/health"), "auction"),
        (format!("http://{}/health", node.addr), "bidding"),
        (format!("http://{analytics}/health"), "analytics"),
    ] {
        let response = api.http.get(&url).send().await.unwrap();
        assert_eq!(response.status(), 200, "{url}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["status"], "ok");
        assert_eq!(body["service"], service);
        assert_eq!(body["checks"]["redis"], "ok");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_ui_is_served_and_cors_follows_the_configured_origins() {
    let mut env = TestEnv::new().await;
    let node = env.bidding_service().await;
    let http = reqwest::Client::new();
    let index = http.get(format!("http://{}/", node.addr)).send().await.unwrap();
    assert_eq!(index.status(), 200);
    assert!(index.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(index.text().await.unwrap().contains(r#"src="app.js""#));
    for (path, kind) in [("/app.js", "text/javascript"), ("/config.js", "text/javascript"), ("/style.css", "text/css")]
    {
        let response = http.get(format!("http://{}{path}", node.addr)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert!(response.headers()["content-type"].to_str().unwrap().starts_with(kind), "{path}");
    }

    // By default any origin may call the API; configured, only the listed ones.
    let open = env.auction_service().await;
    let preflight = |api: &Api, origin: &str| {
        http.request(reqwest::Method::OPTIONS, api.url("/api/v1/auctions"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type,authorization,idempotency-key")
            .send()
    };
    let response = preflight(&open, "http://elsewhere.example").await.unwrap();
    assert_eq!(response.headers()["access-control-allow-origin"], "*");
    // The web form's create carries an Idempotency-Key, which a page from elsewhere may send.
    let allowed_headers = response.headers()["access-control-allow-headers"].to_str().unwrap().to_owned();
    assert!(allowed_headers.contains("idempotency-key"), "{allowed_headers}");
    env.set("CORS_ALLOWED_ORIGINS", "https://bids.example.com");
    let strict = env.auction_service().await;
    let allowed = preflight(&strict, "https://bids.example.com").await.unwrap();
    assert_eq!(allowed.headers()["access-control-allow-origin"], "https://bids.example.com");
    let refused = preflight(&strict, "http://elsewhere.example").await.unwrap();
    assert!(refused.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bidding_service_counts_bids_and_connections() {
    let mut env = TestEnv::new().await;
    let api = env.auction_service().await;
    let node = env.bidding_service().await;
    let auction = api.create_open(600, "10", 0).await;
    let (mut ws, _) = node.connect(auction.auction_id.as_str(), "alice").await;
    assert!(matches!(ws.bid("10", None).await, auction_proto::ws::ServerFrame::BidAccepted(_)));
    assert!(matches!(ws.bid("1", None).await, auction_proto::ws::ServerFrame::BidRejected(_)));
    let text = api.http.get(format!("http://{}/metrics", node.addr)).send().await.unwrap().text().await.unwrap();
    for line in ["bidding_bids_accepted_total 1", "bidding_bids_rejected_total 1", "bidding_connections 1"] {
        assert!(text.lines().any(|l| l == line), "{line} missing from:\n{text}");
    }
}

/// Every route the auction service serves, as `METHOD /path` in the document's spelling.
const ROUTES: [&str; 12] = [
    "GET /api/v1/auctions",
    "POST /api/v1/auctions",
    "GET /api/v1/auctions/{auction_id}",
    "GET /api/v1/auctions/{auction_id}/bids",
    "POST /api/v1/auctions/{auction_id}/extend",
    "POST /api/v1/auctions/{auction_id}/cancel",
    "GET /api/v1/leader",
    "GET /api/v1/rules",
    "PUT /api/v1/rules",
    "GET /api/v1/openapi.json",
    "GET /health",
    "GET /metrics",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_covers_every_route_and_only_those() {
    let mut env = TestEnv::new().await;
    let api = env.auction_service().await;
    let (status, doc) = api.get("/api/v1/openapi.json").await;
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{}", doc["openapi"]);

    // The document's operations are exactly the routes.
    let methods = ["get", "post", "put", "patch", "delete"];
    let mut documented = std::collections::BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in methods.iter().filter(|m| item.get(**m).is_some()) {
            documented.insert(format!("{} {path}", method.to_uppercase()));
        }
    }
    let expected: std::collections::BTreeSet<String> = ROUTES.iter().map(|r| r.to_string()).collect();
    assert_eq!(documented, expected);

    // Each is served, and nothing else on those paths: any other method gets 405.
    let auction = api.create_open(600, "1", 0).await;
    for (path, item) in doc["paths"].as_object().unwrap() {
        let url = api.url(&path.replace("{auction_id}", auction.auction_id.as_str()));
        for method in methods {
            let response = api.http.request(method.to_uppercase().parse().unwrap(), &url).send().await.unwrap();
            let status = response.status().as_u16();
            let body = response.text().await.unwrap();
            if item.get(method).is_some() {
                assert!(status != 405 && !body.contains("no such endpoint"), "{method} {path}: {status} {body}");
            } else {
                assert_eq!(status, 405, "{method} {path} is served but not documented");
            }
        }
    }

    // Every reference resolves, and the state-changing operations, only they, need the token.
    let text = doc.to_string();
    for reference in text.split(r##""$ref":"#/"##).skip(1) {
        let pointer = format!("/{}", &reference[..reference.find('"').unwrap()]);
        assert!(doc.pointer(&pointer).is_some(), "dangling $ref {pointer}");
    }
    assert_eq!(doc["components"]["securitySchemes"]["operator_token"]["scheme"], "bearer");
    for route in ROUTES {
        let (method, path) = route.split_once(' ').unwrap();
        let security = &doc["paths"][path][method.to_lowercase()]["security"];
        let guarded = *security == json!([{"operator_token": []}]);
        assert_eq!(guarded, method != "GET", "{route}: {security}");
    }
}

/// The auction service's routes are registered only through utoipa-axum's `routes!`, which takes
/// a handler's path and method from its `#[utoipa::path]`, so no route can exist without its part
/// of the document. A plain axum `.route(...)` would bypass that; this keeps it out.
#[test]
fn auction_routes_are_registered_only_with_their_documents() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/auction");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let source = std::fs::read_to_string(&path).unwrap();
        for bypass in [".route(", ".route_service(", ".nest_service(", "routing::"] {
            assert!(!source.contains(bypass), "{} registers a route with {bypass}", path.display());
        }
    }
}
