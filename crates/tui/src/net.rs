//! The network task: the auction list over REST, and the room's WebSocket with reconnect (backoff),
//! resync (the server's snapshot on every connect) and safe bid retries (the same `bid_id`, so a
//! bid is never placed twice).

use std::time::Duration;

use auction_proto::ClientFrame;
use auction_proto::rest::AuctionList;
use auction_proto::ws::{PlaceBid, ServerFrame, TOKEN_EXPIRED_CLOSE};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::event::{Command, Event, Net};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub struct Endpoints {
    pub api_url: String,
    pub ws_url: String,
    pub user: String,
    pub token: Option<String>,
}

/// Runs until the app drops its command sender.
pub async fn run(endpoints: Endpoints, mut commands: mpsc::Receiver<Command>, events: mpsc::Sender<Event>) {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap_or_default();
    let send = |net: Net| {
        let events = events.clone();
        async move { events.send(Event::Net(net)).await.is_ok() }
    };
    let mut joined: Option<String> = None;
    // The list once at start, even when a room opens at once: it carries the titles.
    if !send(Net::List(fetch_list(&http, &endpoints.api_url).await)).await {
        return;
    }
    let mut list_refresh = tokio::time::interval(Duration::from_secs(3));
    list_refresh.tick().await;
    loop {
        match joined.take() {
            None => tokio::select! {
                _ = list_refresh.tick() => {
                    if !send(Net::List(fetch_list(&http, &endpoints.api_url).await)).await { return }
                }
                command = commands.recv() => match command {
                    Some(Command::Join(id)) => joined = Some(id),
                    Some(_) => {}
                    None => return,
                },
            },
            Some(auction) => match room(&endpoints, &auction, &mut commands, &events).await {
                RoomEnd::Left => {}
                RoomEnd::Quit => return,
            },
        }
    }
}

async fn fetch_list(http: &reqwest::Client, api_url: &str) -> Result<Vec<auction_proto::rest::Auction>, String> {
    let url = format!("{}/api/v1/auctions?limit=100", api_url.trim_end_matches('/'));
    let response = http.get(&url).send().await.map_err(|e| format!("{url}: {e}"))?;
    let list: AuctionList = response.json().await.map_err(|e| format!("{url}: {e}"))?;
    Ok(list.auctions)
}

enum RoomEnd {
    Left,
    Quit,
}

/// One room: connects, relays frames, and reconnects after any loss until the app leaves.
async fn room(
    endpoints: &Endpoints,
    auction: &str,
    commands: &mut mpsc::Receiver<Command>,
    events: &mpsc::Sender<Event>,
) -> RoomEnd {
    let mut url = format!("{}/ws/auction/{auction}?user_id={}", endpoints.ws_url.trim_end_matches('/'), endpoints.user);
    if let Some(token) = &endpoints.token {
        url.push_str(&format!("&token={token}"));
    }
    // A bid sent but not yet answered: resent with the same id after a reconnect.
    let mut pending: Option<Pending> = None;
    let mut attempt = 0;
    loop {
        let connected = tokio::time::timeout(Duration::from_secs(5), tokio_tungstenite::connect_async(&url)).await;
        let reason = match connected {
            Ok(Ok((socket, _))) => {
                attempt = 0;
                if events.send(Event::Net(Net::Connected)).await.is_err() {
                    return RoomEnd::Quit;
                }
                match session(socket, commands, events, &mut pending).await {
                    Ok(end) => return end,
                    Err(reason) => reason,
                }
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => "connection timed out".to_owned(),
        };
        attempt += 1;
        if events.send(Event::Net(Net::Reconnecting { attempt, reason })).await.is_err() {
            return RoomEnd::Quit;
        }
        let backoff = Duration::from_millis(200 * 2u64.pow(attempt.min(5))).min(Duration::from_secs(5));
        let wake = Instant::now() + backoff;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(wake) => break,
                command = commands.recv() => match command {
                    None => return RoomEnd::Quit,
                    Some(Command::Leave) => return RoomEnd::Left,
                    Some(Command::Bid { amount, max, bid_id }) => pending = Some(Pending { amount, max, bid_id }),
                    Some(_) => {}
                },
            }
        }
    }
}

