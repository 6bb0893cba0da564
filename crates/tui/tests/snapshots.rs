//! Snapshot tests: app states rendered to a `TestBackend` and compared, text only, with the
//! screens stored under `tests/snapshots/` (`UPDATE_SNAPSHOTS=1` rewrites them after a deliberate
//! change; review the diff).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use auction_proto::rest::Auction;
use auction_proto::ws::{AuctionEnded, AuctionExtended, BidAccepted, BidPlaced, BidRejected, ServerFrame, Snapshot};
use auction_proto::{Amount, AuctionId, AuctionStatus, BidId, RejectReason, UserId};
use auction_tui::app::App;
use auction_tui::event::Net;
use chrono::{DateTime, Utc};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

const NOW: &str = "2026-11-26T10:00:00Z";

fn amount(s: &str) -> Amount {
    Amount::parse(s).unwrap()
}

fn render(app: &App, name: &str) {
    let mut terminal = Terminal::new(TestBackend::new(80, 24)).unwrap();
    terminal.draw(|f| auction_tui::ui::draw(f, app, t(NOW))).unwrap();
    let buffer = terminal.backend().buffer();
    let mut text = String::new();
    for y in 0..buffer.area.height {
        let line: String = (0..buffer.area.width).map(|x| buffer[(x, y)].symbol().to_owned()).collect();
        text.push_str(line.trim_end());
        text.push('\n');
    }
    let path = format!("{}/tests/snapshots/{name}.txt", env!("CARGO_MANIFEST_DIR"));
    if updating(std::env::var("UPDATE_SNAPSHOTS").ok().as_deref()) {
        std::fs::write(&path, &text).unwrap();
    }
    let expected =
        std::fs::read_to_string(&path).unwrap_or_else(|_| panic!("no snapshot {path}; run with UPDATE_SNAPSHOTS=1"));
    assert_eq!(text, expected, "screen {name} differs from {path}:\n{text}");
}

/// Whether `UPDATE_SNAPSHOTS` (its value, if set) asks to rewrite the stored screens: only `1`
/// does. Anything else, `0` and empty included, leaves them alone and compares, so a variable
/// left over in a shell or a CI setting can never turn the checks off.
fn updating(value: Option<&str>) -> bool {
    value == Some("1")
}

#[test]
fn only_update_snapshots_1_rewrites_the_screens() {
    assert!(updating(Some("1")));
    for value in [None, Some("0"), Some(""), Some("false"), Some("no"), Some(" 1"), Some("yes")] {
        assert!(!updating(value), "UPDATE_SNAPSHOTS={value:?} would rewrite the screens and check nothing");
    }
}

fn auction(id: &str, title: &str, status: AuctionStatus, current: Option<&str>, ends: &str) -> Auction {
    let starts = if status == AuctionStatus::Scheduled { "2026-11-26T11:00:00Z" } else { "2026-11-26T09:00:00Z" };
    Auction {
        auction_id: AuctionId::parse(id).unwrap(),
        title: title.into(),
        status,
        start_time: t(starts),
        end_time: t(ends),
        starting_bid: amount("10"),
        current_bid: current.map(amount),
        highest_bidder: None,
        min_next_bid: amount("10"),
        bid_count: 0,
        seq: 0,
        server_time: t(NOW),
        recent_bids: vec![],
        extension_window_s: 30,
        extension_s: 30,
        created_at: t("2026-11-26T08:00:00Z"),
        winner: None,
        final_price: None,
        buy_now_price: None,
        reserve_met: None,
        reserve_price: None,
    }
}

fn snapshot() -> Snapshot {
    Snapshot {
        auction_id: AuctionId::parse("lamp").unwrap(),
        status: AuctionStatus::Active,
        start_time: t("2026-11-26T09:00:00Z"),
        end_time: t("2026-11-26T10:02:13Z"),
        starting_bid: amount("100"),
        current_bid: None,
        highest_bidder: None,
        min_next_bid: amount("100"),
        bid_count: 0,
        seq: 1,
        server_time: t(NOW),
        recent_bids: vec![],
        buy_now_price: None,
        reserve_met: None,
        your_max: None,
    }
}

