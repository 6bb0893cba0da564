//! The real `auction-tui` in tmux against the real stack: bid by keystrokes, see another client's
//! bid, survive the bidding service going away, resend an unanswered bid after a reconnect, say so
//! when the bidder token expires (and stop reconnecting), set a max and be outbid by a proxy, quit
//! leaving the terminal usable.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use auction_server::testing::TestEnv;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

/// How long any one expected event may take before the test fails: a bug must fail the test,
/// never hang CI.
const WAIT: Duration = Duration::from_secs(10);

/// Awaits `step`, failing the test with `what` after [`WAIT`].
async fn within<T>(what: &str, step: impl Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, step).await.unwrap_or_else(|_| panic!("{what}: nothing after {WAIT:?}"))
}

/// A private tmux server with one shell, removed on drop.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn start() -> Tmux {
        // One server per test: the tests of this file run in parallel in one process.
        static STARTED: AtomicU32 = AtomicU32::new(0);
        let socket = format!("auction-tui-test-{}-{}", std::process::id(), STARTED.fetch_add(1, Ordering::Relaxed));
        let ok = Command::new("tmux")
            .args(["-L", &socket, "new-session", "-d", "-s", "t", "-x", "100", "-y", "32", "bash --norc --noprofile"])
            .env("PS1", "$ ")
            .status()
            .expect("tmux is not installed: scripts/test.sh installs it");
        assert!(ok.success());
        Tmux { socket }
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["-L", &self.socket, "send-keys", "-t", "t"];
        args.extend_from_slice(keys);
        assert!(Command::new("tmux").args(&args).status().unwrap().success());
    }

    fn screen(&self) -> String {
        let out = Command::new("tmux").args(["-L", &self.socket, "capture-pane", "-p", "-t", "t"]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until the screen shows every one of `texts`.
    async fn wait_for(&self, texts: &[&str]) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let screen = self.screen();
            if texts.iter().all(|t| screen.contains(t)) {
                return screen;
            }
            assert!(Instant::now() < deadline, "the screen never showed {texts:?}:\n{screen}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux").args(["-L", &self.socket, "kill-server"]).status();
    }
}

