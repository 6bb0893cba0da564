//! The pub/sub feeds. Each auction has its own live channel (in its slot: a shard channel on a
//! cluster, so its traffic stays on its shard); the increment table and the scheduler's wake-ups
//! have one channel each. A [`Subscription`] is one connection of its own with a set of channels
//! that its [`Feed`] handle changes as watchers come and go. It hands out typed messages and keeps
//! itself subscribed, saying so when it had to re-subscribe, since messages may have been lost in
//! between (pub/sub keeps nothing for a subscriber that is away).
//!
//! One task owns the connection and takes both the changes and the server's pushes, in order, so
//! a subscribe and an unsubscribe sent in that order take effect in that order.

use std::collections::HashSet;
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{ProtocolVersion, PushInfo, PushKind, Value};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::{CancellationToken, DropGuard};

use super::conn::{Topology, cluster_client};
use super::event::Live;
use super::{Store, StoreError, within};

/// What a subscription hands out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    Message(Live),
    /// A message that does not decode (a bug or a foreign publisher), with its text.
    Unreadable(String),
    /// The subscription was (re)established: whatever was published before is gone. The first
    /// connection says so too, as nothing before it was received.
    Resubscribed,
}

/// The receiving end of a set of subscriptions.
pub struct Subscription {
    received: mpsc::UnboundedReceiver<Received>,
    feed: Feed,
    /// Stops the connection's task when the subscription goes.
    _stop: DropGuard,
}

/// Changes a [`Subscription`]'s channels. Cheap to clone.
#[derive(Clone)]
pub struct Feed {
    commands: mpsc::UnboundedSender<Command>,
}

enum Command {
    Subscribe(String, oneshot::Sender<Result<(), StoreError>>),
    Unsubscribe(String),
}

/// How often an idle subscriber checks that its connection still answers: a connection that
/// died without a reset would otherwise look quiet forever.
const HEARTBEAT: Duration = Duration::from_secs(5);

impl Store {
    /// Subscribes to `channels` on a connection of its own, which connects in the background
    /// (retrying until it can) and answers [`Received::Resubscribed`] once it has.
    pub fn subscribe(&self, channels: Vec<String>) -> Subscription {
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let (received_tx, received) = mpsc::unbounded_channel();
        let stop = CancellationToken::new();
        let task = Task {
            topology: self.topology.clone(),
            timeout: self.timeout,
            wanted: channels.into_iter().collect(),
            commands: commands_rx,
            received: received_tx,
            stop: stop.clone(),
        };
        tokio::spawn(task.run());
        Subscription { received, feed: Feed { commands }, _stop: stop.drop_guard() }
    }

    /// The channel that tells bidding nodes the increment table changed.
    pub fn rules_channel(&self) -> String {
        self.keys.rules_channel()
    }

    /// The channel that wakes the leader's scheduler.
    pub fn deadline_channel(&self) -> String {
        self.keys.deadline_channel()
    }

    /// Auction `id`'s live channel.
    pub fn live_channel(&self, id: &auction_proto::AuctionId) -> String {
        self.keys.live_channel(id)
    }
}

impl Subscription {
    /// The next message. Cancel-safe: dropping the future (a `select!` on shutdown) loses no
    /// message.
    pub async fn next(&mut self) -> Received {
        match self.received.recv().await {
            Some(received) => received,
            // The task only ends when this subscription is dropped.
            None => std::future::pending().await,
        }
    }

    /// The handle that changes this subscription's channels.
    pub fn feed(&self) -> Feed {
        self.feed.clone()
    }
}

impl Feed {
    /// Adds `channel`. The change is queued at once (so it is ordered with other changes made
    /// before and after this call); the returned future tells when Redis confirmed it, or why
    /// not. An error leaves the channel wanted: it is subscribed as soon as the connection is
    /// back, which [`Received::Resubscribed`] announces.
    pub fn subscribe(&self, channel: String) -> impl Future<Output = Result<(), StoreError>> + use<> {
        let (ack, confirmed) = oneshot::channel();
        let queued = self.commands.send(Command::Subscribe(channel, ack)).is_ok();
        async move {
            if !queued {
                return Err(StoreError::NotSubscribed("the subscription is closed"));
            }
            confirmed.await.unwrap_or_else(|_| Err(StoreError::NotSubscribed("the subscription is closed")))
        }
    }

