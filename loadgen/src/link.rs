//! Reaching the bidding service: the WebSocket URLs of each connection, connecting within a
//! bound, connecting again with backoff after a loss (`--reconnect`), and reading frames.

use std::time::Duration;

use anyhow::Context;
use auction_proto::ws::{ServerFrame, Snapshot};
use backon::BackoffBuilder;
use futures_util::StreamExt;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::opt::Opt;

pub(crate) type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The URLs connection `i` may use: on its own node first (connections are spread over the
/// `--ws-url` nodes in turn), then on each other node in turn, each naming its auction and user.
pub(crate) fn ws_urls(opt: &Opt, auctions: &[String], i: usize, user: &str) -> Vec<String> {
    let auction = &auctions[i % auctions.len()];
    let token = opt.auth_secret.as_ref().zip(auction_proto::UserId::parse(user).ok()).and_then(|(secret, user)| {
        let now = u64::try_from(chrono::Utc::now().timestamp()).unwrap_or(0);
        auction_proto::auth::mint(secret.as_bytes(), &user, now, 24 * 3600).ok()
    });
    let nodes = opt.ws_urls.len();
    (0..nodes)
        .map(|k| {
            let base = opt.ws_urls[(i + k) % nodes].trim_end_matches('/');
            let mut url = format!("{base}/ws/auction/{auction}?user_id={user}");
            if let Some(token) = &token {
                url.push_str(&format!("&token={token}"));
            }
            url
        })
        .collect()
}

/// Opens one WebSocket, giving up after `timeout` (a node that takes the TCP connection and
/// never answers the upgrade would otherwise hold the run forever).
pub(crate) async fn connect(url: &str, timeout: Duration) -> anyhow::Result<Socket> {
    // A small read buffer: tungstenite zeroes the free part of it on every read, and at the 128 KiB
    // default that costs thousands of watchers far more than the frames they read.
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default().read_buffer_size(4 * 1024);
    let connecting = tokio_tungstenite::connect_async_with_config(url, Some(config), true);
    let (socket, _) = tokio::time::timeout(timeout, connecting)
        .await
        .map_err(|_| anyhow::anyhow!("no answer within {timeout:?}"))
        .and_then(|connected| connected.map_err(anyhow::Error::from))
        .with_context(|| format!("cannot connect to {url}"))?;
    Ok(socket)
}

/// The pace of retries: the services' own (exponential from 100 ms to 2 s, with jitter, so that
/// many bidders that lost their node together do not come back in step), never past a deadline.
pub(crate) struct Pace(backon::ExponentialBackoff);

impl Pace {
    pub(crate) fn new() -> Pace {
        Pace(
            backon::ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(100))
                .with_max_delay(Duration::from_secs(2))
                .with_jitter()
                .without_max_times()
                .build(),
        )
    }

    /// Waits the next delay; false, without waiting, if it would end at or after `until`.
    pub(crate) async fn wait(&mut self, until: Instant) -> bool {
        let delay = self.0.next().unwrap_or(Duration::from_secs(2));
        if Instant::now() + delay >= until {
            return false;
        }
        tokio::time::sleep(delay).await;
        true
    }

    /// Starts over from the shortest delay, after a success.
    pub(crate) fn reset(&mut self) {
        *self = Pace::new();
    }
}

/// How one connection is made, and made again after a loss: each new attempt goes to the next
/// of its URLs (through a load balancer there is one URL, which reaches another node), with
/// [`Pace`] between failed attempts.
pub(crate) struct Dialer {
    urls: Vec<String>,
    tried: usize,
    timeout: Duration,
    pace: Pace,
}

impl Dialer {
    pub(crate) fn new(urls: Vec<String>, timeout: Duration) -> Dialer {
        Dialer { urls, tried: 0, timeout, pace: Pace::new() }
    }

    /// The first connection, on the connection's own node.
    pub(crate) async fn first(&self) -> anyhow::Result<Socket> {
        connect(&self.urls[0], self.timeout).await
    }

    /// Connects again until a node answers with its snapshot; `None` once `until` has passed.
    /// Each attempt, snapshot included, is bounded by `--timeout` and by `until`.
    pub(crate) async fn again(&mut self, until: Instant) -> Option<(Socket, Snapshot)> {
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.tried += 1;
            let url = &self.urls[self.tried % self.urls.len()];
            let deadline = Instant::now() + left.min(self.timeout);
            if let Ok(mut socket) = connect(url, deadline.saturating_duration_since(Instant::now())).await
                && let Some(snapshot) = first_snapshot(&mut socket, deadline).await
            {
                self.pace.reset();
                return Some((socket, snapshot));
            }
            if !self.pace.wait(until).await {
                return None;
            }
        }
    }
}

/// The snapshot a node sends first on every connection; `None` if anything else comes first
/// (an `error` frame: the node cannot read the auction) or nothing by `deadline`.
async fn first_snapshot(socket: &mut Socket, deadline: Instant) -> Option<Snapshot> {
    match read(socket, deadline).await {
        Read::Frame(ServerFrame::Snapshot(snapshot)) => Some(snapshot),
        _ => None,
    }
}

/// What reading the next frame came to.
pub(crate) enum Read {
    Frame(ServerFrame),
    /// The connection closed or failed.
    Closed,
    TimedOut,
}

/// The next server frame, by `deadline`. Frames this tool cannot parse (a newer server's) are
/// skipped, since they say nothing of the bids it waits for.
pub(crate) async fn read(socket: &mut Socket, deadline: Instant) -> Read {
    loop {
        match tokio::time::timeout_at(deadline, socket.next()).await {
            Err(_) => return Read::TimedOut,
            Ok(Some(Ok(Message::Text(text)))) => {
                if let Ok(frame) = serde_json::from_str(&text) {
                    return Read::Frame(frame);
                }
            }
            Ok(Some(Ok(Message::Close(_)) | Err(_)) | None) => return Read::Closed,
            Ok(Some(Ok(_))) => {}
        }
    }
}

/// Hands every frame already received to `learn`, without waiting; false if the connection is
/// gone.
pub(crate) fn drain(socket: &mut Socket, mut learn: impl FnMut(&ServerFrame)) -> bool {
    use futures_util::FutureExt;
    loop {
        match socket.next().now_or_never() {
            None => return true,
            Some(Some(Ok(Message::Text(text)))) => {
                if let Ok(frame) = serde_json::from_str::<ServerFrame>(&text) {
                    learn(&frame);
                }
            }
            Some(Some(Ok(Message::Close(_))) | Some(Err(_)) | None) => return false,
            Some(Some(Ok(_))) => {}
        }
    }
}
