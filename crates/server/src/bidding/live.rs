//! The live listener: the node's one subscription (the rules channel, and the live channel of
//! each auction it has a hub for: see `hub`), feeding every event to the hubs. A node receives
//! the events of the auctions its watchers watch, not every auction's.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::hub::Hubs;
use crate::store::{Live, Received, Subscription};

/// How often the rules are re-read even without a notification (which pub/sub may drop).
const RULES_REFRESH: Duration = Duration::from_secs(15);

pub struct Listener {
    pub hubs: Hubs,
}

impl Listener {
    /// Forwards events until shutdown; after the subscription was lost and restored, re-reads the
    /// rules and resyncs every hub, since events may have been lost meanwhile.
    pub async fn run(self, mut feed: Subscription, shutdown: CancellationToken) {
        // The first re-read one period on: the service read the rules just before it started.
        let mut refresh = tokio::time::interval_at(tokio::time::Instant::now() + RULES_REFRESH, RULES_REFRESH);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = refresh.tick() => self.refresh_rules().await,
                received = feed.next() => match received {
                    Received::Message(Live::Event(event)) => self.hubs.dispatch(event),
                    Received::Message(Live::Rules) => self.spawn_reload(),
                    Received::Message(Live::Deadline) => {}
                    Received::Unreadable(payload) => tracing::warn!(%payload, "unreadable live message"),
                    Received::Resubscribed => {
                        self.refresh_rules().await;
                        self.hubs.resync_all();
                    }
                },
            }
        }
    }

    /// Reloads the rules off the listener's task, which must keep forwarding events.
    fn spawn_reload(&self) {
        let hubs = self.hubs.clone();
        tokio::spawn(async move {
            if let Err(e) = hubs.reload_rules().await {
                tracing::warn!(error = %e, "cannot reload bid rules");
            }
        });
    }

    async fn refresh_rules(&self) {
        match self.hubs.reload_rules().await {
            Ok(true) => tracing::info!(version = self.hubs.rules().version, "bid rules changed"),
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "cannot reload bid rules"),
        }
    }
}