fn placed(seq: u64, bidder: &str, amount_: &str, next: &str, end: &str) -> Net {
    Net::Frame(Box::new(ServerFrame::BidPlaced(BidPlaced {
        auction_id: AuctionId::parse("lamp").unwrap(),
        bid_id: BidId::parse(&format!("b{seq}")).unwrap(),
        amount: amount(amount_),
        bidder: UserId::parse(bidder).unwrap(),
        seq,
        end_time: t(end),
        bid_count: seq - 1,
        placed_at: t("2026-11-26T09:59:5{seq}Z".replace("{seq}", &seq.to_string()).as_str()),
        min_next_bid: Some(amount(next)),
        auto: false,
        placed_by: None,
        reserve_met: None,
    })))
}

/// Alice in the room of "Brass lamp", with the list loaded first (for the title).
fn room() -> App {
    let mut app = App::new("alice", "test");
    app.on_net(Net::List(Ok(vec![auction("lamp", "Brass lamp", AuctionStatus::Active, None, "2026-11-26T10:02:13Z")])));
    app.enter("lamp");
    app.on_net(Net::Connected);
    app.on_net(Net::RoundTrip(3));
    app.on_net(Net::Frame(Box::new(ServerFrame::Snapshot(snapshot()))));
    app
}

#[test]
fn list() {
    let mut app = App::new("alice", "test");
    app.on_net(Net::List(Ok(vec![
        auction("lamp", "Brass lamp", AuctionStatus::Active, Some("102.50"), "2026-11-26T10:02:13Z"),
        auction("clock", "Grandfather clock", AuctionStatus::Scheduled, None, "2026-11-26T12:00:00Z"),
        auction("vase", "Ming-style vase", AuctionStatus::Ended, Some("940.00"), "2026-11-26T09:30:00Z"),
    ])));
    app.on_key(KeyEvent::new(KeyCode::Down, KeyModifiers::NONE));
    render(&app, "list");
}

#[test]
fn room_before_bids() {
    render(&room(), "room_before_bids");
}

#[test]
fn room_after_bids() {
    let mut app = room();
    app.on_net(placed(2, "bob", "100.00", "102.50", "2026-11-26T10:02:13Z"));
    app.on_key(KeyEvent::new(KeyCode::Char('m'), KeyModifiers::NONE));
    app.on_net(placed(3, "alice", "102.50", "105.00", "2026-11-26T10:02:13Z"));
    app.on_net(Net::Frame(Box::new(ServerFrame::BidAccepted(BidAccepted {
        auction_id: AuctionId::parse("lamp").unwrap(),
        bid_id: BidId::parse("tui-test-1").unwrap(),
        amount: amount("102.50"),
        seq: 3,
        end_time: t("2026-11-26T10:02:13Z"),
        bought_now: false,
        current_bid: None,
        leading: true,
        min_next_bid: None,
        your_max: None,
    }))));
    render(&app, "room_after_bids");
}

#[test]
fn rejection() {
    let mut app = room();
    app.on_net(placed(2, "bob", "100.00", "102.50", "2026-11-26T10:02:13Z"));
    for c in ['1', '0', '1'] {
        app.on_key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE));
    }
    let commands = app.on_key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE));
    assert_eq!(commands.len(), 1);
    app.on_net(Net::Frame(Box::new(ServerFrame::BidRejected(BidRejected {
        auction_id: AuctionId::parse("lamp").unwrap(),
        bid_id: Some(BidId::parse("tui-test-1").unwrap()),
        reason: RejectReason::BidTooLow,
        message: "the minimum bid is 102.50".into(),
        min_next_bid: Some(amount("102.50")),
        current_bid: Some(amount("100.00")),
    }))));
    render(&app, "rejection");
}

