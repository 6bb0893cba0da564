//! The real `auctionctl` binary against the real stack (services in-process on port 0, real Redis
//! and MariaDB): every command in both output modes, and bad input with its exit codes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use auction_server::testing::TestEnv;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::io::AsyncBufReadExt;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

/// How long any one step (a command, a frame, a line of output) may take before the test fails:
/// a server bug must fail the test, never hang CI. Longer than `auctionctl`'s own default
/// `--timeout` (10 s), so that a command that gives up by itself is seen doing so.
const WAIT: Duration = Duration::from_secs(20);

/// Awaits `step`, failing the test with `what` after [`WAIT`].
async fn within<T>(what: impl std::fmt::Display, step: impl Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, step).await.unwrap_or_else(|_| panic!("{what}: nothing after {WAIT:?}"))
}

/// The next line of a child's output, which must come within [`WAIT`].
async fn next_line(lines: &mut tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>) -> String {
    within("the next line of output", lines.next_line()).await.unwrap().expect("the output ended")
}

struct Stack {
    env: TestEnv,
    api: SocketAddr,
    ws: SocketAddr,
    analytics: SocketAddr,
}

async fn stack() -> Stack {
    let mut env = TestEnv::new().await;
    let (api, _, _) = env.start_auction().await;
    let ws = env.start_bidding().await;
    let (analytics, _) = env.start_analytics().await;
    Stack { env, api, ws, analytics }
}

struct Outcome {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Outcome {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }
}