async fn bid(ws_base: &str, auction: &str, user: &str, amount: &str) {
    place(ws_base, auction, user, &format!(r#"{{"type":"place_bid","amount":"{amount}"}}"#)).await;
}

/// A proxy bid: `amount`, and the service bids for `user` up to `max`.
async fn bid_up_to(ws_base: &str, auction: &str, user: &str, amount: &str, max: &str) {
    place(ws_base, auction, user, &format!(r#"{{"type":"place_bid","amount":"{amount}","max_amount":"{max}"}}"#)).await;
}

/// Sends one `place_bid` frame as `user`, which must be accepted.
async fn place(ws_base: &str, auction: &str, user: &str, frame: &str) {
    within(&format!("{user}'s bid {frame}"), async {
        let (mut ws, _) =
            tokio_tungstenite::connect_async(format!("{ws_base}/ws/auction/{auction}?user_id={user}")).await.unwrap();
        ws.next().await.unwrap().unwrap();
        ws.send(Message::text(frame.to_owned())).await.unwrap();
        loop {
            let Message::Text(text) = ws.next().await.unwrap().unwrap() else { continue };
            assert!(!text.contains("bid_rejected"), "{text}");
            if text.contains("bid_accepted") {
                return;
            }
        }
    })
    .await;
}

/// Creates an auction open for ten minutes, starting at 10.00; returns its id.
async fn create_auction(api: SocketAddr) -> String {
    let now = chrono::Utc::now();
    let body = serde_json::json!({
        "title": "Brass lamp",
        "start_time": (now - chrono::Duration::seconds(1)).to_rfc3339(),
        "end_time": (now + chrono::Duration::minutes(10)).to_rfc3339(),
        "starting_bid": "10.00",
        "extension_window_s": 0
    });
    let created: serde_json::Value = within("creating the auction", async {
        reqwest::Client::new()
            .post(format!("http://{api}/api/v1/auctions"))
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    })
    .await;
    created["auction_id"].as_str().unwrap().to_owned()
}

/// Starts the TUI in `tmux`, in the room of `auction`, bidding as alice.
fn start_tui(tmux: &Tmux, api: SocketAddr, ws: SocketAddr, auction: &str) {
    let command = format!(
        "{} --user alice --auction {auction} --api-url http://{api} --ws-url ws://{ws}",
        env!("CARGO_BIN_EXE_auction-tui")
    );
    tmux.keys(&[&command, "Enter"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bid_watch_reconnect_and_quit_in_a_real_terminal() {
    let mut env = TestEnv::new().await;
    let (api, _, _) = env.start_auction().await;
    let (node, stop_node) = env.start_bidding_on(0).await;
    let (other, _) = env.start_bidding_on(0).await;
    let id = create_auction(api).await;

    let tmux = Tmux::start();
    start_tui(&tmux, api, node, &id);
    tmux.wait_for(&["Brass lamp", "min next   10.00", "live"]).await;

    // One key bids the minimum; the outcome shows inline.
    tmux.keys(&["m"]);
    tmux.wait_for(&["accepted: your bid of 10.00 leads", "alice (you)"]).await;

    // Another client's bid appears.
    bid(&format!("ws://{other}"), &id, "bob", "10.50").await;
    tmux.wait_for(&["current    10.50", "highest    bob", "min next   11.00"]).await;

    // The bidding service goes away: the room says so, and comes back with the right state,
    // including a bid placed elsewhere meanwhile.
    stop_node.cancel();
    tmux.wait_for(&["reconnecting"]).await;
    bid(&format!("ws://{other}"), &id, "carol", "11.00").await;
    env.start_bidding_on(node.port()).await;
    let screen = tmux.wait_for(&["current    11.00", "highest    carol", "live"]).await;
    assert!(!screen.contains("reconnecting"), "{screen}");

    // q quits and gives the terminal back.
    tmux.keys(&["q"]);
    tmux.keys(&["echo usable-$((40+2))", "Enter"]);
    let screen = tmux.wait_for(&["usable-42"]).await;
    assert!(!screen.contains("min next"), "the TUI's screen is still there:\n{screen}");
}

/// Needs the server side of "Proxy bids, reserve and buy-it-now" (docs/protocol.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_max_set_by_keys_leads_and_a_proxy_outbids_it_in_words() {
    let mut env = TestEnv::new().await;
    let (api, _, _) = env.start_auction().await;
    let node = env.start_bidding().await;
    let id = create_auction(api).await;
    let ws = format!("ws://{node}");

    // Bob holds the lead with a max of 30.00.
    bid_up_to(&ws, &id, "bob", "10.00", "30.00").await;
    let tmux = Tmux::start();
    start_tui(&tmux, api, node, &id);
    tmux.wait_for(&["Brass lamp", "highest    bob", "min next   10.50", "live"]).await;

    // Alice bids up to 20.00: bob's max answers at once, 20.50, and the room says why.
    tmux.keys(&["x", "20", "Enter"]);
    tmux.wait_for(&["outbid by a proxy", "current    20.50", "highest    bob"]).await;

    // Up to 60.00 passes bob's max: alice leads at 31.00, her max on screen.
    tmux.keys(&["x", "60", "Enter"]);
    tmux.wait_for(&["current    31.00", "alice (you) · your max 60.00", "up to your max 60.00"]).await;

    // Carol's max of 100.00 passes hers: the price goes to 61.00 and alice is told.
    bid_up_to(&ws, &id, "carol", "32.00", "100.00").await;
    let screen =
        tmux.wait_for(&["current    61.00", "highest    carol", "outbid by a proxy: carol's max leads at 61.00"]).await;
    assert!(!screen.contains("your max 60.00"), "a max is shown only while it leads:\n{screen}");
    tmux.keys(&["q"]);
}

/// A TCP proxy in front of a bidding node that can hold back everything the node says (so a bid
/// goes out and its answer never comes back) and cut every connection through it.
struct Proxy {
    addr: SocketAddr,
    muted: Arc<AtomicBool>,
    cuts: tokio::sync::watch::Sender<u64>,
}

impl Proxy {
    async fn start(target: SocketAddr) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let muted = Arc::new(AtomicBool::new(false));
        let (cuts, _) = tokio::sync::watch::channel(0);
        let (mute, cut) = (muted.clone(), cuts.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(target).await else { continue };
                let (mute, mut cut) = (mute.clone(), cut.subscribe());
                tokio::spawn(async move {
                    let (client_read, client_write) = client.into_split();
                    let (server_read, server_write) = server.into_split();
                    // Both sockets close when this task ends: at a cut, or when either side does.
                    tokio::select! {
                        () = pipe(client_read, server_write, None) => {}
                        () = pipe(server_read, client_write, Some(mute)) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Proxy { addr, muted, cuts }
    }

    /// From now on, what the node sends is read and dropped.
    fn mute(&self) {
        self.muted.store(true, Ordering::SeqCst);
    }

    /// Closes every connection through the proxy; new ones pass everything again.
    fn cut(&self) {
        self.muted.store(false, Ordering::SeqCst);
        self.cuts.send_modify(|n| *n += 1);
    }
}

/// Copies bytes from `from` to `to` until either closes, dropping them while `mute` is set.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mute: Option<Arc<AtomicBool>>,
) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if mute.as_ref().is_some_and(|m| m.load(Ordering::SeqCst)) {
            continue;
        }
        if to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bid_unanswered_when_the_connection_drops_is_resent_and_placed_once() {
    let mut env = TestEnv::new().await;
    let (api, _, _) = env.start_auction().await;
    let node = env.start_bidding().await;
    // The accepted bids as REST serves them come from MySQL, through the analytics service.
    env.start_analytics().await;
    let id = create_auction(api).await;
    let proxy = Proxy::start(node).await;

    let tmux = Tmux::start();
    start_tui(&tmux, api, proxy.addr, &id);
    tmux.wait_for(&["Brass lamp", "min next   10.00", "live"]).await;

    // The bid reaches the node and is placed, but its answer never reaches the TUI.
    proxy.mute();
    tmux.keys(&["m"]);
    let http = reqwest::Client::new();
    let auction = |http: reqwest::Client| {
        let url = format!("http://{api}/api/v1/auctions/{id}");
        async move { http.get(url).send().await.unwrap().json::<serde_json::Value>().await.unwrap() }
    };
    let deadline = Instant::now() + WAIT;
    while auction(http.clone()).await["highest_bidder"] != "alice" {
        assert!(Instant::now() < deadline, "the bid never reached the node");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let screen = tmux.wait_for(&["bidding 10.00"]).await;
    assert!(!screen.contains("accepted"), "the answer got through the muted proxy:\n{screen}");

    // The connection drops with the bid unanswered. After the reconnect the TUI resends it with
    // the same bid_id and the node answers with the first outcome: accepted. A bid resent under a
    // new id would be refused instead (alice already holds the high bid), and one never resent
    // would leave "bidding 10.00" on the screen.
    proxy.cut();
    tmux.wait_for(&["accepted: your bid of 10.00 leads", "alice (you)", "live"]).await;

    // Placed once: one bid on the auction, and one accepted bid in the durable record.
    let state = auction(http.clone()).await;
    assert_eq!((state["bid_count"].as_u64(), state["current_bid"].as_str()), (Some(1), Some("10.00")), "{state}");
    let deadline = Instant::now() + WAIT;
    let bids = loop {
        let url = format!("http://{api}/api/v1/auctions/{id}/bids");
        let page: serde_json::Value = http.get(url).send().await.unwrap().json().await.unwrap();
        let bids = page["bids"].as_array().unwrap().clone();
        if !bids.is_empty() {
            break bids;
        }
        assert!(Instant::now() < deadline, "the bid never reached mysql");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(bids.len(), 1, "{bids:?}");
    assert_eq!((bids[0]["bidder"].as_str(), bids[0]["amount"].as_str()), (Some("alice"), Some("10.00")));
    assert!(bids[0]["bid_id"].as_str().unwrap().starts_with("tui-"), "{bids:?}");
    tmux.keys(&["q"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_room_says_the_session_expired_when_the_token_does_and_stops_reconnecting() {
    const SECRET: &str = "a-test-secret-that-is-long-enough-0123";
    let mut env = TestEnv::new().await;
    env.set("AUTH_SECRET", SECRET);
    let (api, _, _) = env.start_auction().await;
    let node = env.start_bidding().await;
    let id = create_auction(api).await;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let alice = auction_proto::UserId::parse("alice").unwrap();
    let token = auction_proto::auth::mint(SECRET.as_bytes(), &alice, now, 3).unwrap();

    let tmux = Tmux::start();
    let command = format!(
        "{} --user alice --auction {id} --api-url http://{api} --ws-url ws://{node} --token {token}",
        env!("CARGO_BIN_EXE_auction-tui")
    );
    tmux.keys(&[&command, "Enter"]);
    tmux.wait_for(&["Brass lamp", "min next   10.00", "live"]).await;
    let screen = tmux.wait_for(&["session expired: restart with a new --token"]).await;
    assert!(!screen.contains("reconnecting"), "{screen}");
    // A bid now goes nowhere, and the room still says why.
    tmux.keys(&["m"]);
    let screen = tmux.wait_for(&["session expired: restart with a new --token"]).await;
    assert!(!screen.contains("bidding 10.00"), "{screen}");
    tmux.keys(&["q"]);
}
