//! `--reconnect` and `--accepted-out` against a stand-in bidding server that keeps every bid's
//! outcome under its `bid_id`, as the real one does, and answers some bids with an `error` frame
//! (as the real one does when no replica confirms a bid in time) or not at all (it drops the
//! connection): each such bid must be sent again with the same `bid_id` and amount until it has a
//! certain answer, and be written to the file exactly once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use auction_proto::Amount;
use auction_proto::ws::{BidAccepted, ErrorFrame, ServerFrame};

mod stand_in;

/// What the stand-in did with each bid id: the amounts it was sent with, attempt by attempt, and
/// the outcome it stored (every bid is accepted, at the seq it came in).
#[derive(Default)]
struct Books {
    attempts: BTreeMap<String, Vec<Amount>>,
    stored: BTreeMap<String, BidAccepted>,
    /// Attempts answered with an `error` frame, or with nothing (connection dropped).
    unanswered: u64,
}

/// How the stand-in answers the first attempt of the `n`th new bid id. Only early bids (about the
/// first second of the run) are left in doubt, so that each has the time to be settled before
/// the end.
fn first_answer(n: u64) -> First {
    match n {
        7 | 23 | 61 => First::Drop,
        _ if n.is_multiple_of(5) && n <= 100 => First::Error,
        _ => First::Answer,
    }
}

enum First {
    Answer,
    /// Stores the bid but answers `error` `unavailable`.
    Error,
    /// Stores the bid and drops the connection without an answer.
    Drop,
}

/// Serves until the test ends; each accepted bid is at once outbid by a rival, so bidders keep
/// bidding.
async fn books_stand_in(books: Arc<Mutex<Books>>) -> String {
    stand_in::listen(move |stream| serve(stream, books.clone())).await
}

async fn serve(stream: tokio::net::TcpStream, books: Arc<Mutex<Books>>) {
    let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else { return };
    let min_next = books.lock().unwrap().stored.values().map(|a| a.amount.cents() + 200).max().unwrap_or(100);
    if !stand_in::send(&mut ws, &[stand_in::snapshot(Amount::from_cents(min_next).unwrap())]).await {
        return;
    }
    while let Some(bid) = stand_in::next_bid(&mut ws).await {
        let (bid_id, amount) = (bid.bid_id.clone().unwrap(), bid.amount.0.clone().unwrap());
        let (first, accepted) = {
            let mut books = books.lock().unwrap();
            books.attempts.entry(bid_id.to_string()).or_default().push(amount);
            let seq = books.stored.len() as u64 + 1;
            let known = books.stored.contains_key(bid_id.as_str());
            let stored = books.stored.entry(bid_id.to_string()).or_insert_with(|| stand_in::accepted(&bid, seq));
            let accepted = stored.clone();
            let first = if known { First::Answer } else { first_answer(seq) };
            if !matches!(first, First::Answer) {
                books.unanswered += 1;
            }
            (first, accepted)
        };
        let reply = match first {
            First::Drop => return,
            First::Error => ServerFrame::Error(ErrorFrame {
                code: "unavailable".into(),
                message: "no replica confirmed the bid in time; retry with the same bid_id".into(),
            }),
            First::Answer => ServerFrame::BidAccepted(accepted.clone()),
        };
        if !stand_in::send(&mut ws, &[reply, stand_in::outbid(&accepted)]).await {
            return;
        }
    }
}

/// With `--reconnect`, every bid answered with an `error` frame or not at all is sent again with
/// the same `bid_id` and amount until its stored outcome comes back, and the `--accepted-out`
/// file holds each stored bid once, with the seq it was stored at.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bids_without_a_certain_answer_are_resent_with_their_bid_id_until_settled() {
    let books = Arc::new(Mutex::new(Books::default()));
    let url = books_stand_in(books.clone()).await;
    let out = std::env::temp_dir().join(format!("loadgen-retry-{}.txt", std::process::id()));
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_auction-loadgen"))
        .args(["--ws-url", &url, "--auction-id", "stand-in", "--bidders", "4", "--rate", "100"])
        .args(["--warmup", "300ms", "--duration", "2s", "--timeout", "2s", "--output", "json", "--reconnect"])
        .arg("--accepted-out")
        .arg(&out)
        .output()
        .await
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let text = std::fs::read_to_string(&out).unwrap();
    let _ = std::fs::remove_file(&out);
    let books = books.lock().unwrap();
    let n = |k: &str| report[k].as_u64().unwrap();

    assert!(books.unanswered >= 5, "the stand-in left too few bids in doubt to show anything: {report}");
    for (bid_id, amounts) in &books.attempts {
        assert!(amounts.iter().all(|a| *a == amounts[0]), "{bid_id} was resent with another amount: {amounts:?}");
    }
    let retried = books.attempts.values().filter(|a| a.len() > 1).count() as u64;
    assert_eq!(retried, books.unanswered, "each bid left without an answer, and no other, is sent again");
    assert_eq!(n("unresolved"), 0, "{report}");
    assert!(n("reconnects") >= 3, "a dropped connection is made again: {report}");
    // Every unanswered attempt, the warm-up's aside, is an error; every bid was accepted.
    assert!(n("errors") >= 1 && n("errors") <= books.unanswered, "{report}");
    assert_eq!(n("accepted") + n("rejected_total") + n("errors"), n("attempted"), "{report}");
    assert_eq!(n("rejected_total"), 0, "{report}");

    let written: BTreeMap<String, (i64, u64)> = text
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            assert_eq!(fields.len(), 5, "{line:?}");
            assert_eq!(fields[0], "stand-in");
            (fields[1].to_owned(), (fields[2].parse().unwrap(), fields[3].parse().unwrap()))
        })
        .collect();
    assert_eq!(written.len(), text.lines().count(), "a bid written twice");
    assert_eq!(written.len() as u64, n("accepted") + n("accepted_warmup"), "{report}");
    let stored: BTreeMap<String, (i64, u64)> =
        books.stored.iter().map(|(id, a)| (id.clone(), (a.amount.cents(), a.seq))).collect();
    assert_eq!(written, stored, "the file is not the stand-in's stored bids");
}
