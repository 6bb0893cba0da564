//! Process plumbing every service shares: logging, the shutdown signal, binding and serving.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use sqlx::MySqlPool;
use sqlx::mysql::MySqlConnectOptions;
use tokio::net::{TcpListener, TcpSocket};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Config, LogFormat, ServiceConfig};
pub use crate::starting::Waiting;

/// Installs the log subscriber at the configured level (`RUST_LOG` wins when set) and format.
///
/// JSON lines carry the event's fields at the top level (beside `timestamp`, `level`, `target`
/// and `message`) and, under `spans`, every open span from the outermost in, each with its
/// `name` and fields: the request span (`request_id`, `route`, ...) or the WebSocket connection
/// span (`conn_id`, `auction_id`, `user`). The innermost span alone would lose its parents'
/// fields, so the list is what is printed.
pub fn init_logging<S>(config: &Config<S>) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&config.log_level));
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(colours());
    match config.log_format {
        LogFormat::Text => logs.with_target(false).init(),
        LogFormat::Json => logs.json().flatten_event(true).with_current_span(false).with_span_list(true).init(),
    }
}

/// Whether text logs are coloured: only on a terminal, since escape codes in a file or a log
/// collector are noise, and never with `NO_COLOR` set (non-empty).
fn colours() -> bool {
    std::io::IsTerminal::is_terminal(&std::io::stdout()) && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// A token cancelled on SIGINT or SIGTERM: the one shutdown path of every service.
pub fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let trigger = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(e) => {
                    tracing::error!(error = %e, "cannot listen for SIGTERM");
                    let _ = ctrl_c.await;
                    trigger.cancel();
                    return;
                }
            };
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("shutdown signal received");
        trigger.cancel();
    });
    token
}

