//! Test harness: an isolated environment per test (key prefix + database), services started
//! in-process on port 0, and small REST and WebSocket clients.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use auction_proto::rest::{Auction, CreateAuction};
use auction_proto::ws::{ServerFrame, Snapshot};
use auction_proto::{Amount, ClientFrame};
use chrono::{DateTime, Utc};
use futures_util::{SinkExt, StreamExt};
use tokio::io::AsyncBufReadExt;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

/// How long any single expected event may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(10);

pub use auction_server::testing::{TestEnv, mysql_base};

/// The harness's services as this crate's tests use them: with their clients.
pub trait EnvExt {
    async fn auction_service(&mut self) -> Api;
    async fn auction_instance(&mut self) -> (Api, String, CancellationToken);
    async fn bidding_service(&mut self) -> Node;
    async fn analytics_service(&mut self) -> SocketAddr;
    async fn analytics_instance(&mut self) -> (SocketAddr, CancellationToken);
    async fn auction_process(&self, instance_id: &str) -> Process;
    async fn process(&self, binary: &str, instance_id: &str, extra: &[(&str, &str)]) -> Process;
    fn starting_process(
        &self,
        binary: &str,
        instance_id: &str,
        extra: &[(&str, &str)],
    ) -> (tokio::process::Child, Output);
    fn command(&self, binary: &str, instance_id: &str, extra: &[(&str, &str)]) -> tokio::process::Command;
    fn doomed_process(&self, binary: &str, instance_id: &str, extra: &[(&str, &str)]) -> tokio::process::Child;
}

impl EnvExt for TestEnv {
    async fn auction_service(&mut self) -> Api {
        self.auction_instance().await.0
    }

    async fn auction_instance(&mut self) -> (Api, String, CancellationToken) {
        let (addr, instance, token) = self.start_auction().await;
        (Api::new(addr), instance, token)
    }

    async fn bidding_service(&mut self) -> Node {
        Node { addr: self.start_bidding().await }
    }

    async fn analytics_service(&mut self) -> SocketAddr {
        self.start_analytics().await.0
    }

    async fn analytics_instance(&mut self) -> (SocketAddr, CancellationToken) {
        self.start_analytics().await
    }

    /// Starts an auction service as a separate process (so that a test can kill it abruptly).
    async fn auction_process(&self, instance_id: &str) -> Process {
        self.process(env!("CARGO_BIN_EXE_auction-service"), instance_id, &[]).await
    }

    /// Starts a service binary as a separate process with extra environment variables (which win
    /// over the defaults here, `LOG_LEVEL=info` among them), and waits until it listens and its
    /// servers answered.
    async fn process(&self, binary: &str, instance_id: &str, extra: &[(&str, &str)]) -> Process {
        let (child, mut output) = self.starting_process(binary, instance_id, extra);
        let listening = output.line_matching(|line| listening_address(line).is_some()).await;
        let addr = listening.as_deref().and_then(listening_address);
        let addr = addr.unwrap_or_else(|| panic!("{binary} exited before listening: {:?}", output.seen));
        let ready = output.line_matching(is_ready).await;
        assert!(ready.is_some(), "{binary} exited before its servers answered: {:?}", output.seen);
        Process { child, addr, api: Api::new(addr), instance_id: instance_id.to_owned(), output }
    }

    /// Starts a service binary as a separate process and returns at once, with its output to
    /// read: for a test that watches it start.
    fn starting_process(
        &self,
        binary: &str,
        instance_id: &str,
        extra: &[(&str, &str)],
    ) -> (tokio::process::Child, Output) {
        let mut child = self.command(binary, instance_id, extra).spawn().expect("spawn service");
        let stdout = child.stdout.take().expect("stdout");
        // Read all along, so that the service never blocks on a full pipe, and kept for the test.
        let (sender, lines) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut reader = tokio::io::BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                let _ = sender.send(line);
            }
        });
        (child, Output { lines, seen: Vec::new() })
    }

    /// Starts a service binary that is meant to die (a failure-testing switch), without waiting
    /// for it to listen: it may well die first.
    fn doomed_process(&self, binary: &str, instance_id: &str, extra: &[(&str, &str)]) -> tokio::process::Child {
        let mut command = self.command(binary, instance_id, extra);
        command.stdout(std::process::Stdio::null());
        command.spawn().expect("spawn service")
    }

    /// The command that runs a service binary with this environment's settings.
    fn command(&self, binary: &str, instance_id: &str, extra: &[(&str, &str)]) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(binary);
        for name in self.unset_vars() {
            command.env_remove(name);
        }
        command
            .env("LOG_LEVEL", "info")
            .env("NO_COLOR", "1")
            .envs(self.vars())
            .envs(extra.iter().copied())
            .env("INSTANCE_ID", instance_id)
            .env("CONFIG_FILE", "/dev/null")
            .env_remove("RUST_LOG")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true);
        command
    }
}

