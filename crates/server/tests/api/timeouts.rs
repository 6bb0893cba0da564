//! HTTP connections that make no progress: a request head sent by halves, a kept-alive connection
//! left silent, more connections than the limit. Each is closed, on every service, while a
//! WebSocket outlives both timers. Raw TCP clients, so that nothing is hidden by a client's own
//! timers; every close is awaited (read until EOF), bounded by [`WAIT`].

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::*;

const HALF_A_HEAD: &[u8] = b"GET /health HTTP/1.1\r\nHost: test\r\n";
const A_REQUEST: &[u8] = b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n";

/// Reads until the server closes the connection (EOF or reset); returns what was read.
async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let read = tokio::time::timeout(WAIT, stream.read(&mut buf)).await;
        match read.unwrap_or_else(|_| panic!("the connection is still open after {WAIT:?}")) {
            Ok(0) | Err(_) => return all,
            Ok(n) => all.extend_from_slice(&buf[..n]),
        }
    }
}

/// Reads one whole response (head and a `content-length` body) of a kept-alive connection.
async fn read_response(stream: &mut TcpStream) -> String {
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&all).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|line| line.to_ascii_lowercase().strip_prefix("content-length:").map(|n| n.trim().to_owned()))
                .and_then(|n| n.parse::<usize>().ok())
                .expect("a content-length");
            if body.len() >= length {
                return text;
            }
        }
        let n = tokio::time::timeout(WAIT, stream.read(&mut buf)).await.expect("no answer").expect("read");
        assert!(n > 0, "closed before a whole answer: {:?}", String::from_utf8_lossy(&all));
        all.extend_from_slice(&buf[..n]);
    }
}