    /// Drops `channel` (queued at once, in order with other changes).
    pub fn unsubscribe(&self, channel: String) {
        let _ = self.commands.send(Command::Unsubscribe(channel));
    }
}

/// A subscriber's connection: RESP3, so that messages arrive as pushes beside command replies.
enum PubSubConn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl PubSubConn {
    async fn open(
        topology: &Topology,
        timeout: Duration,
        pushes: mpsc::UnboundedSender<PushInfo>,
    ) -> Result<PubSubConn, StoreError> {
        let open = async {
            match topology {
                Topology::Single(url) => {
                    let info = super::conn::connection_info(url)?;
                    let settings = info.redis_settings().clone().set_protocol(ProtocolVersion::RESP3);
                    let info = info.set_redis_settings(settings);
                    let client = redis::Client::open(info)?;
                    let config = redis::aio::ConnectionManagerConfig::new()
                        .set_connection_timeout(Some(timeout))
                        .set_response_timeout(Some(timeout))
                        .set_number_of_retries(0)
                        .set_push_sender(pushes);
                    Ok::<_, StoreError>(PubSubConn::Single(client.get_connection_manager_with_config(config).await?))
                }
                Topology::Cluster(nodes) => {
                    let client = cluster_client(nodes, timeout)
                        .use_protocol(ProtocolVersion::RESP3)
                        .push_sender(pushes)
                        .build()?;
                    Ok(PubSubConn::Cluster(client.get_async_connection().await?))
                }
            }
        };
        within(timeout * 3, open).await
    }

    /// Subscribes to one channel; on a cluster, a shard channel on the node of its slot.
    async fn subscribe(&mut self, channel: &str, timeout: Duration) -> Result<(), StoreError> {
        match self {
            PubSubConn::Single(conn) => within(timeout, conn.subscribe(channel)).await,
            PubSubConn::Cluster(conn) => within(timeout, conn.ssubscribe(channel)).await,
        }
    }
}

/// The task that owns a subscriber's connection.
struct Task {
    topology: std::sync::Arc<Topology>,
    timeout: Duration,
    /// The channels this subscription should be on, whatever the connection's state.
    wanted: HashSet<String>,
    commands: mpsc::UnboundedReceiver<Command>,
    received: mpsc::UnboundedSender<Received>,
    stop: CancellationToken,
}

/// Why a connected spell ended.
enum Ended {
    /// The connection failed: connect again.
    Lost,
    /// Nobody listens any more.
    Done,
}