/// A live connection; `Err(reason)` when it drops.
async fn session(
    mut socket: Socket,
    commands: &mut mpsc::Receiver<Command>,
    events: &mpsc::Sender<Event>,
    pending: &mut Option<Pending>,
) -> Result<RoomEnd, String> {
    if let Some(bid) = pending.clone() {
        send_bid(&mut socket, &bid).await?;
    }
    let mut ping = tokio::time::interval(Duration::from_secs(2));
    let mut ping_sent: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = ping.tick() => {
                ping_sent = Some(Instant::now());
                socket.send(Message::text(ClientFrame::Ping.encode())).await.map_err(|e| e.to_string())?;
            }
            command = commands.recv() => match command {
                None => return Ok(RoomEnd::Quit),
                Some(Command::Leave) => {
                    let _ = socket.close(None).await;
                    return Ok(RoomEnd::Left);
                }
                Some(Command::Bid { amount, max, bid_id }) => {
                    // Pending before the send: a send that fails leaves it to be resent.
                    let bid = pending.insert(Pending { amount, max, bid_id });
                    send_bid(&mut socket, bid).await?;
                }
                Some(Command::Sync) => {
                    socket.send(Message::text(ClientFrame::Sync.encode())).await.map_err(|e| e.to_string())?;
                }
                Some(Command::Join(_)) => {}
            },
            message = socket.next() => {
                let text = match message {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Close(Some(frame)))) if u16::from(frame.code) == TOKEN_EXPIRED_CLOSE => {
                        *pending = None;
                        if events.send(Event::Net(Net::TokenExpired)).await.is_err() {
                            return Ok(RoomEnd::Quit);
                        }
                        return Ok(stay_closed(commands).await);
                    }
                    Some(Ok(Message::Close(frame))) => {
                        return Err(frame.map_or_else(|| "closed".to_owned(), |f| format!("closed: {}", f.reason)));
                    }
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => return Err(e.to_string()),
                    None => return Err("connection lost".to_owned()),
                };
                let Ok(frame) = serde_json::from_str::<ServerFrame>(&text) else { continue };
                match &frame {
                    ServerFrame::Pong => {
                        if let Some(sent) = ping_sent.take() {
                            let ms = u64::try_from(sent.elapsed().as_millis()).unwrap_or(u64::MAX);
                            let _ = events.send(Event::Net(Net::RoundTrip(ms))).await;
                        }
                        continue;
                    }
                    ServerFrame::BidAccepted(a) if pending.as_ref().is_some_and(|p| p.bid_id == a.bid_id.as_str()) => {
                        *pending = None;
                    }
                    ServerFrame::BidRejected(r)
                        if pending.as_ref().is_some_and(|p| r.bid_id.as_ref().is_some_and(|b| b.as_str() == p.bid_id)) =>
                    {
                        *pending = None;
                    }
                    _ => {}
                }
                if events.send(Event::Net(Net::Frame(Box::new(frame)))).await.is_err() {
                    return Ok(RoomEnd::Quit);
                }
            }
        }
    }
}

/// After the token expired: no reconnect (the same token gets 401), until the app leaves the
/// room or quits.
async fn stay_closed(commands: &mut mpsc::Receiver<Command>) -> RoomEnd {
    loop {
        match commands.recv().await {
            None => return RoomEnd::Quit,
            Some(Command::Leave) => return RoomEnd::Left,
            Some(_) => {}
        }
    }
}

/// A bid sent and not yet answered: sent again as it was, same id, amount and max.
#[derive(Debug, Clone)]
struct Pending {
    amount: auction_proto::Amount,
    max: Option<auction_proto::Amount>,
    bid_id: String,
}

async fn send_bid(socket: &mut Socket, bid: &Pending) -> Result<(), String> {
    let bid_id = auction_proto::BidId::parse(&bid.bid_id).map_err(|e| e.to_string())?;
    let frame = ClientFrame::PlaceBid(PlaceBid {
        amount: bid.amount.into(),
        bid_id: Some(bid_id),
        max_amount: bid.max.map(Into::into),
    });
    socket.send(Message::text(frame.encode())).await.map_err(|e| e.to_string())
}