/// Whether the server still holds `stream` open with nothing to read.
fn still_open(stream: &TcpStream) -> bool {
    let mut buf = [0u8; 1];
    matches!(stream.try_read(&mut buf), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

/// One service of each kind, with the environment's settings.
async fn every_service(env: &mut TestEnv) -> Vec<(&'static str, SocketAddr)> {
    let auction = env.start_auction().await.0;
    let bidding = env.start_bidding().await;
    let analytics = env.start_analytics().await.0;
    vec![("auction", auction), ("bidding", bidding), ("analytics", analytics)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_sent_request_head_is_closed_after_the_header_timeout() {
    const HEADER: Duration = Duration::from_millis(300);
    let mut env = TestEnv::new().await;
    env.set("HTTP_HEADER_TIMEOUT", "300ms");
    env.set("HTTP_IDLE_TIMEOUT", "30s");
    for (service, addr) in every_service(&mut env).await {
        let opened = Instant::now();
        let mut slow = TcpStream::connect(addr).await.unwrap();
        slow.write_all(HALF_A_HEAD).await.unwrap();
        let answer = read_until_closed(&mut slow).await;
        let held = opened.elapsed();
        assert!(answer.is_empty(), "{service}: answered half a head: {:?}", String::from_utf8_lossy(&answer));
        assert!(held >= HEADER, "{service}: closed after {held:?}, before the header timeout");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_kept_alive_connection_is_closed_after_the_idle_timeout() {
    let mut env = TestEnv::new().await;
    // The header timeout is the shorter: a connection idle between requests must outlive it.
    env.set("HTTP_HEADER_TIMEOUT", "200ms");
    env.set("HTTP_IDLE_TIMEOUT", "2s");
    for (service, addr) in every_service(&mut env).await {
        let mut idle = TcpStream::connect(addr).await.unwrap();
        idle.write_all(A_REQUEST).await.unwrap();
        let answer = read_response(&mut idle).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{service}: {answer}");
        let answered = Instant::now();
        let more = read_until_closed(&mut idle).await;
        let held = answered.elapsed();
        assert!(more.is_empty(), "{service}: {:?}", String::from_utf8_lossy(&more));
        // The server's idle clock starts as the answer is made, a moment before it arrives here.
        assert!(held >= Duration::from_millis(1500), "{service}: an idle connection was closed after {held:?}");

        // On a kept-alive connection, the header timer runs from the next request's first byte.
        let mut kept = TcpStream::connect(addr).await.unwrap();
        kept.write_all(A_REQUEST).await.unwrap();
        read_response(&mut kept).await;
        kept.write_all(HALF_A_HEAD).await.unwrap();
        let started = Instant::now();
        assert!(read_until_closed(&mut kept).await.is_empty());
        let held = started.elapsed();
        assert!(held < Duration::from_millis(1500), "{service}: a half-sent second head was held {held:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_body_that_stalls_is_closed_after_the_idle_timeout() {
    let mut env = TestEnv::new().await;
    env.set("HTTP_HEADER_TIMEOUT", "200ms");
    env.set("HTTP_IDLE_TIMEOUT", "1s");
    let addr = env.start_auction().await.0;
    let mut stalled = TcpStream::connect(addr).await.unwrap();
    let head =
        "POST /api/v1/auctions HTTP/1.1\r\nHost: test\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n";
    stalled.write_all(head.as_bytes()).await.unwrap();
    stalled.write_all(b"{\"title\":").await.unwrap();
    let sent = Instant::now();
    let answer = read_until_closed(&mut stalled).await;
    let held = sent.elapsed();
    assert!(answer.is_empty(), "{:?}", String::from_utf8_lossy(&answer));
    assert!(held >= Duration::from_millis(900), "closed after {held:?}, before the idle timeout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_connection_takes_a_place_until_it_is_closed() {
    let mut env = TestEnv::new().await;
    env.set("HTTP_HEADER_TIMEOUT", "2s");
    env.set("HTTP_MAX_CONNECTIONS", "1");
    let addr = env.start_analytics().await.0;
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(HALF_A_HEAD).await.unwrap();

    let mut refused = TcpStream::connect(addr).await.unwrap();
    // The server may have closed it already: the write's outcome says nothing.
    let _ = refused.write_all(A_REQUEST).await;
    assert!(read_until_closed(&mut refused).await.is_empty(), "answered beyond HTTP_MAX_CONNECTIONS");
    assert!(still_open(&slow), "the slow connection was closed before its timeout");

    assert!(read_until_closed(&mut slow).await.is_empty());
    // Its place is free again once it is closed.
    let mut next = TcpStream::connect(addr).await.unwrap();
    next.write_all(A_REQUEST).await.unwrap();
    let answer = read_response(&mut next).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_outlives_both_http_timers() {
    let mut env = TestEnv::new().await;
    env.set("HTTP_HEADER_TIMEOUT", "100ms");
    env.set("HTTP_IDLE_TIMEOUT", "100ms");
    // The server pings every 500 ms: the first ping comes well after both HTTP timers ran out.
    env.set("WS_IDLE_TIMEOUT", "1500ms");
    let api = env.auction_service().await;
    let node = env.bidding_service().await;
    let auction = api.create_open(600, "10", 0).await;
    let upgraded = Instant::now();
    let (mut ws, _) =
        tokio_tungstenite::connect_async(node.ws_url(auction.auction_id.as_str(), "alice")).await.unwrap();
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await.expect("no ping from the server") {
            Some(Ok(Message::Ping(_))) => break,
            Some(Ok(_)) => continue,
            other => panic!("the WebSocket ended: {other:?}"),
        }
    }
    assert!(upgraded.elapsed() > Duration::from_millis(300), "pinged too early to prove anything");
    ws.send(Message::text(auction_proto::ClientFrame::Ping.encode())).await.unwrap();
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await.expect("no pong") {
            Some(Ok(Message::Text(text))) if text.contains("pong") => break,
            Some(Ok(_)) => continue,
            other => panic!("the WebSocket ended: {other:?}"),
        }
    }
}
