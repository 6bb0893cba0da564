//! One watcher: fan-out latency of the run's bids, as seen by a connection that only listens.

use std::sync::Arc;

use futures_util::StreamExt;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

use crate::link::Socket;
use crate::run::{Shared, micros};

/// One watcher: records, for each `bid_placed` of this run, the time since its scheduled send.
/// It must stay cheap, since thousands run at once on the machine being measured: it waits on its
/// socket and the end of the run only (no timers), and keeps raw samples, merged into one
/// histogram at the end (a full HdrHistogram each would page in megabytes per bid).
pub(crate) async fn watch(mut socket: Socket, shared: Arc<Shared>, mut done: watch::Receiver<bool>) -> Vec<u64> {
    let mut fanout = Vec::new();
    loop {
        let frame = tokio::select! {
            _ = done.changed() => break,
            message = socket.next() => match message {
                Some(Ok(Message::Text(text))) => text,
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => break,
            },
        };
        // A watcher with thousands of siblings must be cheap: find the bid id without parsing
        // the whole frame (ids hold no quotes or escapes, by the id rule).
        if let Some(scheduled) = placed_bid_id(&frame).and_then(|id| shared.scheduled_of(id))
            && shared.measured(scheduled)
        {
            fanout.push(micros(scheduled.elapsed()));
        }
    }
    let _ = socket.close(None).await;
    fanout
}

/// The `bid_id` of a `bid_placed` frame, found by scanning rather than parsing.
fn placed_bid_id(frame: &str) -> Option<&str> {
    if !frame.contains(r#""type":"bid_placed""#) {
        return None;
    }
    let start = frame.find(r#""bid_id":""#)? + r#""bid_id":""#.len();
    let len = frame[start..].find('"')?;
    Some(&frame[start..start + len])
}