impl Task {
    async fn run(mut self) {
        let mut backoff = crate::retry::backoff();
        loop {
            let (pushes_tx, pushes) = mpsc::unbounded_channel();
            let connected = async {
                let mut conn = PubSubConn::open(&self.topology, self.timeout, pushes_tx).await?;
                self.subscribe_all(&mut conn).await?;
                Ok::<_, StoreError>(conn)
            }
            .await;
            match connected {
                Ok(conn) => {
                    backoff = crate::retry::backoff();
                    tracing::debug!(channels = self.wanted.len(), "subscribed");
                    if self.received.send(Received::Resubscribed).is_err() {
                        return;
                    }
                    match self.serve(conn, pushes).await {
                        Ended::Done => return,
                        Ended::Lost => tracing::warn!("subscription lost; re-subscribing"),
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot subscribe"),
            }
            // Wait before the next attempt, answering changes meanwhile.
            let delay = backoff.next().unwrap_or(Duration::from_secs(2));
            let resume = tokio::time::Instant::now() + delay;
            loop {
                tokio::select! {
                    _ = self.stop.cancelled() => return,
                    _ = tokio::time::sleep_until(resume) => break,
                    command = self.commands.recv() => match command {
                        None => return,
                        Some(Command::Subscribe(channel, ack)) => {
                            self.wanted.insert(channel);
                            let _ = ack.send(Err(StoreError::NotSubscribed("not connected to redis; subscribing when it is back")));
                        }
                        Some(Command::Unsubscribe(channel)) => {
                            self.wanted.remove(&channel);
                        }
                    },
                }
            }
        }
    }

    async fn subscribe_all(&self, conn: &mut PubSubConn) -> Result<(), StoreError> {
        for channel in &self.wanted {
            conn.subscribe(channel, self.timeout).await?;
        }
        Ok(())
    }

    /// Forwards messages and applies changes until the connection fails or nobody listens.
    async fn serve(&mut self, conn: PubSubConn, pushes: mpsc::UnboundedReceiver<PushInfo>) -> Ended {
        match conn {
            PubSubConn::Single(conn) => self.serve_single(conn, pushes).await,
            PubSubConn::Cluster(conn) => self.serve_cluster(conn, pushes).await,
        }
    }

    /// One Redis: any failure ends the spell, and the caller connects afresh and subscribes to
    /// everything.
    async fn serve_single(
        &mut self,
        mut conn: ConnectionManager,
        mut pushes: mpsc::UnboundedReceiver<PushInfo>,
    ) -> Ended {
        let mut heartbeat = heartbeat();
        loop {
            tokio::select! {
                _ = self.stop.cancelled() => return Ended::Done,
                command = self.commands.recv() => match command {
                    None => return Ended::Done,
                    Some(Command::Subscribe(channel, ack)) => {
                        self.wanted.insert(channel.clone());
                        let result = within(self.timeout, conn.subscribe(&channel)).await;
                        let failed = result.is_err();
                        let _ = ack.send(result);
                        if failed {
                            return Ended::Lost;
                        }
                    }
                    Some(Command::Unsubscribe(channel)) => {
                        self.wanted.remove(&channel);
                        if within(self.timeout, conn.unsubscribe(&channel)).await.is_err() {
                            return Ended::Lost;
                        }
                    }
                },
                push = pushes.recv() => {
                    let Some(push) = push else { return Ended::Lost };
                    match push.kind {
                        PushKind::Message | PushKind::SMessage
                            if self.received.send(decode(&push.data)).is_err() => return Ended::Done,
                        PushKind::Disconnection => return Ended::Lost,
                        PushKind::Unsubscribe | PushKind::SUnsubscribe
                            if channel_of(&push.data).is_some_and(|c| self.wanted.contains(&c)) => return Ended::Lost,
                        _ => {}
                    }
                }
                _ = heartbeat.tick() => {
                    if let Err(e) = within(self.timeout, redis::cmd("PING").query_async::<Value>(&mut conn)).await {
                        tracing::warn!(error = %e, "subscriber connection does not answer");
                        return Ended::Lost;
                    }
                }
            }
        }
    }

    /// A cluster connection is many node connections, and one node's loss (or a slot moving) must
    /// neither interrupt the other nodes' channels nor hold up changes to them. So each change is
    /// its own task, at most one per channel at a time (a change that comes while one is under way
    /// is reconciled when it ends, keeping their order), answered when its node answers. Channels
    /// a lost node may have had are subscribed again, retried until their slots have a reachable
    /// owner, and the subscription says `Resubscribed` once all are back.
    async fn serve_cluster(&mut self, conn: ClusterConnection, mut pushes: mpsc::UnboundedReceiver<PushInfo>) -> Ended {
        let mut changes = Changes::new(conn, self.timeout);
        let mut heartbeat = heartbeat();
        // Channels to subscribe again, and when to try next.
        let mut pending: HashSet<String> = HashSet::new();
        let mut backoff = crate::retry::backoff();
        let mut retry_at: Option<tokio::time::Instant> = None;
        // A loss not yet announced as `Resubscribed`.
        let mut lost = false;
        loop {
            let retry = async {
                match retry_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = self.stop.cancelled() => return Ended::Done,
                command = self.commands.recv() => match command {
                    None => return Ended::Done,
                    Some(Command::Subscribe(channel, ack)) => {
                        self.wanted.insert(channel.clone());
                        pending.remove(&channel);
                        changes.subscribe(channel, Some(ack));
                    }
                    Some(Command::Unsubscribe(channel)) => {
                        self.wanted.remove(&channel);
                        pending.remove(&channel);
                        changes.unsubscribe(channel);
                    }
                },
                done = changes.done.recv() => {
                    let Some(done) = done else { return Ended::Lost };
                    if let Some(channel) = changes.finished(done, &self.wanted) {
                        pending.insert(channel);
                        retry_at.get_or_insert_with(|| tokio::time::Instant::now() + next_delay(&mut backoff));
                    }
                }
                push = pushes.recv() => {
                    let Some(push) = push else { return Ended::Lost };
                    match push.kind {
                        PushKind::Message | PushKind::SMessage
                            if self.received.send(decode(&push.data)).is_err() => return Ended::Done,
                        // A node went away: any of the channels may have been on it.
                        PushKind::Disconnection => {
                            tracing::warn!("a redis node's connection was lost; re-subscribing its channels");
                            pending.extend(self.wanted.iter().cloned());
                            lost = true;
                            retry_at.get_or_insert_with(tokio::time::Instant::now);
                        }
                        // The server dropped a channel this side still wants: its slot moved to
                        // another node. Subscribing again reaches the new owner.
                        PushKind::Unsubscribe | PushKind::SUnsubscribe => {
                            let Some(channel) = channel_of(&push.data) else { continue };
                            if self.wanted.contains(&channel) && !changes.busy(&channel) {
                                tracing::info!(%channel, "channel moved; re-subscribing");
                                pending.insert(channel);
                                lost = true;
                                retry_at.get_or_insert_with(tokio::time::Instant::now);
                            }
                        }
                        _ => {}
                    }
                }
                () = retry => {
                    retry_at = None;
                    for channel in pending.drain() {
                        changes.subscribe(channel, None);
                    }
                }
                _ = heartbeat.tick() => {
                    if let Err(e) = changes.ping().await {
                        tracing::warn!(error = %e, "no redis node answers the subscriber");
                        pending.extend(self.wanted.iter().cloned());
                        lost = true;
                        retry_at.get_or_insert_with(tokio::time::Instant::now);
                    }
                }
            }
            if lost && pending.is_empty() && retry_at.is_none() && !changes.resubscribing() {
                lost = false;
                backoff = crate::retry::backoff();
                tracing::info!("re-subscribed every channel");
                if self.received.send(Received::Resubscribed).is_err() {
                    return Ended::Done;
                }
            }
        }
    }
}

fn heartbeat() -> tokio::time::Interval {
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    heartbeat.reset();
    heartbeat
}

/// A change to one channel's subscription on a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    Subscribe,
    Unsubscribe,
}

/// A change that ended: its channel, what it was, and whether its node did it.
struct Done {
    channel: String,
    change: Change,
    ok: bool,
}

/// The changes under way on a cluster subscriber, one task each, at most one per channel.
struct Changes {
    conn: ClusterConnection,
    timeout: Duration,
    /// Channels with a change under way, and who waits for its confirmation.
    busy: std::collections::HashMap<String, Vec<oneshot::Sender<Result<(), StoreError>>>>,
    /// Channels being subscribed again after a loss.
    retrying: HashSet<String>,
    done_tx: mpsc::UnboundedSender<Done>,
    done: mpsc::UnboundedReceiver<Done>,
}

impl Changes {
    fn new(conn: ClusterConnection, timeout: Duration) -> Changes {
        let (done_tx, done) = mpsc::unbounded_channel();
        Changes { conn, timeout, busy: std::collections::HashMap::new(), retrying: HashSet::new(), done_tx, done }
    }