#[test]
fn extension() {
    let mut app = room();
    app.on_net(placed(2, "bob", "100.00", "102.50", "2026-11-26T10:02:13Z"));
    app.on_net(Net::Frame(Box::new(ServerFrame::AuctionExtended(AuctionExtended {
        auction_id: AuctionId::parse("lamp").unwrap(),
        end_time: t("2026-11-26T10:05:00Z"),
        previous_end_time: t("2026-11-26T10:02:13Z"),
        seq: 2,
    }))));
    // The flash is timed from when the extension arrived; pin it to the rendering clock.
    if let Some(room) = app.room.as_mut() {
        room.extended_at = Some(t(NOW));
    }
    render(&app, "extension");
}

#[test]
fn ended() {
    let mut app = room();
    app.on_net(placed(2, "bob", "100.00", "102.50", "2026-11-26T10:02:13Z"));
    app.on_net(placed(3, "alice", "102.50", "105.00", "2026-11-26T10:02:13Z"));
    app.on_net(Net::Frame(Box::new(ServerFrame::AuctionEnded(AuctionEnded {
        auction_id: AuctionId::parse("lamp").unwrap(),
        winner: Some(UserId::parse("alice").unwrap()),
        final_price: Some(amount("102.50")),
        seq: 4,
        bought_now: false,
        reserve_met: None,
    }))));
    render(&app, "ended");
}

#[test]
fn reconnecting_and_help() {
    let mut app = room();
    app.on_net(Net::Reconnecting { attempt: 2, reason: "connection lost".into() });
    render(&app, "reconnecting");
    app.on_key(KeyEvent::new(KeyCode::Char('?'), KeyModifiers::NONE));
    render(&app, "help");
}

#[test]
fn an_expired_token_is_shown_and_bidding_stops() {
    let mut app = room();
    app.on_net(Net::Frame(Box::new(ServerFrame::Error(auction_proto::ws::ErrorFrame {
        code: "token_expired".into(),
        message: "your token has expired; connect again with a new one".into(),
    }))));
    app.on_net(Net::TokenExpired);
    let commands = app.on_key(KeyEvent::new(KeyCode::Char('m'), KeyModifiers::NONE));
    assert_eq!(commands, vec![], "no bid is sent on an expired token");
    render(&app, "token_expired");
}

#[test]
fn the_help_box_shows_every_line_whole() {
    let mut app = room();
    app.on_key(KeyEvent::new(KeyCode::Char('?'), KeyModifiers::NONE));
    let mut terminal = Terminal::new(TestBackend::new(80, 24)).unwrap();
    terminal.draw(|f| auction_tui::ui::draw(f, &app, t(NOW))).unwrap();
    let buffer = terminal.backend().buffer();
    let screen: Vec<String> = (0..buffer.area.height)
        .map(|y| (0..buffer.area.width).map(|x| buffer[(x, y)].symbol().to_owned()).collect())
        .collect();
    for line in [
        "list:  ↑/↓ or j/k choose, Enter open",
        "Enter   send (the minimum if nothing typed) │",
        "s       resync   Esc clear / back",
        "any:   ? help   q or Ctrl-C quit",
        "any key closes this help",
    ] {
        assert!(
            screen.iter().any(|row| row.contains(line)),
            "{line:?} is not whole inside the box:\n{}",
            screen.join("\n")
        );
    }
}

#[test]
fn a_gap_in_seq_asks_for_a_resync() {
    let mut app = room();
    let commands = app.on_net(placed(5, "bob", "100.00", "102.50", "2026-11-26T10:02:13Z"));
    assert_eq!(commands, vec![auction_tui::event::Command::Sync]);
    assert_eq!(app.room.as_ref().unwrap().current_bid, None, "nothing applied past the gap");
}

