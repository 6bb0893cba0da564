//! The real `auction-tui` in tmux against the real stack: bid by keystrokes, see another client's
//! bid, survive the bidding service going away, quit leaving the terminal usable.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::Duration;

use auction_server::testing::TestEnv;
use futures_util::{SinkExt, StreamExt};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

/// A private tmux server with one shell, removed on drop.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn start() -> Tmux {
        let socket = format!("auction-tui-test-{}", std::process::id());
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
        let deadline = Instant::now() + Duration::from_secs(10);
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
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("{ws_base}/ws/auction/{auction}?user_id={user}")).await.unwrap();
    ws.next().await.unwrap().unwrap();
    ws.send(Message::text(format!(r#"{{"type":"place_bid","amount":"{amount}"}}"#))).await.unwrap();
    loop {
        let Message::Text(text) = ws.next().await.unwrap().unwrap() else { continue };
        assert!(!text.contains("bid_rejected"), "{text}");
        if text.contains("bid_accepted") {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bid_watch_reconnect_and_quit_in_a_real_terminal() {
    let mut env = TestEnv::new().await;
    let (api, _, _) = env.start_auction().await;
    let (node, stop_node) = env.start_bidding_on(0).await;
    let (other, _) = env.start_bidding_on(0).await;
    let now = chrono::Utc::now();
    let body = serde_json::json!({
        "title": "Brass lamp",
        "start_time": (now - chrono::Duration::seconds(1)).to_rfc3339(),
        "end_time": (now + chrono::Duration::minutes(10)).to_rfc3339(),
        "starting_bid": "10.00",
        "extension_window_s": 0
    });
    let created: serde_json::Value = reqwest::Client::new()
        .post(format!("http://{api}/api/v1/auctions"))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["auction_id"].as_str().unwrap().to_owned();

    let tmux = Tmux::start();
    let command = format!(
        "{} --user alice --auction {id} --api-url http://{api} --ws-url ws://{node}",
        env!("CARGO_BIN_EXE_auction-tui")
    );
    tmux.keys(&[&command, "Enter"]);
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