    fn busy(&self, channel: &str) -> bool {
        self.busy.contains_key(channel)
    }

    fn resubscribing(&self) -> bool {
        !self.retrying.is_empty()
    }

    /// Subscribes to `channel`, answering `ack` when its node confirms (`None`: a re-subscription
    /// after a loss). With a change of that channel under way, waits for it; [`Changes::finished`]
    /// then does what is still needed.
    fn subscribe(&mut self, channel: String, ack: Option<oneshot::Sender<Result<(), StoreError>>>) {
        if ack.is_none() {
            self.retrying.insert(channel.clone());
        }
        if let Some(waiting) = self.busy.get_mut(&channel) {
            waiting.extend(ack);
            return;
        }
        self.busy.insert(channel.clone(), ack.into_iter().collect());
        self.start(channel, Change::Subscribe);
    }

    fn unsubscribe(&mut self, channel: String) {
        if self.busy.contains_key(&channel) {
            return;
        }
        self.busy.insert(channel.clone(), Vec::new());
        self.start(channel, Change::Unsubscribe);
    }

    fn start(&self, channel: String, change: Change) {
        let mut conn = self.conn.clone();
        let (timeout, done) = (self.timeout, self.done_tx.clone());
        tokio::spawn(async move {
            let call = async {
                match change {
                    Change::Subscribe => conn.ssubscribe(&channel).await,
                    Change::Unsubscribe => conn.sunsubscribe(&channel).await,
                }
            };
            let ok = matches!(tokio::time::timeout(timeout, call).await, Ok(Ok(())));
            let _ = done.send(Done { channel, change, ok });
        });
    }

