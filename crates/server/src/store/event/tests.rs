//! The event format's unit tests: what the scripts write, both log versions, live notices and
//! stored outcomes.

use super::*;

fn id(text: &str) -> AuctionId {
    AuctionId::parse(text).unwrap()
}

fn bid() -> Event {
    Event::Bid(Bid {
        auction_id: id("a-1"),
        seq: 7,
        bid_id: BidId::parse("b-1").unwrap(),
        bidder: UserId::parse("alice").unwrap(),
        amount: Amount::from_cents(1_000_000_000_001).unwrap(),
        bid_count: 6,
        placed_us: 1_790_000_000_123_456,
        end_ms: 1_790_000_030_123,
        prev_end_ms: 1_790_000_020_000,
    })
}

#[test]
fn decodes_what_the_scripts_write() {
    // As cjson prints it: any key order, every integer a string.
    let text = r#"{"prev_end_ms":"1790000020000","amount":"1000000000001","type":"bid","seq":"7",
        "bidder":"alice","bid_id":"b-1","auction_id":"a-1","bid_count":"6",
        "placed_us":"1790000000123456","end_ms":"1790000030123"}"#;
    assert_eq!(Event::decode(text).unwrap(), bid());
    assert_eq!(Event::decode(&bid().encode()).unwrap(), bid());
    let ended = r#"{"type":"ended","auction_id":"a-1","seq":"3","bid_count":"0","end_ms":"5"}"#;
    let Event::Ended(ended) = Event::decode(ended).unwrap() else { panic!("not ended") };
    assert_eq!((ended.winner, ended.final_price), (None, None));
}

#[test]
fn refuses_what_is_not_an_event() {
    for bad in [
        r#"{"type":"bid","auction_id":"a-1"}"#,
        r#"{"type":"started","auction_id":"a:1","seq":"1","end_ms":"5"}"#,
        r#"{"type":"started","auction_id":"a-1","seq":"-1","end_ms":"5"}"#,
        r#"{"type":"launched","auction_id":"a-1","seq":"1"}"#,
        "not json",
    ] {
        assert!(Event::decode(bad).is_err(), "{bad}");
    }
}

#[test]
fn reads_both_log_versions_alike() {
    let v2: HashMap<String, String> =
        [("v".to_owned(), "2".to_owned()), ("event".to_owned(), bid().encode())].into_iter().collect();
    assert_eq!(Event::from_log_fields(&v2).unwrap(), bid());
    let v1 = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    };
    let old_bid = v1(&[
        ("type", "bid"),
        ("auction_id", "a-1"),
        ("bid_id", "b-1"),
        ("bidder", "alice"),
        ("amount", "1000000000001"),
        ("seq", "7"),
        ("bid_count", "6"),
        ("placed_us", "1790000000123456"),
        ("end_ms", "1790000030123"),
        ("prev_end_ms", "1790000020000"),
    ]);
    assert_eq!(Event::from_log_fields(&old_bid).unwrap(), bid());
    let old_created = v1(&[
        ("type", "created"),
        ("auction_id", "a-1"),
        ("title", "Lamp"),
        ("start_ms", "1"),
        ("end_ms", "2"),
        ("starting_bid", "100"),
        ("ext_window_s", "30"),
        ("ext_s", "15"),
        ("created_ms", "1"),
    ]);
    let Event::Created(created) = Event::from_log_fields(&old_created).unwrap() else { panic!("not created") };
    assert_eq!((created.seq, created.extension_s, created.title.as_str()), (0, 15, "Lamp"));
    let old_ended = v1(&[
        ("type", "ended"),
        ("auction_id", "a-1"),
        ("seq", "9"),
        ("winner", ""),
        ("final_price", ""),
        ("bid_count", "0"),
        ("end_ms", "2"),
    ]);
    assert!(matches!(Event::from_log_fields(&old_ended).unwrap(), Event::Ended(Ended { winner: None, .. })));
    assert_eq!(Event::from_log_fields(&v1(&[("v", "3"), ("event", "{}")])), Err(LogEntryError::Newer("3".into())));
    assert!(matches!(Event::from_log_fields(&v1(&[("v", "x")])), Err(LogEntryError::Corrupt(_))));
    assert!(matches!(Event::from_log_fields(&v1(&[("v", "2"), ("event", "{}")])), Err(LogEntryError::Corrupt(_))));
}

#[test]
fn live_messages_and_verdicts() {
    assert_eq!(Live::decode(&bid().encode()).unwrap(), Live::Event(bid()));
    assert_eq!(Live::decode(r#"{"type":"rules"}"#).unwrap(), Live::Rules);
    assert_eq!(Live::decode(&Live::Deadline.encode()).unwrap(), Live::Deadline);
    assert!(Live::decode(r#"{"type":"gossip"}"#).is_err());
    let Event::Bid(accepted) = bid() else { unreachable!() };
    let verdict: Verdict = serde_json::from_str(&bid().encode()).unwrap();
    assert_eq!(verdict, Verdict::Bid(accepted));
    let rejected: Verdict =
        serde_json::from_str(r#"{"type":"rejected","reason":"bid_too_low","current":"500","min_next":"525"}"#).unwrap();
    assert_eq!(
        rejected,
        Verdict::Rejected {
            reason: RejectReason::BidTooLow,
            current: Amount::from_cents(500),
            min_next: Amount::from_cents(525)
        }
    );
    let maxed: Verdict =
        serde_json::from_str(r#"{"type":"rejected","reason":"max_bid_reached","current":"10000000000000"}"#).unwrap();
    assert_eq!(
        maxed,
        Verdict::Rejected { reason: RejectReason::MaxBidReached, current: Some(Amount::MAX), min_next: None }
    );
    let stale: Verdict = serde_json::from_str(r#"{"type":"stale_rules","rules_v":"1795687200000001"}"#).unwrap();
    assert_eq!(stale, Verdict::StaleRules { rules_v: 1_795_687_200_000_001 });
    let recent: RecentEntry = serde_json::from_str(&bid().encode()).unwrap();
    assert_eq!((recent.seq, recent.amount.cents()), (7, 1_000_000_000_001));
}
