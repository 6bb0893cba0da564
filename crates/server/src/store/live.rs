//! The pub/sub feeds: the live channel (every auction's events, and rule changes) and the deadline
//! channel (wake-ups for the scheduler). A [`Subscription`] hands out typed messages and keeps
//! itself subscribed, saying so when it had to re-subscribe, since messages may have been lost
//! in between (pub/sub keeps nothing for a subscriber that is away).

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{Stream, StreamExt};

use super::event::Live;
use super::{Store, StoreError};

/// What a subscription hands out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    Message(Live),
    /// A message that does not decode (a bug or a foreign publisher), with its text.
    Unreadable(String),
    /// The subscription was lost and is back: whatever was published meanwhile is gone.
    Resubscribed,
}

/// One subscription to one channel, on a connection of its own.
pub struct Subscription {
    client: Arc<redis::Client>,
    channel: String,
    timeout: Duration,
    messages: Option<Pin<Box<dyn Stream<Item = redis::Msg> + Send>>>,
    backoff: backon::ExponentialBackoff,
}

impl Store {
    /// Subscribes to the live channel now, so that nothing published after this returns is
    /// missed; fails if Redis does not answer.
    pub async fn subscribe_live(&self) -> Result<Subscription, StoreError> {
        let mut subscription = self.subscription(self.keys.live_channel());
        subscription.connect().await?;
        Ok(subscription)
    }

    /// A subscription to the live channel that connects on first use (retrying until it can).
    pub fn live_feed(&self) -> Subscription {
        self.subscription(self.keys.live_channel())
    }

    /// A subscription to the deadline channel that connects on first use.
    pub fn deadline_feed(&self) -> Subscription {
        self.subscription(self.keys.deadline_channel())
    }

    fn subscription(&self, channel: String) -> Subscription {
        Subscription {
            client: self.client.clone(),
            channel,
            timeout: self.timeout,
            messages: None,
            backoff: crate::retry::backoff(),
        }
    }
}

impl Subscription {
    async fn connect(&mut self) -> Result<(), StoreError> {
        let connect = async {
            let mut pubsub = self.client.get_async_pubsub().await?;
            pubsub.subscribe(&self.channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        let pubsub = tokio::time::timeout(self.timeout * 3, connect)
            .await
            .map_err(|_| StoreError::Timeout(self.timeout * 3))??;
        self.messages = Some(Box::pin(pubsub.into_on_message()));
        self.backoff = crate::retry::backoff();
        Ok(())
    }

    /// The next message. When the connection is lost it re-subscribes, waiting between attempts,
    /// and then answers [`Received::Resubscribed`]. Cancel-safe: dropping the future (a
    /// `select!` on shutdown) loses no message.
    pub async fn next(&mut self) -> Received {
        loop {
            match &mut self.messages {
                Some(messages) => match messages.next().await {
                    Some(message) => return decode(&message),
                    None => {
                        tracing::warn!(channel = %self.channel, "subscription lost; re-subscribing");
                        self.messages = None;
                    }
                },
                None => {
                    match self.connect().await {
                        Ok(()) => {
                            tracing::info!(channel = %self.channel, "subscribed");
                            return Received::Resubscribed;
                        }
                        Err(e) => tracing::warn!(channel = %self.channel, error = %e, "cannot subscribe"),
                    }
                    let delay = self.backoff.next().unwrap_or(Duration::from_secs(2));
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }
}

fn decode(message: &redis::Msg) -> Received {
    let payload: String = match message.get_payload() {
        Ok(payload) => payload,
        Err(e) => return Received::Unreadable(format!("not text: {e}")),
    };
    match Live::decode(&payload) {
        Ok(live) => Received::Message(live),
        Err(_) => Received::Unreadable(payload),
    }
}
