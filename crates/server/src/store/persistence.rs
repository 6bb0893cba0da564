//! Whether Redis keeps what it accepted: an accepted bid is on Redis alone until the analytics
//! service has copied it, so the settings that would lose or evict it are reported at start.

use super::Store;

/// The Redis settings that decide whether accepted bids survive Redis itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Persistence {
    /// `appendonly yes`: every write is in the append-only file (fsynced each second by default).
    pub appendonly: bool,
    /// `maxmemory-policy`; anything but `noeviction` may delete live auctions and their logs
    /// once `maxmemory` is reached.
    pub eviction: String,
    /// `maxmemory` in bytes; 0 is no limit, so nothing is ever evicted.
    pub maxmemory: u64,
}

impl Persistence {
    /// What an operator should hear about: accepted bids are on Redis alone until the analytics
    /// service has copied them, so Redis must neither forget them on a restart nor evict them.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if !self.appendonly {
            warnings.push(
                "redis has appendonly off: bids accepted since its last snapshot and not yet in MySQL \
                 would be lost if Redis restarts (set appendonly yes)"
                    .to_owned(),
            );
        }
        if self.maxmemory > 0 && self.eviction != "noeviction" {
            warnings.push(format!(
                "redis maxmemory-policy is {}: under memory pressure it may evict auctions and their \
                 bid logs (set maxmemory-policy noeviction)",
                self.eviction
            ));
        }
        warnings
    }
}

/// Logs, at start, whatever in Redis's settings puts accepted bids at risk.
pub async fn warn_if_not_durable(store: &Store) {
    match store.persistence().await {
        Some(persistence) => {
            for warning in persistence.warnings() {
                tracing::warn!("{warning}");
            }
        }
        None => tracing::info!("cannot read redis's persistence settings (CONFIG GET refused); not checked"),
    }
}

impl Store {
    /// How Redis keeps our data, from `CONFIG GET`; `None` when the server does not allow it
    /// (managed services often rename or disable `CONFIG`).
    pub async fn persistence(&self) -> Option<Persistence> {
        let appendonly = self.config_get("appendonly").await?;
        let eviction = self.config_get("maxmemory-policy").await?;
        let maxmemory = self.config_get("maxmemory").await?.parse().ok()?;
        Some(Persistence { appendonly: appendonly == "yes", eviction, maxmemory })
    }

    async fn config_get(&self, name: &str) -> Option<String> {
        let mut conn = self.conn.clone();
        let reply: Vec<String> =
            self.bounded(redis::cmd("CONFIG").arg("GET").arg(name).query_async(&mut conn)).await.ok()?;
        reply.into_iter().nth(1)
    }
}

#[cfg(test)]
mod tests {
    use super::Persistence;

    #[test]
    fn only_aof_without_eviction_is_quiet() {
        let gib = 1 << 30;
        let safe = Persistence { appendonly: true, eviction: "noeviction".into(), maxmemory: gib };
        assert!(safe.warnings().is_empty());
        let snapshots = Persistence { appendonly: false, eviction: "noeviction".into(), maxmemory: 0 };
        assert!(snapshots.warnings()[0].contains("appendonly yes"), "{:?}", snapshots.warnings());
        let evicting = Persistence { appendonly: true, eviction: "allkeys-lru".into(), maxmemory: gib };
        let warnings = evicting.warnings();
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("allkeys-lru") && warnings[0].contains("noeviction"), "{warnings:?}");
        let both = Persistence { appendonly: false, eviction: "volatile-lru".into(), maxmemory: gib };
        assert_eq!(both.warnings().len(), 2);
        // Without a memory limit nothing is ever evicted, whatever the policy.
        let unlimited = Persistence { appendonly: true, eviction: "allkeys-lru".into(), maxmemory: 0 };
        assert!(unlimited.warnings().is_empty());
    }
}