    /// Settles a change that ended, against what is `wanted` now: answers whoever waited, starts
    /// the change still needed if any, and returns the channel when it must be tried again later.
    fn finished(&mut self, done: Done, wanted: &HashSet<String>) -> Option<String> {
        let waiting = self.busy.remove(&done.channel).unwrap_or_default();
        let want = wanted.contains(&done.channel);
        // Settled one way or the other (a failure goes back to the caller's retries).
        if done.change == Change::Subscribe || !want {
            self.retrying.remove(&done.channel);
        }
        match (done.change, done.ok, want) {
            (Change::Subscribe, true, true) => {
                for ack in waiting {
                    let _ = ack.send(Ok(()));
                }
                None
            }
            // Subscribed meanwhile unwanted, or unsubscribed meanwhile wanted again: undo.
            (Change::Subscribe, true, false) => {
                self.busy.insert(done.channel.clone(), Vec::new());
                self.start(done.channel, Change::Unsubscribe);
                None
            }
            (Change::Unsubscribe, _, true) => {
                self.busy.insert(done.channel.clone(), waiting);
                self.start(done.channel, Change::Subscribe);
                None
            }
            (Change::Subscribe, false, true) => {
                for ack in waiting {
                    let _ = ack.send(Err(StoreError::NotSubscribed("its redis node does not answer; retrying")));
                }
                Some(done.channel)
            }
            (Change::Subscribe, false, false) | (Change::Unsubscribe, _, false) => None,
        }
    }

    /// Whether any node answers (each node's connection is the cluster client's to watch; this
    /// finds a client that lost them all).
    async fn ping(&mut self) -> Result<(), StoreError> {
        let random = RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random);
        within(self.timeout, self.conn.route_command(redis::cmd("PING"), random)).await.map(|_| ())
    }
}

fn next_delay(backoff: &mut backon::ExponentialBackoff) -> Duration {
    backoff.next().unwrap_or(Duration::from_secs(2))
}

/// The channel a push names first.
fn channel_of(data: &[Value]) -> Option<String> {
    match data.first()? {
        Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
        Value::SimpleString(text) => Some(text.clone()),
        _ => None,
    }
}

/// A message push is `[channel, payload]`.
fn decode(data: &[Value]) -> Received {
    let payload = match data.get(1) {
        Some(Value::BulkString(bytes)) => match std::str::from_utf8(bytes) {
            Ok(text) => text.to_owned(),
            Err(e) => return Received::Unreadable(format!("not text: {e}")),
        },
        other => return Received::Unreadable(format!("not a message: {other:?}")),
    };
    match Live::decode(&payload) {
        Ok(live) => Received::Message(live),
        Err(_) => Received::Unreadable(payload),
    }
}
