//! `auction-tui`, the live terminal bidder, in the shape of ratatui's event-driven template:
//! `app` (state and keys, no drawing), `event` (one `Event` enum), `ui` (pure drawing), `net`
//! (REST and the WebSocket, with reconnect and resync). The terminal is restored on exit and on
//! panic (`ratatui::init` installs the hook).

pub mod app;
pub mod event;
pub mod net;
pub mod ui;

use std::time::Duration;

use clap::Parser;
use crossterm::event::{Event as TermEvent, EventStream, KeyEventKind};
use futures_util::StreamExt;
use tokio::sync::mpsc;

use app::App;
use event::{Command, Event};

/// Bid live from the terminal.
#[derive(Debug, Parser)]
#[command(name = "auction-tui", version)]
pub struct Opt {
    /// Your user id.
    #[arg(long, env = "AUCTION_USER")]
    pub user: String,
    /// Open this auction's room at once (otherwise pick from the list).
    #[arg(long)]
    pub auction: Option<String>,
    /// The auction service.
    #[arg(long, env = "AUCTION_API_URL", default_value = "http://localhost:8081")]
    pub api_url: String,
    /// A bidding service.
    #[arg(long, env = "AUCTION_WS_URL", default_value = "ws://localhost:8080")]
    pub ws_url: String,
    /// Your bidder token, when the bidding service requires one (`auctionctl token --user ...`).
    #[arg(long, env = "AUCTION_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// Runs the app in the terminal until the user quits.
pub async fn run(opt: Opt) -> anyhow::Result<()> {
    auction_proto::UserId::parse(&opt.user).map_err(|e| anyhow::anyhow!("--user: {e}"))?;
    if let Some(id) = &opt.auction {
        auction_proto::AuctionId::parse(id).map_err(|e| anyhow::anyhow!("--auction: {e}"))?;
    }
    let (command_tx, command_rx) = mpsc::channel::<Command>(64);
    let (event_tx, mut event_rx) = mpsc::channel::<Event>(1024);
    let endpoints = net::Endpoints {
        api_url: opt.api_url.clone(),
        ws_url: opt.ws_url.clone(),
        user: opt.user.clone(),
        token: opt.token.clone(),
    };
    tokio::spawn(net::run(endpoints, command_rx, event_tx.clone()));
    let keys = event_tx.clone();
    tokio::spawn(async move {
        let mut stream = EventStream::new();
        while let Some(Ok(event)) = stream.next().await {
            if let TermEvent::Key(key) = event
                && key.kind == KeyEventKind::Press
                && keys.send(Event::Key(key)).await.is_err()
            {
                return;
            }
        }
    });
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tick.tick().await;
            if event_tx.send(Event::Tick).await.is_err() {
                return;
            }
        }
    });

    let run_id = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let mut app = App::new(&opt.user, &run_id);
    if let Some(id) = &opt.auction {
        for command in app.enter(id) {
            let _ = command_tx.send(command).await;
        }
    }
    let mut terminal = ratatui::init();
    let result = async {
        loop {
            terminal.draw(|frame| ui::draw(frame, &app, chrono::Utc::now()))?;
            let Some(event) = event_rx.recv().await else { return Ok(()) };
            let commands = match event {
                Event::Key(key) => app.on_key(key),
                Event::Net(net) => app.on_net(net),
                Event::Tick => vec![],
            };
            for command in commands {
                let _ = command_tx.send(command).await;
            }
            if app.quit {
                return Ok(());
            }
        }
    }
    .await;
    ratatui::restore();
    result
}