/// Start-up ended by the shutdown signal while a server it needs was still unreachable: the
/// operator asked the service to stop, which is not a failure.
#[derive(Debug, thiserror::Error)]
#[error("stopped while waiting for {0}")]
pub struct Interrupted(&'static str);

/// Connects to Redis, waiting while it cannot be reached (see [`patiently`]; `waiting` shows
/// each failure as the `redis` check), and warns about settings that would lose accepted bids.
pub async fn open_store(
    config: &crate::config::RedisConfig,
    waiting: &Waiting,
    shutdown: &CancellationToken,
) -> anyhow::Result<crate::store::Store> {
    let connect = || crate::store::Store::connect(config);
    let store = redis_patiently(waiting, shutdown, connect).await.context("cannot connect to redis")?;
    crate::store::warn_if_not_durable(&store).await;
    Ok(store)
}

/// Runs a Redis call of a service's start-up until it succeeds, waiting while Redis is not ready
/// (see [`patiently`]): a connection is not enough on a cluster, which refuses every command
/// (`CLUSTERDOWN`) for a few seconds after its nodes come back.
pub async fn redis_patiently<T, F, Fut>(waiting: &Waiting, shutdown: &CancellationToken, call: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, crate::store::StoreError>>,
{
    patiently(Server::REDIS, waiting, shutdown, redis_may_recover, call).await
}

/// Connects to MySQL and applies the migrations, waiting while it cannot be reached (see
/// [`patiently`]; the `mysql` check).
pub async fn open_database(
    options: &MySqlConnectOptions,
    pool: crate::config::MySqlPool,
    waiting: &Waiting,
    shutdown: &CancellationToken,
) -> anyhow::Result<MySqlPool> {
    let connect = || crate::db::connect_and_migrate(options, pool);
    patiently(Server::MYSQL, waiting, shutdown, crate::db::may_recover, connect)
        .await
        .context("cannot prepare the mysql database")
}

/// Connects to a MySQL read replica (`MYSQL_READ_DSN`), waiting like [`open_database`] (the
/// `mysql_read` check).
pub async fn open_read_replica(
    options: &MySqlConnectOptions,
    pool: crate::config::MySqlPool,
    waiting: &Waiting,
    shutdown: &CancellationToken,
) -> anyhow::Result<MySqlPool> {
    let connect = || crate::db::connect_reader(options, pool);
    patiently(Server::MYSQL_READ, waiting, shutdown, crate::db::may_recover, connect)
        .await
        .context("cannot connect to the mysql read replica")
}

/// A server a service waits for at start: how logs name it, and its `/health` check.
#[derive(Debug, Clone, Copy)]
pub struct Server {
    pub name: &'static str,
    pub check: &'static str,
}

impl Server {
    pub const REDIS: Server = Server { name: "redis", check: "redis" };
    pub const MYSQL: Server = Server { name: "mysql", check: "mysql" };
    pub const MYSQL_READ: Server = Server { name: "the mysql read replica", check: "mysql_read" };
}

/// Whether a failure to reach Redis is one that time may cure: the server is not up or not
/// reachable yet (in a deployment whose containers start in any order, its name may not even
/// resolve yet), is loading its data, or its cluster is not formed or not serving yet. Anything
/// else, such as a refused password, is a configuration error that waiting would only hide.
fn redis_may_recover(error: &crate::store::StoreError) -> bool {
    use redis::{ErrorKind, ServerErrorKind};
    match error {
        crate::store::StoreError::Timeout(_) => true,
        crate::store::StoreError::Redis(e) => matches!(
            e.kind(),
            ErrorKind::Io
                | ErrorKind::ClusterConnectionNotFound
                | ErrorKind::Server(
                    ServerErrorKind::BusyLoading
                        | ServerErrorKind::TryAgain
                        | ServerErrorKind::ClusterDown
                        | ServerErrorKind::MasterDown
                )
        ),
        crate::store::StoreError::Corrupt(_)
        | crate::store::StoreError::NotSubscribed(_)
        | crate::store::StoreError::NotReplicated(_) => false,
    }
}

/// Runs `connect` until it succeeds, at the services' one retry pace, logging each failure at
/// warn and showing it in `waiting`, for as long as the failure is one `may_recover` says time
/// can cure: a service started before its servers (as containers are, in any order) serves
/// `/health` and waits for them instead of exiting. Any other failure is returned at once, so a
/// bad configuration still stops the service with its error. Each attempt is bounded by the
/// client's own timeouts; the waiting ends with `shutdown`.
async fn patiently<T, E, F, Fut>(
    server: Server,
    waiting: &Waiting,
    shutdown: &CancellationToken,
    may_recover: fn(&E) -> bool,
    mut connect: F,
) -> anyhow::Result<T>
where
    E: std::error::Error + Send + Sync + 'static,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let what = server.name;
    let mut backoff = crate::retry::backoff();
    let mut attempt: u64 = 0;
    loop {
        attempt += 1;
        let outcome = tokio::select! {
            outcome = connect() => outcome,
            _ = shutdown.cancelled() => return Err(Interrupted(what).into()),
        };
        match outcome {
            Ok(connected) => {
                if attempt > 1 {
                    tracing::info!(attempts = attempt, "{what} answered");
                }
                waiting.connected(server.check);
                return Ok(connected);
            }
            Err(e) if may_recover(&e) => {
                tracing::warn!(error = %e, attempt, "{what} is not ready yet; retrying");
                waiting.failed(server.check, &e.to_string());
            }
            Err(e) => return Err(e.into()),
        }
        if !crate::retry::pause(&mut backoff, shutdown).await {
            return Err(Interrupted(what).into());
        }
    }
}

/// Runs a service: serves `routes` (see [`serve`]) from the start, with a drain of 5 s at
/// shutdown, while `starting` (given the tracker its tasks join and the token that stops them)
/// connects to the servers and puts the service's own routes in place. A failure of `starting`
/// that waiting cannot cure (a refused password) stops the serving and is returned, as before a
/// service served anything.
pub async fn serve_while_starting(
    listener: TcpListener,
    routes: crate::serving::Routes,
    serving: crate::serving::Serving,
    shutdown: &CancellationToken,
    starting: impl AsyncFnOnce(&TaskTracker, &CancellationToken) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let tracker = TaskTracker::new();
    let stop = shutdown.child_token();
    let served = serve(listener, routes, stop.clone(), tracker.clone(), Duration::from_secs(5), serving);
    let starting = async {
        let started = starting(&tracker, &stop).await;
        if started.is_err() {
            stop.cancel();
        }
        started
    };
    let (served, started) = tokio::join!(served, starting);
    started?;
    served
}

/// The address a service listens on (what tests connect to when they bound port 0).
pub fn local_addr(listener: &TcpListener) -> SocketAddr {
    listener.local_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
}

/// The accept queue asked for on every service's listening socket; the kernel caps it at
/// `net.core.somaxconn` (4096 by default). The standard library's and tokio's `bind` ask for 128,
/// which a burst of connections overflows (thousands of watchers coming back after a node
/// restarts, a load generator connecting 256 at once): each connection dropped there waits a
/// second or more for the kernel to send its handshake again.
pub const LISTEN_BACKLOG: u32 = 4096;

/// Binds the configured address (port 0 picks a free port), trying each address the host
/// resolves to in turn, as `TcpListener::bind` does, with an accept queue of [`LISTEN_BACKLOG`].
pub async fn bind<S>(config: &Config<S>) -> anyhow::Result<TcpListener> {
    let address = format!("{}:{}", config.host, config.port);
    let resolved = tokio::net::lookup_host(&address).await.with_context(|| format!("cannot listen on {address}"))?;
    let mut failed = None;
    for addr in resolved {
        match listen_on(addr) {
            Ok(listener) => return Ok(listener),
            Err(e) => failed = Some(e),
        }
    }
    let e =
        failed.unwrap_or_else(|| std::io::Error::new(std::io::ErrorKind::AddrNotAvailable, "no address to listen on"));
    Err(anyhow::Error::from(e).context(format!("cannot listen on {address}")))
}

fn listen_on(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Serves `routes` until `shutdown` (see [`crate::serving`] for the timers and the count of
/// connections), then waits, `drain` at most in all, for the connections still answering and for
/// the tasks in `tracker`, such as WebSocket connections, which hyper no longer tracks once
/// upgraded.
pub async fn serve(
    listener: TcpListener,
    routes: crate::serving::Routes,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    drain: Duration,
    serving: crate::serving::Serving,
) -> anyhow::Result<()> {
    let address: SocketAddr = listener.local_addr()?;
    tracing::info!(%address, "listening");
    let connections = TaskTracker::new();
    crate::serving::accept(listener, routes, serving, shutdown, &connections).await;
    let deadline = tokio::time::Instant::now() + drain;
    connections.close();
    tracker.close();
    if tokio::time::timeout_at(deadline, connections.wait()).await.is_err() {
        tracing::warn!(connections = connections.len(), "connections still open at shutdown");
    }
    if tokio::time::timeout_at(deadline, tracker.wait()).await.is_err() {
        tracing::warn!(tasks = tracker.len(), "tasks still running at shutdown");
    }
    Ok(())
}

/// Runs a service binary: loads the config of service `S` (and no other's), logs, runs until a
/// signal. `run` gets the config and the shutdown token. Errors are printed as one line with their
/// causes, never as a backtrace.
pub async fn main_with<S, F, Fut>(run: F) -> std::process::ExitCode
where
    S: ServiceConfig,
    F: FnOnce(Config<S>, CancellationToken) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let service = S::SERVICE;
    let config = match Config::<S>::load() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("{}-service: invalid configuration: {e}", service.name());
            return std::process::ExitCode::from(2);
        }
    };
    init_logging(&config);
    tracing::info!(instance_id = %config.instance_id, "starting {} service", service.name());
    if config.auth.secret.is_none() {
        tracing::warn!("AUTH_SECRET is not set: bidders are trusted by user_id (development mode only)");
    }
    if config.auth.admin_token.is_none() {
        tracing::warn!("ADMIN_TOKEN is not set: anyone may create, extend and cancel auctions (development mode only)");
    }
    match run(config, shutdown_on_signal()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(ref e) if let Some(stopped) = e.chain().find_map(|cause| cause.downcast_ref::<Interrupted>()) => {
            tracing::info!("{stopped}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("{}-service: {e:#}", service.name());
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreError;
    use redis::{ErrorKind, RedisError, ServerErrorKind};

    /// 300 connections at once to a listener that accepts none of them: with the default queue
    /// of 128, the rest would wait on the kernel's handshake retries (1 s, 3 s, ...) for as long
    /// as nobody accepts; with ours every handshake completes at once.
    #[tokio::test]
    async fn the_accept_queue_holds_a_burst_of_connections() {
        let listener = listen_on(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
        let addr = listener.local_addr().unwrap();
        let connects = (0..300).map(|_| tokio::net::TcpStream::connect(addr));
        let all = futures_util::future::join_all(connects);
        let connected = tokio::time::timeout(Duration::from_secs(5), all).await.expect("handshakes left waiting");
        assert!(connected.iter().all(Result::is_ok), "a connection failed");
        drop(listener);
    }

    fn redis(kind: ErrorKind) -> StoreError {
        StoreError::Redis(RedisError::from((kind, "test")))
    }

    #[test]
    fn redis_not_ready_is_waited_for_and_misconfigured_is_not() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(redis_may_recover(&StoreError::Redis(refused.into())));
        assert!(redis_may_recover(&StoreError::Timeout(Duration::from_secs(6))));
        for kind in [ServerErrorKind::ClusterDown, ServerErrorKind::BusyLoading, ServerErrorKind::TryAgain] {
            assert!(redis_may_recover(&redis(ErrorKind::Server(kind))), "{kind:?}");
        }
        assert!(redis_may_recover(&redis(ErrorKind::ClusterConnectionNotFound)));
        for kind in [
            ErrorKind::AuthenticationFailed,
            ErrorKind::InvalidClientConfig,
            ErrorKind::Server(ServerErrorKind::NoPerm),
        ] {
            assert!(!redis_may_recover(&redis(kind)), "{kind:?}");
        }
        assert!(!redis_may_recover(&StoreError::Corrupt("x".to_owned())));
    }
}
