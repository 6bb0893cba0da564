//! The live listener: one pub/sub subscription per node to the single live channel, feeding every
//! event to the hubs.
//!
//! One channel for all auctions keeps subscription trivially race-free: it is in place before the
//! node serves anyone, so a hub created later never misses an event published after it exists.
//! The cost is that every node receives every auction's events; per-auction channels with dynamic
//! subscription are the step up if that ever dominates.

use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::PubSub;
use tokio_util::sync::CancellationToken;

use super::hub::{Hubs, LiveEvent, RulesCache, reload_rules};
use crate::config::RedisConfig;
use crate::store::{LiveMessage, Store, subscribe};

/// How often the rules are re-read even without a notification (which pub/sub may drop).
const RULES_REFRESH: Duration = Duration::from_secs(15);

pub struct Listener {
    pub config: RedisConfig,
    pub channel: String,
    pub hubs: Hubs,
    pub store: Store,
    pub rules: RulesCache,
}

impl Listener {
    /// Forwards events until shutdown, re-subscribing (and resyncing every hub, since events may
    /// have been lost) whenever the subscription drops.
    pub async fn run(self, mut pubsub: PubSub, shutdown: CancellationToken) {
        loop {
            let mut messages = pubsub.into_on_message();
            let mut refresh = tokio::time::interval(RULES_REFRESH);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = refresh.tick() => self.refresh_rules().await,
                    message = messages.next() => match message {
                        Some(message) => self.handle(&message),
                        None => break,
                    },
                }
            }
            tracing::warn!("live subscription lost; reconnecting");
            pubsub = match self.resubscribe(&shutdown).await {
                Some(pubsub) => pubsub,
                None => return,
            };
            self.refresh_rules().await;
            self.hubs.resync_all();
        }
    }

    async fn resubscribe(&self, shutdown: &CancellationToken) -> Option<PubSub> {
        let mut backoff = Duration::from_millis(100);
        loop {
            match subscribe(&self.config, &self.channel).await {
                Ok(pubsub) => {
                    tracing::info!("live subscription restored");
                    return Some(pubsub);
                }
                Err(e) => tracing::warn!(error = %e, "cannot subscribe to the live channel"),
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = shutdown.cancelled() => return None,
            }
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }

    fn handle(&self, message: &redis::Msg) {
        let payload: String = match message.get_payload() {
            Ok(payload) => payload,
            Err(e) => return tracing::warn!(error = %e, "unreadable live message"),
        };
        match serde_json::from_str::<LiveMessage>(&payload) {
            Ok(LiveMessage::Rules) => {
                let (store, rules, hubs) = (self.store.clone(), self.rules.clone(), self.hubs.clone());
                tokio::spawn(async move {
                    match reload_rules(&store, &rules).await {
                        Ok(true) => hubs.resync_all(),
                        Ok(false) => {}
                        Err(e) => tracing::warn!(error = %e, "cannot reload bid rules"),
                    }
                });
            }
            Ok(LiveMessage::Deadline) => {}
            Ok(message) => match LiveEvent::from_message(message) {
                Some(event) => self.hubs.dispatch(event),
                None => tracing::warn!(%payload, "live message with bad fields"),
            },
            Err(e) => tracing::warn!(error = %e, %payload, "unknown live message"),
        }
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
