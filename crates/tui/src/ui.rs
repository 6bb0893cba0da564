//! Drawing: a pure function of the app's state and the time, so that tests can render any state
//! to a `TestBackend` and read the screen.

use auction_proto::AuctionStatus;
use chrono::{DateTime, Utc};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, List, ListItem, Paragraph, Row, Sparkline, Table, TableState};

use crate::app::{App, Connection, Room, Screen};

/// The time left until `d` runs out, compactly (`2m13s`); none left reads `0s`.
fn compact(d: chrono::Duration) -> String {
    auction_proto::duration::compact(d.to_std().unwrap_or_default())
}

pub fn draw(frame: &mut Frame, app: &App, now: DateTime<Utc>) {
    match app.screen {
        Screen::List => list(frame, app, now),
        Screen::Room => room(frame, app, now),
    }
    if app.help {
        help(frame);
    }
}

fn list(frame: &mut Frame, app: &App, now: DateTime<Utc>) {
    let [top, body, foot] =
        Layout::vertical([Constraint::Length(1), Constraint::Min(3), Constraint::Length(1)]).areas(frame.area());
    frame.render_widget(Line::from(format!(" Auctions — bidding as {}", app.user)).bold(), top);
    let rows: Vec<Row> = app
        .auctions
        .iter()
        .map(|a| {
            let price = a.current_bid.unwrap_or(a.starting_bid).to_string();
            let left = match a.status {
                AuctionStatus::Ended | AuctionStatus::Cancelled => "-".to_owned(),
                AuctionStatus::Scheduled => format!("starts in {}", compact(a.start_time - now)),
                AuctionStatus::Active => format!("{} left", compact(a.end_time - now)),
            };
            Row::new(vec![a.title.clone(), a.status.as_str().to_owned(), price, left])
        })
        .collect();
    let table =
        Table::new(rows, [Constraint::Fill(3), Constraint::Length(10), Constraint::Length(14), Constraint::Length(16)])
            .header(Row::new(vec!["TITLE", "STATUS", "CURRENT BID", "TIME LEFT"]).bold())
            .row_highlight_style(Style::new().reversed())
            .block(Block::default().borders(Borders::ALL));
    let mut state = TableState::default().with_selected(Some(app.selected));
    frame.render_stateful_widget(table, body, &mut state);
    let footer = match &app.list_error {
        Some(e) => format!(" cannot load auctions: {e}"),
        None if app.auctions.is_empty() => " no auctions yet — ? help, q quit".to_owned(),
        None => " ↑/↓ choose · Enter open · ? help · q quit".to_owned(),
    };
    frame.render_widget(Line::from(footer), foot);
}

fn connection_span(app: &App) -> Span<'static> {
    match &app.connection {
        Connection::Connecting => Span::styled("connecting…", Style::new().fg(Color::Yellow)),
        Connection::Live => Span::styled(
            match app.round_trip_ms {
                Some(ms) => format!("live · rtt {ms} ms"),
                None => "live".to_owned(),
            },
            Style::new().fg(Color::Green),
        ),
        Connection::Reconnecting { attempt, .. } => {
            Span::styled(format!("reconnecting (attempt {attempt})…"), Style::new().fg(Color::Red).bold())
        }
        Connection::TokenExpired => Span::styled("session expired", Style::new().fg(Color::Red).bold()),
    }
}

fn room(frame: &mut Frame, app: &App, now: DateTime<Utc>) {
    // One line more for the reserve and buy-it-now, when the auction has either.
    let terms = app.room.as_ref().is_some_and(|r| r.reserve_met.is_some() || r.buy_now_price.is_some());
    let [top, info, chart, recent, input, foot] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(if terms { 8 } else { 7 }),
        Constraint::Length(5),
        Constraint::Min(3),
        Constraint::Length(3),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    let Some(room) = &app.room else {
        frame.render_widget(Line::from(vec![Span::raw(" loading the auction… "), connection_span(app)]), top);
        return;
    };
    let title = if room.title.is_empty() { room.auction_id.clone() } else { room.title.clone() };
    frame.render_widget(
        Line::from(vec![
            Span::raw(" "),
            Span::raw(title).bold(),
            Span::raw(format!(" · {} · ", room.status.as_str())),
            connection_span(app),
        ]),
        top,
    );
    frame.render_widget(Paragraph::new(info_lines(app, room, now)).block(Block::default().borders(Borders::ALL)), info);
    // Relative to the lowest price shown, so that small raises are visible.
    let shown: Vec<u64> =
        room.prices.iter().rev().take(chart.width.saturating_sub(2) as usize).rev().copied().collect();
    let floor = shown.iter().min().copied().unwrap_or(0);
    let prices: Vec<u64> = shown.iter().map(|p| p - floor + 1).collect();
    frame.render_widget(
        Sparkline::default().data(&prices).block(Block::default().borders(Borders::ALL).title(" price ")),
        chart,
    );
    let items: Vec<ListItem> = room
        .recent
        .iter()
        .map(|b| {
            let who = if b.bidder == app.user { format!("{} (you)", b.bidder) } else { b.bidder.clone() };
            ListItem::new(format!("{}  {:>12}  {}", b.at.format("%H:%M:%S"), b.amount.to_string(), who))
        })
        .collect();
    frame.render_widget(List::new(items).block(Block::default().borders(Borders::ALL).title(" recent bids ")), recent);
    let typed = if app.input.is_empty() { format!("{} (minimum)", room.min_next_bid) } else { app.input.clone() };
    let mut spans = vec![Span::raw(" bid: "), Span::raw(typed).bold()];
    if let Some(max) = &app.max_input {
        spans.push(Span::raw("  up to: "));
        spans.push(Span::styled(format!("{max}_"), Style::new().fg(Color::Cyan).bold()));
    }
    if let Some(outcome) = &app.outcome {
        let color = if outcome.accepted { Color::Green } else { Color::Red };
        spans.push(Span::raw("   "));
        spans.push(Span::styled(outcome.text.clone(), Style::new().fg(color)));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)).block(Block::default().borders(Borders::ALL)), input);
    let keys = if app.max_input.is_some() {
        " your max: 0-9 type · +/- step · Enter bid up to it · Esc cancel"
    } else {
        " m bid min · x bid up to · 0-9 type · Enter send · Esc back · ? help · q quit"
    };
    frame.render_widget(Line::from(keys), foot);
}

