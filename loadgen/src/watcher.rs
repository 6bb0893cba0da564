//! One watcher: fan-out latency of the run's bids, as seen by a connection that only listens.

use std::sync::Arc;

use futures_util::StreamExt;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

use crate::link::{Dialer, Socket};
use crate::run::{Shared, micros};

/// One watcher: records, for each `bid_placed` of this run, the time since its scheduled send.
/// It must stay cheap, since thousands run at once on the machine being measured: it waits on its
/// socket and the end of the run only (no timers, but while connecting again with `--reconnect`),
/// and keeps raw samples, merged into one histogram at the end (a full HdrHistogram each would
/// page in megabytes per bid). Returns the samples and how many times it connected again.
pub(crate) async fn watch(
    mut socket: Option<Socket>,
    mut dialer: Dialer,
    shared: Arc<Shared>,
    mut done: watch::Receiver<bool>,
) -> (Vec<u64>, u64) {
    let mut fanout = Vec::new();
    let mut reconnects = 0;
    loop {
        let Some(live) = &mut socket else {
            if !shared.reconnect {
                break;
            }
            tokio::select! {
                _ = done.changed() => break,
                again = dialer.again(shared.stop_at) => match again {
                    Some((again, _)) => {
                        socket = Some(again);
                        reconnects += 1;
                        continue;
                    }
                    None => break,
                },
            }
        };
        let frame = tokio::select! {
            _ = done.changed() => break,
            message = live.next() => match message {
                Some(Ok(Message::Text(text))) => text,
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => {
                    socket = None;
                    continue;
                }
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
    if let Some(mut socket) = socket {
        let _ = socket.close(None).await;
    }
    (fanout, reconnects)
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
