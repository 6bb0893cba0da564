//! The one retry pace of the services: exponential backoff from 100 ms to 2 s, with jitter so
//! that many nodes that lost Redis together do not come back in step.

use std::time::Duration;

use backon::BackoffBuilder;
use tokio_util::sync::CancellationToken;

/// The delays to wait between attempts, forever.
pub fn backoff() -> backon::ExponentialBackoff {
    backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(2))
        .with_jitter()
        .without_max_times()
        .build()
}

/// Waits the next delay of `backoff`; false if `shutdown` came first.
pub async fn pause(backoff: &mut backon::ExponentialBackoff, shutdown: &CancellationToken) -> bool {
    let delay = backoff.next().unwrap_or(Duration::from_secs(2));
    tokio::select! {
        _ = tokio::time::sleep(delay) => true,
        _ = shutdown.cancelled() => false,
    }
}