/// Whether `line` is a service's "ready" line (its servers answered), in either log format.
pub fn is_ready(line: &str) -> bool {
    match serde_json::from_str::<serde_json::Value>(line) {
        Ok(json) => json["message"] == "ready",
        Err(_) => line.trim_end().ends_with(" ready"),
    }
}

/// The address in a service's "listening" line, in either log format.
pub fn listening_address(line: &str) -> Option<SocketAddr> {
    match serde_json::from_str::<serde_json::Value>(line) {
        Ok(json) if json["message"] == "listening" => json["address"].as_str()?.parse().ok(),
        Ok(_) => None,
        Err(_) => line.split_once("listening address=")?.1.split_whitespace().next()?.parse().ok(),
    }
}

/// A service running as a child process; killed (SIGKILL) on drop.
pub struct Process {
    pub child: tokio::process::Child,
    pub addr: SocketAddr,
    /// A REST client for it (meaningful for the auction service).
    pub api: Api,
    pub instance_id: String,
    pub output: Output,
}

impl Process {
    /// Stops the service as an operator would (SIGTERM) and returns everything it wrote to
    /// stdout, once it has exited. Fails the test unless it exits cleanly within [`WAIT`].
    pub async fn stop(mut self) -> Vec<String> {
        let pid = self.child.id().expect("the service is still running");
        let pid = nix::unistd::Pid::from_raw(i32::try_from(pid).expect("pid"));
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("send SIGTERM");
        let status = tokio::time::timeout(WAIT, self.child.wait()).await.expect("no exit after SIGTERM").unwrap();
        assert!(status.success(), "{status}");
        // Its stdout is closed now; the rest of the lines are on their way.
        while self.output.line_matching(|_| false).await.is_some() {}
        self.output.seen
    }
}

/// What a child process writes to stdout, one line at a time.
pub struct Output {
    lines: tokio::sync::mpsc::UnboundedReceiver<String>,
    /// Every line read so far, in order.
    pub seen: Vec<String>,
}

impl Output {
    /// Reads (keeping every line in `seen`) until a line matches `pick`, or `None` once the
    /// output has ended; fails the test after [`WAIT`].
    pub async fn line_matching(&mut self, mut pick: impl FnMut(&str) -> bool) -> Option<String> {
        let read = async {
            while let Some(line) = self.lines.recv().await {
                self.seen.push(line.clone());
                if pick(&line) {
                    return Some(line);
                }
            }
            None
        };
        tokio::time::timeout(WAIT, read).await.expect("timed out reading the service's output")
    }
}

/// A REST client for one auction service.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub http: reqwest::Client,
}

impl Api {
    pub fn new(addr: SocketAddr) -> Api {
        Api { base: format!("http://{addr}"), http: reqwest::Client::new() }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// POSTs raw JSON to create an auction; returns status and body.
    pub async fn post_auction(&self, body: &serde_json::Value) -> (u16, serde_json::Value) {
        let response = self.http.post(self.url("/api/v1/auctions")).json(body).send().await.expect("post");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(serde_json::Value::Null))
    }

    pub async fn create(&self, body: &CreateAuction) -> Auction {
        let (status, json) = self.post_auction(&serde_json::to_value(body).expect("json")).await;
        assert_eq!(status, 201, "create failed: {json}");
        serde_json::from_value(json).expect("auction body")
    }

    /// An auction that opened a second ago and closes after `seconds`, with the given settings.
    pub async fn create_open(&self, seconds: i64, starting_bid: &str, extension_window_s: u32) -> Auction {
        let now = Utc::now();
        self.create(&CreateAuction {
            title: Some("Test lot".into()),
            start_time: now - chrono::Duration::seconds(1),
            end_time: now + chrono::Duration::seconds(seconds),
            starting_bid: amount(starting_bid),
            extension_window_s: Some(extension_window_s),
            extension_s: Some(30),
            buy_now_price: None,
            reserve_price: None,
        })
        .await
    }