fn key(app: &mut App, code: KeyCode) -> Vec<auction_tui::event::Command> {
    app.on_key(KeyEvent::new(code, KeyModifiers::NONE))
}

fn type_text(app: &mut App, text: &str) {
    for c in text.chars() {
        key(app, KeyCode::Char(c));
    }
}

/// Alice in the room of an auction with a hidden reserve and a buy-it-now price of 500.00.
fn room_with_terms() -> App {
    let mut app = App::new("alice", "test");
    app.on_net(Net::List(Ok(vec![auction("lamp", "Brass lamp", AuctionStatus::Active, None, "2026-11-26T10:02:13Z")])));
    app.enter("lamp");
    app.on_net(Net::Connected);
    app.on_net(Net::RoundTrip(3));
    let snapshot = Snapshot { reserve_met: Some(false), buy_now_price: Some(amount("500")), ..snapshot() };
    app.on_net(Net::Frame(Box::new(ServerFrame::Snapshot(snapshot))));
    app
}

fn frame(frame: ServerFrame) -> Net {
    Net::Frame(Box::new(frame))
}

/// A `bid_placed` a max placed: `bidder` leads after it, `by` (when another) made the change.
fn auto_placed(seq: u64, bidder: &str, amount_: &str, next: &str, by: Option<&str>, reserve_met: Option<bool>) -> Net {
    let Net::Frame(placed) = placed(seq, bidder, amount_, next, "2026-11-26T10:02:13Z") else { unreachable!() };
    let ServerFrame::BidPlaced(placed) = *placed else { unreachable!() };
    frame(ServerFrame::BidPlaced(BidPlaced {
        auto: true,
        placed_by: by.map(|b| UserId::parse(b).unwrap()),
        reserve_met,
        ..placed
    }))
}

fn accepted(seq: u64, amount_: &str) -> BidAccepted {
    BidAccepted {
        auction_id: AuctionId::parse("lamp").unwrap(),
        bid_id: BidId::parse("tui-test-1").unwrap(),
        amount: amount(amount_),
        seq,
        end_time: t("2026-11-26T10:02:13Z"),
        bought_now: false,
        current_bid: None,
        leading: true,
        min_next_bid: None,
        your_max: None,
    }
}

fn outcome(app: &App) -> String {
    app.outcome.as_ref().map(|o| o.text.clone()).unwrap_or_default()
}

#[test]
fn the_room_shows_the_reserve_and_buy_now() {
    render(&room_with_terms(), "room_with_terms");
}

#[test]
fn x_opens_the_max_and_enter_sends_a_proxy_bid() {
    let mut app = room_with_terms();
    assert_eq!(key(&mut app, KeyCode::Char('x')), vec![]);
    type_text(&mut app, "150");
    render(&app, "max_typing");
    let commands = key(&mut app, KeyCode::Enter);
    assert_eq!(
        commands,
        vec![auction_tui::event::Command::Bid {
            amount: amount("100"),
            max: Some(amount("150")),
            bid_id: "tui-test-1".into()
        }],
        "the amount is the minimum, the max what was typed"
    );
    assert_eq!(app.max_input, None, "the max field closes once sent");
    assert_eq!(outcome(&app), "bidding 100.00, up to 150.00…");

    // A typed amount is the bid, the max its ceiling.
    type_text(&mut app, "120");
    key(&mut app, KeyCode::Char('x'));
    type_text(&mut app, "200");
    let commands = key(&mut app, KeyCode::Enter);
    assert_eq!(
        commands,
        vec![auction_tui::event::Command::Bid {
            amount: amount("120"),
            max: Some(amount("200")),
            bid_id: "tui-test-2".into()
        }]
    );
}

