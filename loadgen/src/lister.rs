//! The list load (`--list-rate`): `GET /api/v1/auctions` calls at a fixed rate beside the bids,
//! so that a run shows what clients listing auctions cost the bidding path.

use std::sync::Arc;
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::run::{Shared, histogram, micros};

/// The most list calls out at once: past it a slot is counted as an error, so that a service
/// that stops answering cannot pile up calls without bound.
const MAX_IN_FLIGHT: usize = 256;

/// What the list calls of the measured period gave.
pub(crate) struct ListTally {
    /// From each call's scheduled time to its full answer, in microseconds.
    pub(crate) latency: Histogram<u64>,
    pub(crate) errors: u64,
}

/// Sends `rate` list calls a second to `url` on a fixed schedule until the run's end, each one
/// timed from its scheduled time.
pub(crate) async fn hammer(url: String, rate: f64, shared: Arc<Shared>) -> ListTally {
    let http = reqwest::Client::builder().timeout(shared.timeout).build().unwrap_or_default();
    let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let (results, mut answers) = tokio::sync::mpsc::unbounded_channel::<(Instant, Option<Duration>)>();
    let interval = Duration::from_secs_f64(1.0 / rate);
    let mut next = shared.epoch;
    let mut tally = ListTally { latency: histogram(), errors: 0 };
    while next < shared.stop_at {
        tokio::time::sleep_until(next).await;
        let scheduled = next;
        next += interval;
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            if shared.measured(scheduled) {
                tally.errors += 1;
            }
            continue;
        };
        let (http, url, results) = (http.clone(), url.clone(), results.clone());
        tokio::spawn(async move {
            let answered = match http.get(&url).send().await {
                Ok(response) if response.status().is_success() => {
                    response.bytes().await.ok().map(|_| scheduled.elapsed())
                }
                _ => None,
            };
            let _ = results.send((scheduled, answered));
            drop(permit);
        });
    }
    drop(results);
    while let Some((scheduled, answered)) = answers.recv().await {
        if !shared.measured(scheduled) {
            continue;
        }
        match answered {
            Some(latency) => {
                let _ = tally.latency.record(micros(latency));
            }
            None => tally.errors += 1,
        }
    }
    tally
}
