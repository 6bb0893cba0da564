//! Reaching the bidding service: the WebSocket URL of each connection and connecting to it.

use anyhow::Context;
use tokio::net::TcpStream;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::opt::Opt;

pub(crate) type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub(crate) fn ws_url(opt: &Opt, auctions: &[String], i: usize, user: &str) -> String {
    let base = opt.ws_urls[i % opt.ws_urls.len()].trim_end_matches('/');
    let mut url = format!("{base}/ws/auction/{}?user_id={user}", auctions[i % auctions.len()]);
    let token = opt.auth_secret.as_ref().zip(auction_proto::UserId::parse(user).ok()).and_then(|(secret, user)| {
        let now = u64::try_from(chrono::Utc::now().timestamp()).unwrap_or(0);
        auction_proto::auth::mint(secret.as_bytes(), &user, now, 24 * 3600).ok()
    });
    if let Some(token) = token {
        url.push_str(&format!("&token={token}"));
    }
    url
}

pub(crate) async fn connect(url: &str) -> anyhow::Result<Socket> {
    // A small read buffer: tungstenite zeroes the free part of it on every read, and at the 128 KiB
    // default that costs thousands of watchers far more than the frames they read.
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default().read_buffer_size(4 * 1024);
    let (socket, _) = tokio_tungstenite::connect_async_with_config(url, Some(config), true)
        .await
        .with_context(|| format!("cannot connect to {url}"))?;
    Ok(socket)
}