    pub async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        let response = self.http.get(self.url(path)).send().await.expect("get");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(serde_json::Value::Null))
    }

    pub async fn post(&self, path: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
        let response = self.http.post(self.url(path)).json(body).send().await.expect("post");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(serde_json::Value::Null))
    }

    pub async fn auction(&self, id: &str) -> Auction {
        let (status, json) = self.get(&format!("/api/v1/auctions/{id}")).await;
        assert_eq!(status, 200, "{json}");
        serde_json::from_value(json).expect("auction body")
    }
}

/// The value of metric `name` (a line `name value`) in Prometheus text, if it is there.
pub fn metric(text: &str, name: &str) -> Option<f64> {
    let line = text.lines().find(|l| l.split_whitespace().next() == Some(name))?;
    line.split_whitespace().last()?.parse().ok()
}

pub fn amount(text: &str) -> Amount {
    Amount::parse(text).expect("test amount")
}

/// One bidding-service node.
#[derive(Clone, Copy)]
pub struct Node {
    pub addr: SocketAddr,
}

impl Node {
    pub fn ws_url(&self, auction: &str, user: &str) -> String {
        format!("ws://{}/ws/auction/{auction}?user_id={user}", self.addr)
    }

    /// Connects as `user` and returns the client with its first snapshot.
    pub async fn connect(&self, auction: &str, user: &str) -> (Ws, Snapshot) {
        let (stream, _) = tokio_tungstenite::connect_async(self.ws_url(auction, user)).await.expect("ws connect");
        let mut ws = Ws { stream, seen: Vec::new() };
        match ws.next().await {
            ServerFrame::Snapshot(snapshot) => (ws, snapshot),
            other => panic!("expected a snapshot first, got {other:?}"),
        }
    }

    /// Tries to connect to a raw URL path; returns the HTTP status of a refused upgrade.
    pub async fn refused_status(&self, path_and_query: &str) -> u16 {
        let url = format!("ws://{}{path_and_query}", self.addr);
        match tokio_tungstenite::connect_async(url).await {
            Ok(_) => panic!("upgrade to {path_and_query} was accepted"),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status().as_u16(),
            Err(e) => panic!("unexpected error for {path_and_query}: {e}"),
        }
    }
}

/// A WebSocket client that keeps every frame it received, in order.
pub struct Ws {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub seen: Vec<ServerFrame>,
}

impl Ws {
    pub fn from_stream(stream: WebSocketStream<MaybeTlsStream<TcpStream>>) -> Ws {
        Ws { stream, seen: Vec::new() }
    }

    pub async fn send(&mut self, frame: &ClientFrame) {
        self.send_text(&frame.encode()).await;
    }

    pub async fn send_text(&mut self, text: &str) {
        self.stream.send(Message::text(text)).await.expect("ws send");
    }

    pub async fn send_message(&mut self, message: Message) {
        self.stream.send(message).await.expect("ws send");
    }

    /// The next frame, recorded in `seen`; fails the test after [`WAIT`] or if the connection ends.
    pub async fn next(&mut self) -> ServerFrame {
        match self.next_or_end().await {
            Some(frame) => frame,
            None => panic!("expected a text frame, but the connection ended"),
        }
    }

