//! `auctionctl`, the operator's CLI, as a library so that `main` stays thin: [`run`] executes one
//! parsed command and returns a [`CliError`] whose exit code `main` uses.
//!
//! - [`opt`]: every clap type.
//! - `client`: REST calls and error mapping. `output`: human formatting. `time`: durations and
//!   times as typed and as shown.

mod client;
pub mod error;
pub mod opt;
mod output;
pub mod time;

use std::io::{BufRead, Write};

use auction_proto::rest::{Auction, AuctionList, BidsPage, CreateAuction, LeaderInfo};
use auction_proto::ws::ServerFrame;
use auction_proto::{Amount, AuctionId, BidRules, UserId};
use chrono::Utc;
use clap::CommandFactory;
use futures_util::StreamExt;
use serde_json::{Value, json};

use client::Client;
pub use error::{CliError, Result};
use opt::{Command, Create, Global, Opt, Output, Rules};

/// Runs one command, printing its result to stdout.
pub async fn run(opt: Opt) -> Result<()> {
    let g = &opt.global;
    let api = || Client::new(&g.api_url, g.timeout, g.admin_token.as_deref());
    match opt.command {
        Command::Create(create) => {
            let body = serde_json::to_value(create_body(&create)?).map_err(failed)?;
            let value = create_auction(&api()?, &body).await?;
            print_auction(g, value)
        }
        Command::Get { id } => {
            // With the operator token the answer carries the reserve price.
            let value = api()?.get_as_operator(&format!("/api/v1/auctions/{}", auction_id(&id)?)).await?;
            print_auction(g, value)
        }
        Command::List { status, limit } => {
            let mut path = format!("/api/v1/auctions?limit={limit}");
            if let Some(status) = status {
                path.push_str(&format!("&status={status}"));
            }
            let value = api()?.get(&path).await?;
            print(g, &value, |v| {
                let list: AuctionList = parse(v)?;
                Ok(output::auctions(&list.auctions, Utc::now()))
            })
        }
        Command::Extend { id, by } => {
            let seconds = by.as_secs();
            if seconds == 0 || by.subsec_nanos() != 0 {
                return Err(CliError::Usage(format!(
                    "--by must be a whole number of seconds, at least 1s (got {by:?})"
                )));
            }
            let path = format!("/api/v1/auctions/{}/extend", auction_id(&id)?);
            let value = api()?.post(&path, &json!({ "seconds": seconds })).await?;
            print(g, &value, |v| {
                let end = v["end_time"].as_str().unwrap_or_default();
                let time = chrono::DateTime::parse_from_rfc3339(end).map_err(failed)?.with_timezone(&Utc);
                Ok(format!("extended: {}\n", time::local_with_hint(time, Utc::now(), "closes", "closed")))
            })
        }
        Command::Cancel { id, yes } => {
            let id = auction_id(&id)?;
            if !yes && !confirm(&format!("cancel auction {id}? bids will be refused [y/N] "))? {
                return Err(CliError::Failed("not cancelled".to_owned()));
            }
            let value = api()?.post(&format!("/api/v1/auctions/{id}/cancel"), &json!({})).await?;
            print_auction(g, value)
        }
        Command::Bids { id, limit, all } => bids(g, &api()?, &auction_id(&id)?, limit, all).await,
        Command::Watch { id, user } => watch(g, &auction_id(&id)?, &user).await,
        Command::Leader => {
            let value = api()?.get("/api/v1/leader").await?;
            print(g, &value, |v| Ok(output::leader(&parse::<LeaderInfo>(v)?)))
        }
        Command::Rules(Rules::Get) => {
            let value = api()?.get("/api/v1/rules").await?;
            print(g, &value, |v| Ok(output::rules(&parse::<BidRules>(v)?)))
        }
        Command::Rules(Rules::Set { file }) => {
            let rules = read_rules(&file)?;
            let value = api()?.put("/api/v1/rules", &serde_json::to_value(&rules).map_err(failed)?).await?;
            print(g, &value, |v| Ok(format!("rules replaced:\n{}", output::rules(&parse::<BidRules>(v)?))))
        }
        Command::Health => health(g).await,
        Command::Token { user, ttl, auth_secret } => {
            let user = UserId::parse(&user).map_err(|e| CliError::Usage(e.to_string()))?;
            let secret = auth_secret.filter(|s| !s.is_empty()).ok_or_else(|| {
                CliError::Usage("the signing secret is missing: set AUTH_SECRET or pass --auth-secret".into())
            })?;
            let now = u64::try_from(Utc::now().timestamp()).unwrap_or(0);
            let token = auction_proto::auth::mint(secret.as_bytes(), &user, now, ttl.as_secs())
                .map_err(|e| CliError::Failed(e.to_string()))?;
            let value = json!({ "user": user.as_str(), "token": token, "expires_in_s": ttl.as_secs() });
            print(g, &value, |v| Ok(format!("{}\n", v["token"].as_str().unwrap_or_default())))
        }
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Opt::command(), "auctionctl", &mut std::io::stdout());
            Ok(())
        }
    }
}

