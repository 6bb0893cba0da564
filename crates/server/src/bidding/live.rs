//! The live listener: the node's one subscription (the rules channel, and the live channel of
//! each auction it has a hub for: see `hub`), feeding every event to the hubs. A node receives
//! the events of the auctions its watchers watch, not every auction's.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::hub::{Hubs, RulesCache, reload_rules};
use crate::store::{Live, Received, Store, Subscription};

/// How often the rules are re-read even without a notification (which pub/sub may drop).
const RULES_REFRESH: Duration = Duration::from_secs(15);

pub struct Listener {
    pub hubs: Hubs,
    pub store: Store,
    pub rules: RulesCache,
}

impl Listener {
    /// Forwards events until shutdown; after the subscription was lost and restored, re-reads the
    /// rules and resyncs every hub, since events may have been lost meanwhile.
    pub async fn run(self, mut feed: Subscription, shutdown: CancellationToken) {
        let mut refresh = tokio::time::interval(RULES_REFRESH);
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
        let (store, rules, hubs) = (self.store.clone(), self.rules.clone(), self.hubs.clone());
        tokio::spawn(async move {
            match reload_rules(&store, &rules).await {
                Ok(true) => hubs.resync_all(),
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "cannot reload bid rules"),
            }
        });
    }

    async fn refresh_rules(&self) {
        match reload_rules(&self.store, &self.rules).await {
            Ok(true) => {
                tracing::info!("bid rules changed");
                self.hubs.resync_all();
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "cannot reload bid rules"),
        }
    }
}