impl Stack {
    fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_auctionctl"));
        command
            .args(args)
            .env("AUCTION_API_URL", format!("http://{}", self.api))
            .env("AUCTION_WS_URL", format!("ws://{}", self.ws))
            .env("AUCTION_ANALYTICS_URL", format!("http://{}", self.analytics))
            .env_remove("AUCTION_OUTPUT")
            .env_remove("AUTH_SECRET")
            .env_remove("AUCTION_TOKEN")
            .env_remove("AUCTION_ADMIN_TOKEN")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        command
    }

    async fn run(&self, args: &[&str]) -> Outcome {
        let output = within(format!("auctionctl {args:?}"), self.command(args).output()).await.unwrap();
        Outcome {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Runs a command that must succeed, in table form and then in JSON; returns the JSON.
    async fn both(&self, args: &[&str]) -> (String, Value) {
        let table = self.run(args).await;
        assert_eq!(table.code, 0, "{args:?}: {}", table.stderr);
        assert!(!table.stdout.is_empty(), "{args:?} printed nothing");
        let mut json_args = args.to_vec();
        json_args.extend(["--output", "json"]);
        let json = self.run(&json_args).await;
        assert_eq!(json.code, 0, "{json_args:?}: {}", json.stderr);
        (table.stdout, json.json())
    }

    async fn create(&self) -> String {
        let out = self
            .run(&["create", "--start", "now", "--duration", "2m", "--starting-bid", "100", "--output", "json"])
            .await;
        assert_eq!(out.code, 0, "{}", out.stderr);
        out.json()["auction_id"].as_str().unwrap().to_owned()
    }

    /// Places a bid that must be accepted; returns when it was sent.
    async fn bid(&self, auction: &str, user: &str, amount: &str) -> Instant {
        within(format!("{user}'s bid of {amount}"), async {
            let url = format!("ws://{}/ws/auction/{auction}?user_id={user}", self.ws);
            let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
            ws.next().await.unwrap().unwrap(); // the snapshot
            let sent = Instant::now();
            ws.send(Message::text(format!(r#"{{"type":"place_bid","amount":"{amount}"}}"#))).await.unwrap();
            loop {
                let Message::Text(text) = ws.next().await.unwrap().unwrap() else { continue };
                if text.contains("bid_accepted") {
                    return sent;
                }
                assert!(!text.contains("bid_rejected"), "{text}");
            }
        })
        .await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_get_list_extend_cancel() {
    let s = stack().await;
    let (table, json) = s
        .both(&["create", "--title", "Brass lamp", "--start", "now", "--duration", "2m", "--starting-bid", "100"])
        .await;
    assert!(table.contains("Brass lamp") && table.contains("100.00"), "{table}");
    assert!(table.contains("ends in 1m5") || table.contains("ends in 2m00s"), "{table}");
    let id = json["auction_id"].as_str().unwrap().to_owned();
    assert_eq!(json["starting_bid"], "100.00");

    let (table, json) = s.both(&["get", &id]).await;
    assert!(table.contains(&id) && table.contains("active"), "{table}");
    assert_eq!(json["title"], "Brass lamp");
    s.bid(&id, "alice", "100.00").await;
    let (table, _) = s.both(&["get", &id]).await;
    assert!(table.contains("alice") && table.contains("102.50"), "{table}");

    let (table, json) = s.both(&["list", "--status", "active"]).await;
    assert!(table.starts_with("ID") && table.contains(&id), "{table}");
    assert!(json["auctions"].as_array().unwrap().iter().any(|a| a["auction_id"] == id.as_str()));

    let before = json["auctions"][0]["end_time"].as_str().unwrap().to_owned();
    let (table, json) = s.both(&["extend", &id, "--by", "30s"]).await;
    assert!(table.starts_with("extended"), "{table}");
    // `both` ran it twice: the JSON run extended the close the table run had already moved.
    let time = |v: &Value| chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap();
    let before = time(&Value::String(before));
    assert_eq!(time(&json["previous_end_time"]), before + chrono::Duration::seconds(30), "{json}");
    assert_eq!(time(&json["end_time"]), before + chrono::Duration::seconds(60), "{json}");

    let other = s.create().await;
    let out = s.run(&["cancel", &other]).await;
    assert_eq!(out.code, 1, "no confirmation, no cancel: {}", out.stderr);
    assert!(out.stderr.contains("not cancelled"));
    let (table, _) = s.both(&["get", &other]).await;
    assert!(table.contains("active"), "{table}");
    let out = s.run(&["cancel", &other, "-y"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("cancelled"));
    let out = s.run(&["cancel", &other, "-y", "--output", "json"]).await;
    assert_eq!(out.code, 1, "cancelling twice is refused");
    assert!(out.stderr.contains("conflict") && out.stderr.contains("HTTP 409"), "{}", out.stderr);
    let third = s.create().await;
    let json = s.run(&["cancel", &third, "--yes", "--output", "json"]).await.json();
    assert_eq!(json["status"], "cancelled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_auction_reads_started_and_a_cancelled_one_never_ends() {
    let s = stack().await;
    let out = s
        .run(&["create", "--title", "Brass lamp", "--start", "now", "--duration", "10m", "--starting-bid", "100"])
        .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let line = |text: &str, key: &str| text.lines().find(|l| l.starts_with(key)).unwrap_or_default().to_owned();
    let starts = line(&out.stdout, "starts");
    assert!(starts.contains("(started just now)") || starts.contains("(started 1s ago)"), "{}", out.stdout);
    let ends = line(&out.stdout, "ends");
    assert!(ends.contains("(ends in 9m5") || ends.contains("(ends in 10m"), "{}", out.stdout);
    let id = line(&out.stdout, "auction").split_whitespace().nth(1).unwrap().to_owned();

    assert_eq!(s.run(&["cancel", &id, "-y"]).await.code, 0);
    let out = s.run(&["list"]).await;
    let row = line(&out.stdout, &id);
    let columns: Vec<&str> = row.split("  ").map(str::trim).filter(|c| !c.is_empty()).collect();
    assert_eq!(columns.get(1..), Some(&["cancelled", "100.00", "0", "-", "Brass lamp"][..]), "{}", out.stdout);
    let out = s.run(&["get", &id]).await;
    assert!(line(&out.stdout, "ends").ends_with("(cancelled: never ends)"), "{}", out.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bids_leader_rules_health_completions() {
    let s = stack().await;
    let id = s.create().await;
    s.bid(&id, "alice", "100").await;
    s.bid(&id, "bob", "102.50").await;
    // The bid history comes from MySQL, written by the analytics service.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let out = s.run(&["bids", &id, "--output", "json"]).await;
        if out.json()["bids"].as_array().unwrap().len() == 2 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "bids never reached mysql");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (table, json) = s.both(&["bids", &id, "--limit", "1", "--all"]).await;
    assert!(table.contains("alice") && table.contains("bob") && table.contains("102.50"), "{table}");
    assert_eq!(json["bids"].as_array().unwrap().len(), 2);
    let (table, json) = s.both(&["bids", &id, "--limit", "1"]).await;
    assert!(table.contains("more:"), "{table}");
    assert_eq!(json["next_cursor"], json["bids"][0]["seq"].to_string().as_str(), "{json}");

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let out = s.run(&["leader", "--output", "json"]).await;
        if out.json()["instance_id"].is_string() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no leader");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (table, json) = s.both(&["leader"]).await;
    assert!(table.starts_with("leader ") && table.contains("epoch"), "{table}");
    assert!(json["epoch"].as_u64().unwrap() >= 1);

    let (table, json) = s.both(&["rules", "get"]).await;
    assert!(table.contains("FROM") && table.contains("2.50"), "{table}");
    assert_eq!(json["increments"].as_array().unwrap().len(), 10);
    let dir = std::env::temp_dir().join(format!("auctionctl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("rules.json");
    std::fs::write(&file, r#"{"increments":[{"from":"0.00","increment":"1.00"},{"from":"50.00","increment":"5.00"}]}"#)
        .unwrap();
    let (table, json) = s.both(&["rules", "set", file.to_str().unwrap()]).await;
    assert!(table.starts_with("rules replaced"), "{table}");
    assert_eq!(json["increments"][1]["increment"], "5.00");

    let (table, json) = s.both(&["health"]).await;
    assert_eq!(table.lines().count(), 4, "a header and one line per service: {table}");
    assert!(json.as_array().unwrap().iter().all(|r| r["status"] == "ok"), "{json}");

    let out = s.run(&["completions", "bash"]).await;
    assert_eq!(out.code, 0);
    assert!(out.stdout.contains("auctionctl") && out.stdout.contains("complete"), "{}", out.stdout);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_prints_another_clients_bid_within_a_second() {
    let s = stack().await;
    let id = s.create().await;
    for output in ["json", "table"] {
        let mut child =
            s.command(&["watch", &id, "--output", output]).stdout(Stdio::piped()).kill_on_drop(true).spawn().unwrap();
        let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let first = next_line(&mut lines).await;
        assert!(first.contains("snapshot") || first.contains("active"), "{first}");
        let amount = if output == "json" { "100" } else { "200" };
        let bidder = if output == "json" { "carol" } else { "dave" };
        // The second runs from the bid's frame leaving this test (connecting the bidder is not
        // part of it) to the line reaching it.
        let sent = s.bid(&id, bidder, amount).await;
        let line = loop {
            let line = next_line(&mut lines).await;
            if line.contains(bidder) {
                break line;
            }
        };
        let took = sent.elapsed();
        assert!(took < Duration::from_secs(1), "watch printed the bid {took:?} after it was sent");
        if output == "json" {
            let frame: Value = serde_json::from_str(&line).unwrap();
            assert_eq!((frame["type"].as_str(), frame["bidder"].as_str()), (Some("bid_placed"), Some(bidder)));
        } else {
            assert!(line.contains("bid 200.00 by dave"), "{line}");
        }
        child.kill().await.unwrap();
    }
    // Watching ends by itself when the auction is cancelled.
    let mut child = s.command(&["watch", &id]).stdout(Stdio::piped()).spawn().unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    next_line(&mut lines).await;
    assert_eq!(s.run(&["cancel", &id, "-y"]).await.code, 0);
    let status = within("watch ending after the cancel", child.wait()).await.unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_before_anything_is_sent() {
    let s = stack().await;
    let (_, rules_before) = s.both(&["rules", "get"]).await;
    let (_, list_before) = s.both(&["list"]).await;
    for (args, needle) in [
        (vec!["list", "--colour", "red"], "--colour"),
        (vec!["create", "--starting-bid", "100", "--duration", "ten minutes"], "not a duration"),
        (vec!["create", "--starting-bid", "100", "--start", "tomorrow", "--duration", "5m"], "--start"),
        (vec!["create", "--starting-bid", "100", "--end", "yesterday"], "--end"),
        (vec!["create", "--starting-bid", "1.001", "--duration", "5m"], "more than 2 decimal places"),
        (vec!["create", "--starting-bid", "-5", "--duration", "5m"], "--starting-bid"),
        (vec!["create", "--starting-bid", "abc", "--duration", "5m"], "--starting-bid"),
        (vec!["create", "--starting-bid", "10"], "--duration"),
        (vec!["create", "--starting-bid", "10", "--start", "+10m", "--end", "+5m"], "end after it starts"),
        (vec!["create", "--starting-bid", "100", "--duration", "5m", "--reserve", "lots"], "--reserve"),
        (
            vec!["create", "--starting-bid", "100", "--duration", "5m", "--reserve", "1.001"],
            "more than 2 decimal places",
        ),
        (
            vec!["create", "--starting-bid", "100", "--duration", "5m", "--reserve", "100"],
            "--reserve: 100.00 must be above the starting bid (100.00)",
        ),
        (
            vec!["create", "--starting-bid", "100", "--duration", "5m", "--buy-now", "99.99"],
            "--buy-now: 99.99 must be above the starting bid (100.00)",
        ),
        (vec!["create", "--starting-bid", "100", "--duration", "5m", "--buy-now=-5"], "--buy-now: "),
        (
            vec!["create", "--starting-bid", "100", "--duration", "5m", "--reserve", "150", "--buy-now", "149.99"],
            "--buy-now: 149.99 must be at or above the reserve (150.00)",
        ),
        (vec!["extend", "abc", "--by", "soon"], "--by"),
        (vec!["get", "a:b"], "auction_id contains ':'"),
        (vec!["list", "--status", "open"], "open"),
        (vec!["rules", "set", "/nonexistent/rules.json"], "cannot read"),
    ] {
        let out = s.run(&args).await;
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains(needle), "{args:?}: {}", out.stderr);
        assert!(!out.stderr.contains("panicked") && !out.stderr.contains("backtrace"), "{}", out.stderr);
    }
    let dir = std::env::temp_dir().join(format!("auctionctl-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (content, needle) in [
        ("not json", "not valid rules"),
        (r#"{"increments":[]}"#, "empty"),
        (r#"{"increments":[{"from":"5.00","increment":"1.00"}]}"#, "0.00"),
        (r#"{"increments":[{"from":"0","increment":"1"},{"from":"0","increment":"2"}]}"#, "increments[1].from"),
    ] {
        let file = dir.join("rules.json");
        std::fs::write(&file, content).unwrap();
        let out = s.run(&["rules", "set", file.to_str().unwrap()]).await;
        assert_eq!(out.code, 2, "{content}: {}", out.stderr);
        assert!(out.stderr.contains(needle), "{content}: {}", out.stderr);
    }
    std::fs::remove_dir_all(&dir).unwrap();
    let (_, rules_after) = s.both(&["rules", "get"]).await;
    assert_eq!(rules_after, rules_before, "invalid rules were never sent");
    let (_, list_after) = s.both(&["list"]).await;
    assert_eq!(list_after, list_before, "no auction was created");

    // The server says no: exit 1 with its code and message.
    let out = s.run(&["get", "nosuchauction"]).await;
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("not_found") && out.stderr.contains("no auction nosuchauction"), "{}", out.stderr);

    // Unreachable: exit 3, naming the URL and the fix.
    let out = s.run(&["list", "--api-url", "http://127.0.0.1:9"]).await;
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.stderr.contains("http://127.0.0.1:9") && out.stderr.contains("hint:"), "{}", out.stderr);
    let out = s.run(&["watch", "abc", "--ws-url", "ws://127.0.0.1:9"]).await;
    assert_eq!(out.code, 3, "{}", out.stderr);
    drop(s.env);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_admin_calls_and_minted_bidder_tokens() {
    const SECRET: &str = "a-test-secret-that-is-long-enough-0123";
    const ADMIN: &str = "operator-token-0123456789";
    let mut env = TestEnv::new().await;
    env.set("AUTH_SECRET", SECRET);
    env.set("ADMIN_TOKEN", ADMIN);
    let (api, _, _) = env.start_auction().await;
    let ws = env.start_bidding().await;
    let (analytics, _) = env.start_analytics().await;
    let s = Stack { env, api, ws, analytics };

    let create = ["create", "--duration", "5m", "--starting-bid", "10", "--output", "json"];
    let out = s.run(&create).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("unauthorized") && out.stderr.contains("HTTP 401"), "{}", out.stderr);
    let mut with_token = create.to_vec();
    with_token.extend(["--admin-token", ADMIN]);
    let out = s.run(&with_token).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let id = out.json()["auction_id"].as_str().unwrap().to_owned();

    // A minted token is what the bidding service accepts.
    let out = s.run(&["token", "--user", "alice", "--ttl", "10m", "--auth-secret", SECRET]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let token = out.stdout.trim().to_owned();
    assert_eq!(auction_proto::auth::verify(SECRET.as_bytes(), &token).unwrap().as_str(), "alice");
    let (mut socket, _) = within(
        "connecting with the minted token",
        tokio_tungstenite::connect_async(format!("ws://{}/ws/auction/{id}?token={token}", s.ws)),
    )
    .await
    .unwrap();
    let first = within("the snapshot", socket.next()).await.unwrap().unwrap();
    assert!(first.to_text().unwrap().contains("snapshot"));
    let out = s.run(&["token", "--user", "a:b", "--auth-secret", SECRET]).await;
    assert_eq!(out.code, 2);
    let out = s.run(&["token", "--user", "alice"]).await;
    assert_eq!(out.code, 2, "no secret: {}", out.stderr);
    assert!(out.stderr.contains("AUTH_SECRET"), "{}", out.stderr);

    // watch with a token, or minting its own from AUTH_SECRET.
    let mut child =
        s.command(&["watch", &id, "--token", &token]).stdout(Stdio::piped()).kill_on_drop(true).spawn().unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    assert!(next_line(&mut lines).await.contains("active"));
    child.kill().await.unwrap();
    let mut child = s
        .command(&["watch", &id])
        .env("AUTH_SECRET", SECRET)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    assert!(next_line(&mut lines).await.contains("active"));
    child.kill().await.unwrap();
    let out = s.run(&["watch", &id]).await;
    assert_eq!(out.code, 1, "no token: {}", out.stderr);
    assert!(out.stderr.contains("unauthorized"), "{}", out.stderr);
}

/// A TLS front for a plain service, as a reverse proxy would be: it terminates TLS with `cert`
/// and forwards the bytes.
async fn tls_front(target: SocketAddr, cert: &rcgen::CertifiedKey<rcgen::KeyPair>) -> SocketAddr {
    use tokio_rustls::rustls;
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                let Ok(mut plain) = tokio::net::TcpStream::connect(target).await else { return };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_and_wss_behind_a_tls_front() {
    let s = stack().await;
    let id = s.create().await;
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let (api, ws) = (tls_front(s.api, &cert).await, tls_front(s.ws, &cert).await);
    // The certificate is trusted through the standard SSL_CERT_FILE, as a private CA would be.
    let ca = std::env::temp_dir().join(format!("auctionctl-test-ca-{}.pem", api.port()));
    std::fs::write(&ca, cert.cert.pem()).unwrap();
    let command = |args: &[&str], trusted: bool| {
        let mut command = s.command(args);
        command
            .env("AUCTION_API_URL", format!("https://localhost:{}", api.port()))
            .env("AUCTION_WS_URL", format!("wss://localhost:{}", ws.port()));
        if trusted {
            command.env("SSL_CERT_FILE", &ca);
        } else {
            command.env_remove("SSL_CERT_FILE").env_remove("SSL_CERT_DIR");
        }
        command
    };

    let out = within("get over https", command(&["get", &id, "--output", "json"], true).output()).await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let auction: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(auction["auction_id"], id.as_str());

    let mut child =
        command(&["watch", &id, "--output", "json"], true).stdout(Stdio::piped()).kill_on_drop(true).spawn().unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = next_line(&mut lines).await;
    let frame: Value = serde_json::from_str(&first).unwrap();
    assert_eq!((frame["type"].as_str(), frame["auction_id"].as_str()), (Some("snapshot"), Some(id.as_str())));
    child.kill().await.unwrap();

    // A certificate nobody here trusts is refused, and the message says why.
    let out = within("get with an untrusted certificate", command(&["get", &id], false).output()).await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("certificate"), "{stderr}");
    std::fs::remove_file(&ca).unwrap();
}

/// A front for the auction service that passes the first request on but drops its connection
/// before the answer (an answer lost on the way back), and relays every later connection whole.
async fn answer_losing_front(target: SocketAddr) -> SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut first = true;
        while let Ok((mut client, _)) = listener.accept().await {
            let mut upstream = tokio::net::TcpStream::connect(target).await.unwrap();
            if std::mem::take(&mut first) {
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    let mut request = Vec::new();
                    // The whole request: its headers, then as many bytes as Content-Length says.
                    loop {
                        let n = client.read(&mut buf).await.unwrap();
                        assert!(n > 0, "the client closed before sending its request");
                        request.extend_from_slice(&buf[..n]);
                        let text = String::from_utf8_lossy(&request).to_ascii_lowercase();
                        if let Some(end) = text.find("\r\n\r\n") {
                            let length = text
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:"))
                                .map_or(0, |v| v.trim().parse::<usize>().unwrap());
                            if request.len() >= end + 4 + length {
                                break;
                            }
                        }
                    }
                    upstream.write_all(&request).await.unwrap();
                    // The answer has begun: the service has done the work. The client never sees it.
                    let _ = upstream.read(&mut buf).await.unwrap();
                    drop(client);
                });
            } else {
                tokio::spawn(async move {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                });
            }
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_sends_again_with_its_idempotency_key_when_the_answer_is_lost() {
    let s = stack().await;
    let front = answer_losing_front(s.api).await;
    let out = within(
        "auctionctl create through a front that loses the first answer",
        s.command(&["create", "--duration", "5m", "--starting-bid", "10", "--output", "json"])
            .env("AUCTION_API_URL", format!("http://{front}"))
            .output(),
    )
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("sending the create again"), "{stderr}");
    let created: Value = serde_json::from_slice(&out.stdout).unwrap();
    let list = s.run(&["list", "--output", "json"]).await.json();
    let ids: Vec<&str> =
        list["auctions"].as_array().unwrap().iter().map(|a| a["auction_id"].as_str().unwrap()).collect();
    assert_eq!(ids, [created["auction_id"].as_str().unwrap()], "one auction, the one the first attempt made");
}

/// A stand-in auction service that answers every request with `auction`, adding `reserve_price`
/// only for a request carrying `Authorization: Bearer <token>` (as the real one does with
/// `ADMIN_TOKEN` set), and records each request's first line and whether it carried the token.
async fn operator_aware_stand_in(
    auction: Value,
    token: &'static str,
) -> (SocketAddr, std::sync::Arc<std::sync::Mutex<Vec<(String, bool)>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let (auction, log) = (auction.clone(), log.clone());
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                while !String::from_utf8_lossy(&request).contains("\r\n\r\n") {
                    let n = client.read(&mut buf).await.unwrap();
                    if n == 0 {
                        return;
                    }
                    request.extend_from_slice(&buf[..n]);
                }
                let text = String::from_utf8_lossy(&request).to_ascii_lowercase();
                let operator = text.lines().any(|l| l.trim() == format!("authorization: bearer {token}"));
                log.lock().unwrap().push((text.lines().next().unwrap_or_default().to_owned(), operator));
                let mut body = auction;
                if operator {
                    body["reserve_price"] = Value::from("150.00");
                }
                let body = body.to_string();
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                client.write_all(answer.as_bytes()).await.unwrap();
            });
        }
    });
    (addr, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_shows_the_reserve_status_buy_now_and_with_the_operator_token_the_reserve() {
    const ADMIN: &str = "operator-token-0123456789";
    let now = chrono::Utc::now();
    let auction = serde_json::json!({
        "auction_id": "a1", "title": "Brass lamp", "status": "active",
        "start_time": now - chrono::Duration::minutes(1), "end_time": now + chrono::Duration::minutes(9),
        "starting_bid": "100.00", "current_bid": "120.00", "highest_bidder": "alice",
        "min_next_bid": "122.50", "bid_count": 1, "seq": 2, "server_time": now,
        "recent_bids": [], "extension_window_s": 30, "extension_s": 30,
        "created_at": now - chrono::Duration::minutes(2), "winner": null, "final_price": null,
        "reserve_met": false, "buy_now_price": "500.00"
    });
    let (api, seen) = operator_aware_stand_in(auction, ADMIN).await;
    let get = |extra: &[&str]| {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_auctionctl"));
        command
            .args(["get", "a1", "--api-url", &format!("http://{api}")])
            .args(extra)
            .env_remove("AUCTION_ADMIN_TOKEN")
            .env_remove("AUCTION_OUTPUT")
            .stdin(Stdio::null());
        command
    };
    let line = |text: &str, key: &str| text.lines().find(|l| l.starts_with(key)).unwrap_or_default().to_owned();

    let out = within("get without the token", get(&[]).output()).await.unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(line(&text, "reserve price"), "reserve price   hidden (reserve not met)", "{text}");
    assert_eq!(line(&text, "buy it now"), "buy it now      500.00", "{text}");

    let out = within("get with the token", get(&["--admin-token", ADMIN]).output()).await.unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(line(&text, "reserve price"), "reserve price   150.00 (reserve not met)", "{text}");

    let out = within("get as JSON with the token", get(&["--admin-token", ADMIN, "--output", "json"]).output())
        .await
        .unwrap();
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((json["reserve_price"].as_str(), json["reserve_met"].as_bool()), (Some("150.00"), Some(false)));

    let seen = seen.lock().unwrap().clone();
    let lines: Vec<(&str, bool)> = seen.iter().map(|(l, op)| (l.as_str(), *op)).collect();
    assert_eq!(
        lines,
        [
            ("get /api/v1/auctions/a1 http/1.1", false),
            ("get /api/v1/auctions/a1 http/1.1", true),
            ("get /api/v1/auctions/a1 http/1.1", true)
        ]
    );
}

/// Needs the server side of "Proxy bids, reserve and buy-it-now" (docs/protocol.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reserve_and_buy_now_from_create_to_the_close() {
    const ADMIN: &str = "operator-token-0123456789";
    let mut env = TestEnv::new().await;
    env.set("ADMIN_TOKEN", ADMIN);
    let (api, _, _) = env.start_auction().await;
    let ws = env.start_bidding().await;
    let (analytics, _) = env.start_analytics().await;
    let s = Stack { env, api, ws, analytics };
    let line = |text: &str, key: &str| text.lines().find(|l| l.starts_with(key)).unwrap_or_default().to_owned();

    let create = ["create", "--duration", "5m", "--starting-bid", "100", "--reserve", "150", "--buy-now", "500"];
    let mut args = create.to_vec();
    args.extend(["--admin-token", ADMIN]);
    let out = s.run(&args).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(line(&out.stdout, "reserve price"), "reserve price   150.00 (reserve not met)", "{}", out.stdout);
    assert_eq!(line(&out.stdout, "buy it now"), "buy it now      500.00", "{}", out.stdout);
    let id = line(&out.stdout, "auction").split_whitespace().nth(1).unwrap().to_owned();

    // Bidders see only whether the reserve is met; the operator sees the reserve.
    let (table, json) = s.both(&["get", &id]).await;
    assert_eq!(line(&table, "reserve price"), "reserve price   hidden (reserve not met)", "{table}");
    assert!(json.get("reserve_price").is_none(), "{json}");
    s.bid(&id, "alice", "120").await;
    let (table, _) = s.both(&["get", &id]).await;
    assert_eq!(line(&table, "buy it now"), "buy it now      500.00", "still below the reserve: {table}");
    s.bid(&id, "bob", "160").await;
    let out = s.run(&["get", &id, "--admin-token", ADMIN]).await;
    assert_eq!(line(&out.stdout, "reserve price"), "reserve price   150.00 (reserve met)", "{}", out.stdout);
    assert_eq!(line(&out.stdout, "buy it now"), "", "gone once the reserve is met: {}", out.stdout);

    // An auction that closes below its reserve has no winner.
    let out = s
        .run(&[
            "create",
            "--duration",
            "3s",
            "--extension-window",
            "0s",
            "--starting-bid",
            "100",
            "--reserve",
            "150",
            "--admin-token",
            ADMIN,
        ])
        .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let short = line(&out.stdout, "auction").split_whitespace().nth(1).unwrap().to_owned();
    s.bid(&short, "carol", "110").await;
    let deadline = Instant::now() + WAIT;
    let text = loop {
        let out = s.run(&["get", &short]).await;
        if line(&out.stdout, "status").ends_with("ended") {
            break out.stdout;
        }
        assert!(Instant::now() < deadline, "never ended: {}", out.stdout);
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(line(&text, "winner"), "winner          none: reserve not met, no sale", "{text}");
    assert_eq!(line(&text, "final price"), "final price     -", "{text}");
}