fn failed(e: impl std::fmt::Display) -> CliError {
    CliError::Failed(format!("unexpected answer: {e}"))
}

fn parse<T: serde::de::DeserializeOwned>(value: &Value) -> Result<T> {
    serde_json::from_value(value.clone()).map_err(failed)
}

/// Prints `value` as JSON, or through `human` as text.
fn print(g: &Global, value: &Value, human: impl FnOnce(&Value) -> Result<String>) -> Result<()> {
    let text = match g.output {
        Output::Json => format!("{}\n", serde_json::to_string_pretty(value).map_err(failed)?),
        Output::Table => human(value)?,
    };
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| CliError::Failed(format!("cannot write: {e}")))
}

fn print_auction(g: &Global, value: Value) -> Result<()> {
    print(g, &value, |v| Ok(output::auction(&parse::<Auction>(v)?, Utc::now())))
}

fn auction_id(text: &str) -> Result<AuctionId> {
    AuctionId::parse(text).map_err(|e| CliError::Usage(e.to_string()))
}

/// How many times `create` sends its request when no answer came or the service was unavailable.
const CREATE_ATTEMPTS: u32 = 3;

/// Creates an auction with a fresh Idempotency-Key, sending the same request with the same key
/// again (a second, then two seconds later) when it got no answer or a 503: the service then
/// answers with the auction the first attempt made, if it made one, rather than make a second.
async fn create_auction(api: &Client, body: &Value) -> Result<Value> {
    let key = uuid::Uuid::new_v4().to_string();
    let mut attempt = 1;
    loop {
        match api.post_idempotent("/api/v1/auctions", body, &key).await {
            Err(e @ (CliError::Unreachable { .. } | CliError::Server { status: 503, .. }))
                if attempt < CREATE_ATTEMPTS =>
            {
                eprintln!("auctionctl: {e}; sending the create again (Idempotency-Key {key})");
                tokio::time::sleep(std::time::Duration::from_secs(u64::from(attempt))).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// Builds the create request, refusing bad input before anything is sent.
fn create_body(c: &Create) -> Result<CreateAuction> {
    let now = Utc::now();
    let usage = |flag: &str, e: String| CliError::Usage(format!("{flag}: {e}"));
    let start = time::parse_time(&c.start, now).map_err(|e| usage("--start", e))?;
    let end = match (&c.end, c.duration) {
        (Some(end), None) => time::parse_time(end, now).map_err(|e| usage("--end", e))?,
        (None, Some(d)) => {
            start + chrono::Duration::from_std(d).map_err(|_| usage("--duration", "is too long".into()))?
        }
        _ => return Err(CliError::Usage("give --duration (such as 10m) or --end".to_owned())),
    };
    if end <= start {
        return Err(CliError::Usage("the auction must end after it starts".to_owned()));
    }
    let starting_bid = Amount::parse(&c.starting_bid).map_err(|e| usage("--starting-bid", e.to_string()))?;
    let seconds = |flag: &str, d: Option<std::time::Duration>| -> Result<Option<u32>> {
        d.map(|d| u32::try_from(d.as_secs()).map_err(|_| usage(flag, "is too long".into()))).transpose()
    };
    let price = |flag: &str, text: Option<&str>| -> Result<Option<Amount>> {
        let Some(text) = text else { return Ok(None) };
        let amount = Amount::parse(text).map_err(|e| usage(flag, e.to_string()))?;
        if amount <= starting_bid {
            return Err(usage(flag, format!("{amount} must be above the starting bid ({starting_bid})")));
        }
        Ok(Some(amount))
    };
    let reserve_price = price("--reserve", c.reserve.as_deref())?;
    let buy_now_price = price("--buy-now", c.buy_now.as_deref())?;
    if let (Some(reserve), Some(buy_now)) = (reserve_price, buy_now_price)
        && buy_now < reserve
    {
        return Err(usage("--buy-now", format!("{buy_now} must be at or above the reserve ({reserve})")));
    }
    Ok(CreateAuction {
        title: c.title.clone(),
        start_time: start,
        end_time: end,
        starting_bid,
        extension_window_s: seconds("--extension-window", c.extension_window)?,
        extension_s: seconds("--extension", c.extension)?,
        buy_now_price,
        reserve_price,
    })
}

/// Reads and checks a rules file (`-` for standard input): invalid rules are never sent.
fn read_rules(file: &std::path::Path) -> Result<BidRules> {
    let name = file.display().to_string();
    let text = if name == "-" {
        std::io::read_to_string(std::io::stdin())
            .map_err(|e| CliError::Usage(format!("cannot read standard input: {e}")))?
    } else {
        std::fs::read_to_string(file).map_err(|e| CliError::Usage(format!("cannot read {name}: {e}")))?
    };
    let rules: BidRules =
        serde_json::from_str(&text).map_err(|e| CliError::Usage(format!("{name}: not valid rules: {e}")))?;
    rules.validate().map_err(|e| CliError::Usage(format!("{name}: {e}")))?;
    Ok(rules)
}

/// Asks on stderr, reads a line from stdin; only `y` or `yes` agrees.
fn confirm(question: &str) -> Result<bool> {
    eprint!("{question}");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| CliError::Failed(format!("cannot read the answer: {e}")))?;
    Ok(matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes"))
}

async fn bids(g: &Global, api: &Client, id: &AuctionId, limit: u32, all: bool) -> Result<()> {
    let mut collected = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/api/v1/auctions/{id}/bids?limit={limit}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page: BidsPage = parse(&api.get(&path).await?)?;
        collected.extend(page.bids);
        cursor = page.next_cursor;
        if !all || cursor.is_none() {
            break;
        }
    }
    let value = serde_json::to_value(BidsPage { bids: collected, next_cursor: cursor }).map_err(failed)?;
    print(g, &value, |v| {
        let page: BidsPage = parse(v)?;
        let mut text = output::bids(&page.bids);
        if let Some(next) = page.next_cursor {
            text.push_str(&format!("more: --all, or the API with cursor={next}\n"));
        }
        Ok(text)
    })
}

/// Follows an auction over the WebSocket, one line (or JSON object) per event, until it ends or is
/// cancelled, or Ctrl-C.
async fn watch(g: &Global, id: &AuctionId, user: &str) -> Result<()> {
    let user = UserId::parse(user).map_err(|e| CliError::Usage(e.to_string()))?;
    // The bidder token: given, or minted from AUTH_SECRET when the operator has it.
    let token = match (&g.token, std::env::var("AUTH_SECRET").ok().filter(|s| !s.is_empty())) {
        (Some(token), _) => Some(token.clone()),
        (None, Some(secret)) => {
            let now = u64::try_from(Utc::now().timestamp()).unwrap_or(0);
            auction_proto::auth::mint(secret.as_bytes(), &user, now, 24 * 3600).ok()
        }
        (None, None) => None,
    };
    // Errors name the URL without the token.
    let url = format!("{}/ws/auction/{id}?user_id={user}", g.ws_url.trim_end_matches('/'));
    let with_token = match &token {
        Some(token) => format!("{url}&token={token}"),
        None => url.clone(),
    };
    let connect = tokio_tungstenite::connect_async(&with_token);
    let (mut socket, _) = match tokio::time::timeout(g.timeout, connect).await {
        Err(_) => return Err(CliError::Unreachable { url, reason: "no answer in time (see --timeout)".into() }),
        Ok(Err(tokio_tungstenite::tungstenite::Error::Http(response))) => {
            let status = response.status().as_u16();
            let body: Value =
                response.body().as_ref().and_then(|b| serde_json::from_slice(b).ok()).unwrap_or(Value::Null);
            return Err(CliError::Server {
                status,
                code: body["error"]["code"].as_str().unwrap_or("error").to_owned(),
                message: body["error"]["message"].as_str().unwrap_or("the bidding service refused").to_owned(),
            });
        }
        Ok(Err(e)) => return Err(CliError::Unreachable { url, reason: e.to_string() }),
        Ok(Ok(pair)) => pair,
    };
    loop {
        let message = tokio::select! {
            message = socket.next() => message,
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        let text = match message {
            Some(Ok(tokio_tungstenite::tungstenite::Message::Text(text))) => text,
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(CliError::Unreachable { url, reason: e.to_string() }),
            None => return Err(CliError::Failed("the bidding service closed the connection".to_owned())),
        };
        let Ok(frame) = serde_json::from_str::<ServerFrame>(&text) else { continue };
        let line = match g.output {
            Output::Json => Some(text.to_string()),
            Output::Table => output::event(&frame),
        };
        if let Some(line) = line {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}").and_then(|()| out.flush());
        }
        let over = matches!(frame, ServerFrame::AuctionEnded(_) | ServerFrame::AuctionCancelled(_))
            || matches!(&frame, ServerFrame::Snapshot(s) if matches!(s.status, auction_proto::AuctionStatus::Ended | auction_proto::AuctionStatus::Cancelled));
        if over {
            return Ok(());
        }
    }
}

/// One line per service; fails (exit 1) unless every service is healthy.
async fn health(g: &Global) -> Result<()> {
    let bidding = g.ws_url.replacen("ws://", "http://", 1).replacen("wss://", "https://", 1);
    let services = [("auction", g.api_url.clone()), ("bidding", bidding), ("analytics", g.analytics_url.clone())];
    let http = reqwest::Client::builder().timeout(g.timeout).build().map_err(failed)?;
    let mut results = Vec::new();
    for (name, base) in services {
        let url = format!("{}/health", base.trim_end_matches('/'));
        let (status, body) = match http.get(&url).send().await {
            Ok(response) => {
                let body: Value = response.json().await.unwrap_or(Value::Null);
                (body["status"].as_str().unwrap_or("unreadable").to_owned(), body)
            }
            Err(e) => ("unreachable".to_owned(), json!({ "error": client::unreachable(&url, &e).to_string() })),
        };
        results.push(json!({ "service": name, "url": url, "status": status, "health": body }));
    }
    let all_ok = results.iter().all(|r| r["status"] == "ok");
    let value = Value::Array(results);
    print(g, &value, |v| {
        let rows: Vec<Vec<String>> = v
            .as_array()
            .map(|a| a.as_slice())
            .unwrap_or_default()
            .iter()
            .map(|r| {
                let checks = r["health"]["checks"]
                    .as_object()
                    .map(|c| {
                        c.iter()
                            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("?")))
                            .collect::<Vec<_>>()
                            .join(" ")
                    })
                    .unwrap_or_default();
                vec![
                    r["service"].as_str().unwrap_or_default().to_owned(),
                    r["status"].as_str().unwrap_or_default().to_owned(),
                    r["url"].as_str().unwrap_or_default().to_owned(),
                    checks,
                ]
            })
            .collect();
        Ok(output::table(&["SERVICE", "STATUS", "URL", "CHECKS"], &rows))
    })?;
    if all_ok { Ok(()) } else { Err(CliError::Failed("not every service is healthy".to_owned())) }
}
