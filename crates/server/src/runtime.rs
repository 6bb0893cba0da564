//! Process plumbing every service shares: logging, the shutdown signal, binding and serving.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Config, LogFormat, ServiceConfig};

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
    let logs = tracing_subscriber::fmt().with_env_filter(filter);
    match config.log_format {
        LogFormat::Text => logs.with_target(false).init(),
        LogFormat::Json => logs.json().flatten_event(true).with_current_span(false).with_span_list(true).init(),
    }
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

/// Connects to Redis, failing start-up if it does not answer, and warns about settings that would
/// lose accepted bids.
pub async fn open_store(config: &crate::config::RedisConfig) -> anyhow::Result<crate::store::Store> {
    let store = crate::store::Store::connect(config).await.context("cannot connect to redis")?;
    crate::store::warn_if_not_durable(&store).await;
    Ok(store)
}

/// The address a service listens on (what tests connect to when they bound port 0).
pub fn local_addr(listener: &TcpListener) -> SocketAddr {
    listener.local_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
}

/// Binds the configured address (port 0 picks a free port).
pub async fn bind<S>(config: &Config<S>) -> anyhow::Result<TcpListener> {
    let address = format!("{}:{}", config.host, config.port);
    TcpListener::bind(&address).await.with_context(|| format!("cannot listen on {address}"))
}

/// Serves `router` until `shutdown`, then waits (up to `drain`) for the tasks in `tracker`, such
/// as WebSocket connections, which hyper no longer tracks once upgraded. `send_buffer` sets each
/// connection's kernel send buffer (`None`: the kernel's autotuning).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    drain: Duration,
    send_buffer: Option<usize>,
) -> anyhow::Result<()> {
    let address: SocketAddr = listener.local_addr()?;
    tracing::info!(%address, "listening");
    // No Nagle: a bid's answer and the live events are small frames that must leave at once, not
    // wait for the peer's delayed acknowledgement of the previous one.
    let listener = listener.tap_io(move |tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        if let Some(bytes) = send_buffer
            && let Err(e) = socket2::SockRef::from(&*tcp).set_send_buffer_size(bytes)
        {
            tracing::debug!(error = %e, "cannot set SO_SNDBUF");
        }
    });
    axum::serve(listener, router).with_graceful_shutdown(shutdown.clone().cancelled_owned()).await?;
    tracker.close();
    if tokio::time::timeout(drain, tracker.wait()).await.is_err() {
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
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("{}-service: {e:#}", service.name());
            std::process::ExitCode::FAILURE
        }
    }
}
