//! The bidding service's limits, each answered in the protocol's own words.

use auction_proto::RejectReason;
use auction_proto::ws::ServerFrame;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bidder_over_the_rate_is_told_and_stays_connected() {
    const RATE: u32 = 3;
    let mut env = TestEnv::new().await;
    env.set("WS_BID_RATE", &RATE.to_string());
    env.set("WS_USER_BID_RATE", "1000");
    let api = env.auction_service().await;
    let node = env.bidding_service().await;
    let auction = api.create_open(600, "10", 0).await;
    let (mut ws, _) = node.connect(auction.auction_id.as_str(), "alice").await;
    let mut limited = 0;
    for i in 0..10 {
        match ws.bid("1.00", Some(&format!("r{i}"))).await {
            ServerFrame::BidRejected(r) if r.reason == RejectReason::RateLimited => {
                assert!(r.message.contains("at most 3 a second"), "{}", r.message);
                limited += 1;
            }
            ServerFrame::BidRejected(r) => assert_eq!(r.reason, RejectReason::BidTooLow),
            other => panic!("{other:?}"),
        }
    }
    assert!(limited >= 6, "only {limited} of 10 rapid bids were limited");
    ws.send(&auction_proto::ClientFrame::Ping).await;
    ws.next_matching(|f| matches!(f, ServerFrame::Pong).then_some(())).await;
    // The allowance comes back: no event says so, time has to pass. The allowance is a GCRA of
    // RATE bids a second, which frees one bid every 1/RATE s after the last one it let through,
    // and that was before the last bid above was answered; so waiting 1/RATE s from here is
    // always enough (the margin covers the difference between tokio's timer and the limiter's
    // clock).
    tokio::time::sleep(std::time::Duration::from_secs(1) / RATE + std::time::Duration::from_millis(20)).await;
    match ws.bid("10", None).await {
        ServerFrame::BidAccepted(_) => {}
        other => panic!("the allowance did not come back: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_is_limited_across_connections() {
    let mut env = TestEnv::new().await;
    env.set("WS_USER_BID_RATE", "2");
    let api = env.auction_service().await;
    let node = env.bidding_service().await;
    let auction = api.create_open(600, "10", 0).await;
    let id = auction.auction_id.as_str();
    let (mut a, _) = node.connect(id, "alice").await;
    let (mut b, _) = node.connect(id, "alice").await;
    let mut reasons = Vec::new();
    for i in 0..3 {
        for ws in [&mut a, &mut b] {
            if let ServerFrame::BidRejected(r) = ws.bid("1.00", Some(&format!("u{i}-{}", reasons.len()))).await {
                reasons.push(r.reason);
            }
        }
    }
    assert!(reasons.iter().filter(|r| **r == RejectReason::RateLimited).count() >= 3, "{reasons:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_caps_hold() {
    let mut env = TestEnv::new().await;
    env.set("WS_MAX_CONNECTIONS_PER_USER", "2");
    env.set("WS_MAX_CONNECTIONS", "3");
    let api = env.auction_service().await;
    let node = env.bidding_service().await;
    let auction = api.create_open(600, "10", 0).await;
    let id = auction.auction_id.as_str();
    let first = node.connect(id, "alice").await;
    let _second = node.connect(id, "alice").await;
    assert_eq!(node.refused_status(&format!("/ws/auction/{id}?user_id=alice")).await, 429);
    let _bob = node.connect(id, "bob").await;
    assert_eq!(node.refused_status(&format!("/ws/auction/{id}?user_id=carol")).await, 503, "the node is full");
    // A closed connection frees its place.
    drop(first);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio_tungstenite::connect_async(node.ws_url(id, "alice")).await {
            Ok(_) => break,
            Err(_) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await
            }
            Err(e) => panic!("the place was never freed: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_allowed_origins_may_connect() {
    let mut env = TestEnv::new().await;
    env.set("WS_ALLOWED_ORIGINS", "https://bids.example.com");
    let api = env.auction_service().await;
    let node = env.bidding_service().await;
    let auction = api.create_open(600, "10", 0).await;
    let url = node.ws_url(auction.auction_id.as_str(), "alice");
    let with_origin = |origin: &str| {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut request = url.clone().into_client_request().unwrap();
        request.headers_mut().insert("origin", origin.parse().unwrap());
        request
    };
    match tokio_tungstenite::connect_async(with_origin("https://evil.example")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => assert_eq!(response.status(), 403),
        other => panic!("a foreign origin was let in: {other:?}"),
    }
    assert!(tokio_tungstenite::connect_async(with_origin("https://bids.example.com")).await.is_ok());
    assert!(tokio_tungstenite::connect_async(url.clone()).await.is_ok(), "no Origin: not a browser, allowed");
}

/// A bidder that reads its socket but never answers anything: the server's pings go unanswered,
/// which a WebSocket library would do for it on every read.
struct Silent {
    stream: tokio::net::TcpStream,
}

impl Silent {
    /// Opens the WebSocket by hand and reads the handshake's answer, within [`WAIT`].
    async fn connect(node: &Node, auction: &str, user: &str) -> Silent {
        tokio::time::timeout(WAIT, Silent::handshake(node, auction, user)).await.expect("no answer to the upgrade")
    }

    async fn handshake(node: &Node, auction: &str, user: &str) -> Silent {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(node.addr).await.unwrap();
        let request = format!(
            "GET /ws/auction/{auction}?user_id={user} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
            node.addr
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8];
            stream.read_exact(&mut byte).await.unwrap();
            head.push(byte[0]);
        }
        assert!(head.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&head));
        Silent { stream }
    }

    /// Reads frames (never answering) until the server's close frame; its code and reason.
    async fn close_frame(&mut self) -> (u16, String) {
        use tokio::io::AsyncReadExt;
        let read = async {
            loop {
                let mut header = [0u8; 2];
                self.stream.read_exact(&mut header).await.unwrap();
                assert_eq!(header[1] & 0x80, 0, "a server's frames are not masked");
                let len = match header[1] & 0x7f {
                    126 => usize::from(self.stream.read_u16().await.unwrap()),
                    127 => usize::try_from(self.stream.read_u64().await.unwrap()).unwrap(),
                    n => usize::from(n),
                };
                let mut payload = vec![0u8; len];
                self.stream.read_exact(&mut payload).await.unwrap();
                if header[0] & 0x0f == 0x8 {
                    let code = u16::from_be_bytes([payload[0], payload[1]]);
                    return (code, String::from_utf8_lossy(&payload[2..]).into_owned());
                }
            }
        };
        tokio::time::timeout(WAIT, read).await.expect("the silent connection was never closed")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_is_closed() {
    const IDLE: std::time::Duration = std::time::Duration::from_millis(600);
    let mut env = TestEnv::new().await;
    env.set("WS_IDLE_TIMEOUT", &format!("{}ms", IDLE.as_millis()));
    let api = env.auction_service().await;
    let node = env.bidding_service().await;
    let auction = api.create_open(600, "10", 0).await;
    let connected = tokio::time::Instant::now();
    let mut silent = Silent::connect(&node, auction.auction_id.as_str(), "sleepy").await;
    let (code, reason) = silent.close_frame().await;
    assert_eq!((code, reason.as_str()), (1000, "idle timeout"));
    assert!(connected.elapsed() >= IDLE, "closed after {:?}, before the idle timeout", connected.elapsed());
    // One that keeps talking stays, for well past the timeout: only time passing shows that, so
    // it pings for two and a half timeouts, four times a timeout.
    let (mut awake, _) = node.connect(auction.auction_id.as_str(), "awake").await;
    let until = tokio::time::Instant::now() + IDLE * 5 / 2;
    while tokio::time::Instant::now() < until {
        awake.send(&auction_proto::ClientFrame::Ping).await;
        awake.next_matching(|f| matches!(f, ServerFrame::Pong).then_some(())).await;
        tokio::time::sleep(IDLE / 4).await;
    }
    assert!(matches!(awake.bid("10", None).await, ServerFrame::BidAccepted(_)));
}