#[test]
fn leading_with_a_max_shows_it_and_the_reserve_as_it_changes() {
    let mut app = room_with_terms();
    key(&mut app, KeyCode::Char('x'));
    type_text(&mut app, "150");
    key(&mut app, KeyCode::Enter);
    app.on_net(frame(ServerFrame::BidAccepted(BidAccepted {
        your_max: Some(amount("150")),
        current_bid: Some(amount("100")),
        min_next_bid: Some(amount("102.50")),
        ..accepted(2, "100.00")
    })));
    app.on_net(auto_placed(2, "alice", "100.00", "102.50", None, Some(false)));
    let room = app.room.as_ref().unwrap();
    assert_eq!(room.your_max, Some(amount("150")));
    assert_eq!(room.buy_now_price, Some(amount("500")), "buy it now lasts while the reserve is not met");
    assert_eq!(outcome(&app), "accepted: you lead at 100.00, up to your max 150.00");
    render(&app, "leading_with_a_max");

    // Bob's bid is answered by alice's max: she still leads, and is told.
    app.on_net(auto_placed(3, "alice", "130.00", "132.50", Some("bob"), Some(false)));
    assert_eq!(outcome(&app), "your max held against bob's bid: you lead at 130.00");
    assert_eq!(app.room.as_ref().unwrap().your_max, Some(amount("150")));
    // Carol's max passes alice's and meets the reserve: buy it now is gone, alice's max too.
    app.on_net(auto_placed(4, "carol", "152.50", "155.00", None, Some(true)));
    let room = app.room.as_ref().unwrap();
    assert_eq!((room.your_max, room.buy_now_price, room.reserve_met), (None, None, Some(true)));
    assert_eq!(outcome(&app), "outbid by a proxy: carol's max leads at 152.50");
    render(&app, "outbid_by_a_proxy_max");
}

#[test]
fn a_bid_beaten_at_once_by_a_standing_max_says_so() {
    let mut app = room_with_terms();
    app.on_net(auto_placed(2, "bob", "100.00", "102.50", None, Some(false)));
    key(&mut app, KeyCode::Char('m'));
    // The answer may come before the change it caused reaches the room.
    app.on_net(frame(ServerFrame::BidAccepted(BidAccepted {
        leading: false,
        current_bid: Some(amount("105.00")),
        min_next_bid: Some(amount("107.50")),
        ..accepted(3, "102.50")
    })));
    assert_eq!(outcome(&app), "outbid by a proxy: now 105.00 (your bid 102.50)");
    assert!(!app.outcome.as_ref().unwrap().accepted);
    assert_eq!(app.room.as_ref().unwrap().min_next_bid, amount("107.50"));
    app.on_net(auto_placed(3, "bob", "105.00", "107.50", Some("alice"), Some(false)));
    assert_eq!(outcome(&app), "outbid by a proxy: bob's max beat you at 105.00");
    render(&app, "outbid_by_a_proxy");
}

#[test]
fn a_plain_outbid_is_said_too() {
    let mut app = room();
    app.on_net(placed(2, "alice", "100.00", "102.50", "2026-11-26T10:02:13Z"));
    app.on_net(placed(3, "bob", "102.50", "105.00", "2026-11-26T10:02:13Z"));
    assert_eq!(outcome(&app), "outbid: bob leads at 102.50");
}

#[test]
fn an_auction_that_closes_below_its_reserve_has_no_sale() {
    let mut app = room_with_terms();
    app.on_net(auto_placed(2, "alice", "120.00", "122.50", None, Some(false)));
    app.on_net(frame(ServerFrame::AuctionEnded(AuctionEnded {
        auction_id: AuctionId::parse("lamp").unwrap(),
        winner: None,
        final_price: None,
        seq: 3,
        bought_now: false,
        reserve_met: Some(false),
    })));
    render(&app, "ended_reserve_not_met");
}