    /// The next frame, recorded in `seen`, or `None` once the connection has ended (close, EOF or
    /// reset); fails the test after [`WAIT`] or on a binary frame.
    pub async fn next_or_end(&mut self) -> Option<ServerFrame> {
        loop {
            let message = tokio::time::timeout(WAIT, self.stream.next()).await.expect("timed out waiting for a frame");
            match message {
                Some(Ok(Message::Text(text))) => {
                    let frame: ServerFrame =
                        serde_json::from_str(&text).unwrap_or_else(|e| panic!("bad frame {text}: {e}"));
                    self.seen.push(frame.clone());
                    return Some(frame);
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(Message::Close(_)) | Err(_)) | None => return None,
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// Reads until a frame matches `pick`, keeping the others in `seen`.
    pub async fn next_matching<T>(&mut self, mut pick: impl FnMut(&ServerFrame) -> Option<T>) -> T {
        loop {
            let frame = self.next().await;
            if let Some(found) = pick(&frame) {
                return found;
            }
        }
    }

    /// Places a bid and returns the outcome frame (`bid_accepted` or `bid_rejected`).
    pub async fn bid(&mut self, amount: &str, bid_id: Option<&str>) -> ServerFrame {
        let bid_id = bid_id.map(|id| format!(r#","bid_id":"{id}""#)).unwrap_or_default();
        self.send_text(&format!(r#"{{"type":"place_bid","amount":"{amount}"{bid_id}}}"#)).await;
        self.outcome().await
    }

    pub async fn outcome(&mut self) -> ServerFrame {
        self.next_matching(|f| {
            matches!(f, ServerFrame::BidAccepted(_) | ServerFrame::BidRejected(_)).then(|| f.clone())
        })
        .await
    }

    /// Sends `sync` and returns the fresh snapshot.
    pub async fn sync(&mut self) -> Snapshot {
        self.send(&ClientFrame::Sync).await;
        self.next_matching(|f| match f {
            ServerFrame::Snapshot(s) => Some(s.clone()),
            _ => None,
        })
        .await
    }

    /// The next `error` frame's code.
    pub async fn error_code(&mut self) -> String {
        self.next_matching(|f| match f {
            ServerFrame::Error(e) => Some(e.code.clone()),
            _ => None,
        })
        .await
    }

    /// Reads (keeping text frames in `seen`) until the server's Close, and returns its code and
    /// reason; fails the test after [`WAIT`] or if the connection ends without one.
    pub async fn close_frame(&mut self) -> (u16, String) {
        loop {
            let message = tokio::time::timeout(WAIT, self.stream.next()).await.expect("timed out waiting for a close");
            match message {
                Some(Ok(Message::Text(text))) => {
                    self.seen.push(serde_json::from_str(&text).unwrap_or_else(|e| panic!("bad frame {text}: {e}")));
                }
                Some(Ok(Message::Close(Some(frame)))) => return (u16::from(frame.code), frame.reason.to_string()),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    }

    /// Sends `text` while reading, for a frame the server refuses mid-send; returns the close code.
    pub async fn send_expecting_close(self, text: String) -> Option<u16> {
        let (mut sink, mut stream) = self.stream.split();
        let send = async move {
            // The server may close before the whole frame is written; that is the point.
            let _ = sink.send(Message::text(text)).await;
        };
        let read = async move {
            loop {
                match tokio::time::timeout(WAIT, stream.next()).await.expect("timed out waiting for close") {
                    Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                    Some(Ok(_)) => continue,
                    Some(Err(_)) | None => return None,
                }
            }
        };
        tokio::pin!(read);
        tokio::select! {
            code = &mut read => code,
            () = send => read.await,
        }
    }
}

/// Sleeps until Redis time (as `server_time` reported it, `observed` locally) passes `at`.
pub async fn sleep_past(at: DateTime<Utc>, server_time: DateTime<Utc>, observed: tokio::time::Instant) {
    let wait = (at - server_time).to_std().unwrap_or_default() + Duration::from_millis(20);
    tokio::time::sleep_until(observed + wait).await;
}

/// The test Redis as host:port, for a proxy in front of it.
pub fn redis_target() -> String {
    let url = redis_url();
    format!("{}:{}", url.host_str().expect("redis host"), url.port().unwrap_or(6379))
}

/// The test Redis's address with `proxy` in place of its host and port.
pub fn redis_through(proxy: SocketAddr) -> String {
    let mut url = redis_url();
    url.set_host(Some(&proxy.ip().to_string())).expect("proxy host");
    url.set_port(Some(proxy.port())).expect("proxy port");
    url.to_string()
}

fn redis_url() -> url::Url {
    let address = auction_server::testing::redis_address();
    let address = if address.contains("://") { address } else { format!("redis://{address}") };
    url::Url::parse(&address).expect("TEST_REDIS_ADDRESS")
}

/// This test's database, reached through `proxy`.
pub fn mysql_through(env: &TestEnv, proxy: SocketAddr) -> String {
    let base = mysql_base();
    let (credentials, _) = base.rsplit_once('@').expect("TEST_MYSQL_URL has user@host");
    format!("{credentials}@{proxy}/{}", env.database)
}

/// The MySQL server of the tests as host:port, for a proxy in front of it.
pub fn mysql_target() -> String {
    let base = mysql_base();
    base.rsplit('@').next().expect("TEST_MYSQL_URL").trim_end_matches('/').to_owned()
}

/// A TCP proxy in front of MySQL that a test can cut, to make MySQL unreachable for one service
/// without touching the server that every other test shares.
pub struct Proxy {
    pub addr: SocketAddr,
    up: Arc<std::sync::atomic::AtomicBool>,
    cut: Arc<tokio::sync::Notify>,
}

impl Proxy {
    pub async fn start(target: &str) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let up = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let cut = Arc::new(tokio::sync::Notify::new());
        let (target, flag, cuts) = (target.to_owned(), up.clone(), cut.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !flag.load(std::sync::atomic::Ordering::SeqCst) {
                    continue; // dropped: the connection is refused at once
                }
                let (target, cuts) = (target.clone(), cuts.clone());
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(&target).await else { return };
                    let cut = cuts.notified();
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut => {}
                    }
                });
            }
        });
        Proxy { addr, up, cut }
    }

    /// Cuts every open connection and refuses new ones.
    pub fn down(&self) {
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
        self.cut.notify_waiters();
    }

    pub fn restore(&self) {
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Api {
    /// `GET /api/v1/leader`, with any failure (no answer within `timeout`, an error status, a body
    /// that does not parse) as an error naming it, so that no check mistakes a broken endpoint for
    /// "nobody leads".
    pub async fn leader_info(&self, timeout: Duration) -> Result<auction_proto::rest::LeaderInfo, String> {
        let response = self.http.get(self.url("/api/v1/leader")).timeout(timeout).send().await;
        let response = response.map_err(|e| format!("GET {}/api/v1/leader: {e}", self.base))?;
        let status = response.status();
        let body = response.text().await.map_err(|e| format!("GET {}/api/v1/leader: {e}", self.base))?;
        if !status.is_success() {
            return Err(format!("GET {}/api/v1/leader: {status}: {body}", self.base));
        }
        serde_json::from_str(&body).map_err(|e| format!("GET {}/api/v1/leader: {e}: {body}", self.base))
    }

    /// The Prometheus text of `GET /metrics`, or the failure.
    pub async fn metrics(&self, timeout: Duration) -> Result<String, String> {
        let response = self.http.get(self.url("/metrics")).timeout(timeout).send().await;
        let response = response.map_err(|e| format!("GET {}/metrics: {e}", self.base))?;
        let status = response.status();
        let body = response.text().await.map_err(|e| format!("GET {}/metrics: {e}", self.base))?;
        if status.is_success() { Ok(body) } else { Err(format!("GET {}/metrics: {status}: {body}", self.base)) }
    }
}

/// Every entry of auction `id`'s durable log, oldest first, with the Redis time in ms at which it
/// was appended (the entry id's first part): when a change happened, measured where it was
/// decided rather than on the test's clock.
pub async fn log_with_times(env: &TestEnv, id: &auction_proto::AuctionId) -> Vec<(i64, auction_server::store::Event)> {
    let key = auction_server::store::Keys::new(&env.prefix).auction(id).log;
    let mut conn = env.redis_connection().await;
    let reply: redis::streams::StreamRangeReply =
        redis::cmd("XRANGE").arg(&key).arg("-").arg("+").query_async(&mut conn).await.expect("xrange");
    reply
        .ids
        .iter()
        .map(|entry| {
            let ms = entry.id.split_once('-').and_then(|(ms, _)| ms.parse().ok());
            let ms = ms.unwrap_or_else(|| panic!("log entry id {:?}", entry.id));
            let fields = entry.map.keys().filter_map(|k| Some((k.clone(), entry.get::<String>(k)?))).collect();
            let event = auction_server::store::Event::from_log_fields(&fields)
                .unwrap_or_else(|e| panic!("log entry {}: {e}", entry.id));
            (ms, event)
        })
        .collect()
}

/// One row of the `bids` table, read back as the bidders were told of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BidRow {
    pub seq: u64,
    pub bid_id: String,
    pub bidder: String,
    pub amount: Amount,
    pub placed_at: DateTime<Utc>,
}

/// Every bid of `auction` in MySQL, in `seq` order (bids sharing a seq in the order recorded).
pub async fn mysql_bid_rows(conn: &mut sqlx::MySqlConnection, auction: &str) -> Vec<BidRow> {
    type Row = (u64, Vec<u8>, Vec<u8>, rust_decimal::Decimal, chrono::NaiveDateTime);
    let rows: Vec<Row> =
        sqlx::query_as("SELECT seq, bid_id, bidder, amount, placed_at FROM bids WHERE auction_id = ? ORDER BY seq, id")
            .bind(auction)
            .fetch_all(conn)
            .await
            .expect("read bids");
    rows.into_iter()
        .map(|(seq, bid_id, bidder, amount, placed_at)| BidRow {
            seq,
            bid_id: String::from_utf8(bid_id).expect("ascii bid id"),
            bidder: String::from_utf8(bidder).expect("ascii bidder"),
            amount: Amount::from_decimal(amount).expect("an amount"),
            placed_at: placed_at.and_utc(),
        })
        .collect()
}

/// The value of metric `name` on the service at `addr` (0 when it has not been recorded yet).
pub async fn scrape(addr: SocketAddr, name: &str) -> f64 {
    let text = reqwest::get(format!("http://{addr}/metrics")).await.expect("metrics").text().await.expect("text");
    metric(&text, name).unwrap_or(0.0)
}

/// What a [`Relay`] does with the traffic it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// Everything passes.
    Up,
    /// Open connections carry on; new ones are closed at once.
    RefuseNew,
    /// Nothing moves either way and nothing is closed, as in a network partition; what was sent
    /// meanwhile is delivered once the link is up again.
    Stalled,
    /// Every open connection is cut and new ones are closed at once, as when the server died.
    Down,
}

/// A TCP relay between one service and Redis (or any server), which a test can stall or cut
/// without touching the server every other test shares. It knows the local address of each of
/// its connections to the server, so the test can pick that service's own clients out of
/// Redis's `CLIENT LIST`.
pub struct Relay {
    pub addr: SocketAddr,
    link: tokio::sync::watch::Sender<Link>,
    upstream: Arc<std::sync::Mutex<std::collections::HashSet<SocketAddr>>>,
}

impl Relay {
    pub async fn start(target: &str) -> Relay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind relay");
        let addr = listener.local_addr().expect("relay address");
        let (link, _) = tokio::sync::watch::channel(Link::Up);
        let upstream = Arc::new(std::sync::Mutex::new(std::collections::HashSet::new()));
        let (target, links, open) = (target.to_owned(), link.subscribe(), upstream.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if matches!(*links.borrow(), Link::RefuseNew | Link::Down) {
                    continue; // dropped: closed at once
                }
                let (target, links, open) = (target.clone(), links.clone(), open.clone());
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(&target).await else { return };
                    let Ok(local) = server.local_addr() else { return };
                    open.lock().unwrap().insert(local);
                    let (from_client, to_client) = client.into_split();
                    let (from_server, to_server) = server.into_split();
                    tokio::select! {
                        () = relay_pump(from_client, to_server, links.clone()) => {}
                        () = relay_pump(from_server, to_client, links) => {}
                    }
                    open.lock().unwrap().remove(&local);
                });
            }
        });
        Relay { addr, link, upstream }
    }

    pub fn set(&self, link: Link) {
        self.link.send_replace(link);
    }

    /// The local addresses of the relay's open connections to the server: how the server sees
    /// the service behind the relay (`addr=` in `CLIENT LIST`).
    pub fn upstream(&self) -> Vec<SocketAddr> {
        self.upstream.lock().unwrap().iter().copied().collect()
    }
}

/// Copies one direction of a relayed connection, holding what it read while the link is stalled
/// and returning (which closes the connection) once it is down or either side closes.
async fn relay_pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut link: tokio::sync::watch::Receiver<Link>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buffer = vec![0; 16 * 1024];
    loop {
        let read = tokio::select! {
            read = from.read(&mut buffer) => read,
            _ = link.wait_for(|l| *l == Link::Down) => return,
        };
        let n = match read {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        match link.wait_for(|l| *l != Link::Stalled).await {
            Ok(l) if *l != Link::Down => {}
            _ => return,
        }
        if to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
    }
}

/// Connects as `user` with a 4 KiB receive buffer and no reading: once the test stops reading
/// it, the frames for it back up into the server's send buffer (bounded with `WS_SEND_BUFFER`)
/// within a few hundred bids, and its connection's task waits on the send.
pub async fn stuck_client(node: Node, auction: &str, user: &str) -> Ws {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    let stream = socket.connect(node.addr).await.expect("connect");
    let (stuck, _) = tokio_tungstenite::client_async(node.ws_url(auction, user), MaybeTlsStream::Plain(stream))
        .await
        .expect("stuck client connects");
    Ws::from_stream(stuck)
}