fn info_lines(app: &App, room: &Room, now: DateTime<Utc>) -> Vec<Line<'static>> {
    let mine = room.highest_bidder.as_deref() == Some(app.user.as_str());
    let bidder = match &room.highest_bidder {
        Some(b) if mine => {
            let max = room.your_max.map(|m| format!(" · your max {m}")).unwrap_or_default();
            Span::styled(format!("{b} (you){max}"), Style::new().fg(Color::Green).add_modifier(Modifier::BOLD))
        }
        Some(b) => Span::raw(b.clone()),
        None => Span::raw("-"),
    };
    let current = room.current_bid.map_or_else(|| "no bids yet".to_owned(), |c| c.to_string());
    let close = match room.status {
        AuctionStatus::Ended => match (&room.winner, room.final_price) {
            (Some(w), Some(p)) if room.bought_now && *w == app.user => {
                format!("ENDED — you bought it at the buy-it-now price, {p}")
            }
            (Some(w), Some(p)) if room.bought_now => format!("ENDED — {w} bought it at the buy-it-now price, {p}"),
            (Some(w), Some(p)) if *w == app.user => format!("ENDED — you won at {p}"),
            (Some(w), Some(p)) => format!("ENDED — {w} won at {p}"),
            _ if room.reserve_met == Some(false) => "ENDED — no sale: reserve not met".to_owned(),
            _ if now >= room.end_time && room.current_bid.is_some() => {
                format!("ENDED — {} won at {current}", room.highest_bidder.clone().unwrap_or_default())
            }
            _ => "ENDED — no bids".to_owned(),
        },
        AuctionStatus::Cancelled => "CANCELLED".to_owned(),
        _ if now >= room.end_time => "closed".to_owned(),
        _ => format!("closes in {}", compact(room.end_time - now)),
    };
    let extended = room
        .extended_at
        .filter(|at| (now - *at).num_seconds() < 5)
        .map(|_| Span::styled("  extended!", Style::new().fg(Color::Yellow).bold()));
    let mut close_line = vec![Span::raw(" close      "), Span::raw(close).bold()];
    close_line.extend(extended);
    let mut lines = vec![
        Line::from(vec![Span::raw(" current    "), Span::raw(current).bold()]),
        Line::from(vec![Span::raw(" highest    "), bidder]),
        Line::from(vec![Span::raw(" min next   "), Span::raw(room.min_next_bid.to_string())]),
        Line::from(vec![Span::raw(format!(" bids       {}", room.bid_count))]),
        Line::from(close_line),
    ];
    let mut terms = vec![];
    match room.reserve_met {
        Some(true) => terms.push(Span::styled("reserve met", Style::new().fg(Color::Green))),
        Some(false) => terms.push(Span::styled("reserve not met", Style::new().fg(Color::Yellow))),
        None => {}
    }
    if let Some(price) = room.buy_now_price {
        if !terms.is_empty() {
            terms.push(Span::raw(" · "));
        }
        terms.push(Span::raw(format!("buy it now at {price}")).bold());
    }
    if !terms.is_empty() {
        terms.insert(0, Span::raw(" "));
        lines.push(Line::from(terms));
    }
    lines
}

fn help(frame: &mut Frame) {
    let text = vec![
        Line::from(" Keys").bold(),
        Line::from(""),
        Line::from(" list:  ↑/↓ or j/k choose, Enter open"),
        Line::from(" room:  m       bid the minimum now"),
        Line::from("        0-9 .   type an amount, Enter to send"),
        Line::from("        x       bid up to a max: type it, Enter"),
        Line::from("                (the service bids for you)"),
        Line::from("        + / -   raise / lower by one increment"),
        Line::from("        Enter   send (the minimum if nothing typed)"),
        Line::from("        s       resync   Esc clear / back"),
        Line::from(" any:   ? help   q or Ctrl-C quit"),
        Line::from(""),
        Line::from(" any key closes this help"),
    ];
    // Sized to its longest line plus a space and the borders, so that no line is cut.
    let widest = text.iter().map(Line::width).max().unwrap_or(0);
    let width = u16::try_from(widest + 3).unwrap_or(u16::MAX);
    let height = u16::try_from(text.len() + 2).unwrap_or(u16::MAX);
    let area = centered(frame.area(), width, height);
    frame.render_widget(Clear, area);
    frame.render_widget(Paragraph::new(text).block(Block::default().borders(Borders::ALL).title(" help ")), area);
}

fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let width = width.min(area.width);
    let height = height.min(area.height);
    Rect { x: area.x + (area.width - width) / 2, y: area.y + (area.height - height) / 2, width, height }
}