#[test]
fn a_buy_it_now_ends_the_auction_in_words() {
    let mut app = room_with_terms();
    key(&mut app, KeyCode::Char('x'));
    type_text(&mut app, "500");
    key(&mut app, KeyCode::Enter);
    app.on_net(frame(ServerFrame::BidAccepted(BidAccepted { bought_now: true, ..accepted(2, "500.00") })));
    assert_eq!(outcome(&app), "bought it now at 500.00");
    app.on_net(placed(2, "alice", "500.00", "510.00", "2026-11-26T10:00:00Z"));
    app.on_net(frame(ServerFrame::AuctionEnded(AuctionEnded {
        auction_id: AuctionId::parse("lamp").unwrap(),
        winner: Some(UserId::parse("alice").unwrap()),
        final_price: Some(amount("500.00")),
        seq: 3,
        bought_now: true,
        reserve_met: Some(true),
    })));
    render(&app, "ended_bought_now");

    // Seen by another bidder.
    let mut app = room_with_terms();
    app.on_net(placed(2, "bob", "500.00", "510.00", "2026-11-26T10:00:00Z"));
    app.on_net(frame(ServerFrame::AuctionEnded(AuctionEnded {
        auction_id: AuctionId::parse("lamp").unwrap(),
        winner: Some(UserId::parse("bob").unwrap()),
        final_price: Some(amount("500.00")),
        seq: 3,
        bought_now: true,
        reserve_met: None,
    })));
    let mut terminal = Terminal::new(TestBackend::new(80, 24)).unwrap();
    terminal.draw(|f| auction_tui::ui::draw(f, &app, t(NOW))).unwrap();
    let screen: String = terminal.backend().buffer().content().iter().map(|c| c.symbol()).collect();
    assert!(screen.contains("ENDED — bob bought it at the buy-it-now price, 500.00"), "{screen}");
}

#[test]
fn a_bad_max_is_refused_in_words_and_nothing_is_sent() {
    let mut app = room_with_terms();
    key(&mut app, KeyCode::Char('x'));
    assert_eq!(key(&mut app, KeyCode::Enter), vec![]);
    assert_eq!(outcome(&app), "type your max (the most to bid up to), then Enter");
    type_text(&mut app, "1.2.3");
    assert_eq!(key(&mut app, KeyCode::Enter), vec![]);
    assert!(outcome(&app).starts_with("your max \"1.2.3\" is not an amount"), "{}", outcome(&app));
    // Esc closes the max; the typed bid stays.
    key(&mut app, KeyCode::Esc);
    assert_eq!(app.max_input, None);
    type_text(&mut app, "130");
    key(&mut app, KeyCode::Char('x'));
    type_text(&mut app, "120");
    assert_eq!(key(&mut app, KeyCode::Enter), vec![]);
    assert_eq!(outcome(&app), "your max 120.00 is below your bid of 130.00");
    assert_eq!(app.input, "130", "nothing was cleared: fix the max and send again");
}

#[test]
fn a_max_below_the_minimum_is_refused_unless_you_lead() {
    let mut app = room_with_terms();
    key(&mut app, KeyCode::Char('x'));
    type_text(&mut app, "90");
    assert_eq!(key(&mut app, KeyCode::Enter), vec![]);
    assert_eq!(outcome(&app), "your max 90.00 is below the minimum bid of 100.00");
    assert_eq!(app.max_input.as_deref(), Some("90"), "kept, to be fixed");
    key(&mut app, KeyCode::Esc);

    // The leader raising a max that is still below the minimum next bid: the bid is the max.
    app.on_net(placed(2, "alice", "100.00", "102.50", "2026-11-26T10:02:13Z"));
    app.on_net(frame(ServerFrame::BidAccepted(BidAccepted {
        your_max: Some(amount("100.50")),
        ..accepted(2, "100.00")
    })));
    key(&mut app, KeyCode::Char('x'));
    type_text(&mut app, "101");
    let commands = key(&mut app, KeyCode::Enter);
    assert_eq!(
        commands,
        vec![auction_tui::event::Command::Bid {
            amount: amount("101"),
            max: Some(amount("101")),
            bid_id: "tui-test-1".into()
        }]
    );
}
