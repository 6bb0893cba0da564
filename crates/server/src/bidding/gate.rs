//! A test hook (feature `testing`): holds WebSocket handshakes between reading their snapshot and
//! handing it to the hub, so that a test can place bids in exactly that window.

use tokio::sync::watch;

/// Closed until [`open`](HandshakeGate::open); counts the handshakes waiting at it.
#[derive(Debug)]
pub struct HandshakeGate {
    waiting: watch::Sender<usize>,
    open: watch::Sender<bool>,
}

impl Default for HandshakeGate {
    fn default() -> Self {
        HandshakeGate { waiting: watch::Sender::new(0), open: watch::Sender::new(false) }
    }
}

impl HandshakeGate {
    /// Waits until `n` handshakes have read their snapshots and wait at the gate.
    pub async fn reached(&self, n: usize) {
        let _ = self.waiting.subscribe().wait_for(|waiting| *waiting >= n).await;
    }

    /// Lets every handshake through, now and from now on.
    pub fn open(&self) {
        self.open.send_replace(true);
    }

    /// Where a handshake waits.
    pub(super) async fn pass(&self) {
        self.waiting.send_modify(|waiting| *waiting += 1);
        let _ = self.open.subscribe().wait_for(|open| *open).await;
    }
}
