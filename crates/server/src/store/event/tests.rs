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
        auto: false,
        placed_by: None,
        reserve_met: None,
        proxy: None,
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
    assert_eq!(Event::from_log_fields(&v1(&[("v", "4"), ("event", "{}")])), Err(LogEntryError::Newer("4".into())));
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

fn fields(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

/// Version 3: a price a max set names who leads and who bid; a bid's max comes beside the event,
/// never in it, and is attached to the event read from the log.
#[test]
fn reads_version_3_with_the_max_beside_the_event() {
    let beaten = r#"{"type":"bid","auction_id":"a-1","seq":"4","bid_id":"b-9","bidder":"alice","amount":"2050",
        "bid_count":"3","placed_us":"1790000000123456","end_ms":"1790000030123","prev_end_ms":"1790000030123",
        "auto":"1","placed_by":"bob","reserve_met":"0"}"#;
    let Event::Bid(bid) = Event::from_log_fields(&fields(&[("v", "3"), ("event", beaten)])).unwrap() else {
        panic!("not a bid")
    };
    assert!(bid.auto);
    assert_eq!((bid.bidder.as_str(), bid.placed_by().as_str()), ("alice", "bob"));
    assert_eq!((bid.reserve_met, bid.proxy), (Some(false), None));

    let proxy = r#"{"bidder":"bob","bid_id":"b-9","amount":"2000","max":"432109","placed_us":"1790000000123456"}"#;
    let Event::Bid(with_max) =
        Event::from_log_fields(&fields(&[("v", "3"), ("event", beaten), ("proxy", proxy)])).unwrap()
    else {
        panic!("not a bid")
    };
    let max = with_max.proxy.as_ref().expect("the max").max;
    assert_eq!(max, Amount::from_cents(432_109).unwrap());
    // Neither the event's text nor its debug form shows the max.
    assert!(!Event::Bid(with_max.clone()).encode().contains("432109"));
    assert!(!format!("{with_max:?}").contains("432109"), "{with_max:?}");

    let raised = r#"{"type":"max_raised","auction_id":"a-1","seq":"4","bidder":"alice","bid_id":"r-1",
        "placed_us":"1790000000123999"}"#;
    let event = Event::from_log_fields(&fields(&[("v", "3"), ("event", raised), ("proxy", proxy)])).unwrap();
    assert_eq!((event.kind(), event.seq(), event.is_final()), ("max_raised", 4, false));
    assert!(matches!(event, Event::MaxRaised(MaxRaised { proxy: Some(_), .. })));

    // A proxy field beside an event that cannot have one, or unreadable, is corrupt; its text (a
    // max) is not in the error.
    let started = r#"{"type":"started","auction_id":"a-1","seq":"1","end_ms":"5"}"#;
    assert!(matches!(
        Event::from_log_fields(&fields(&[("v", "3"), ("event", started), ("proxy", proxy)])),
        Err(LogEntryError::Corrupt(_))
    ));
    let bad = Event::from_log_fields(&fields(&[("v", "3"), ("event", raised), ("proxy", "{\"max\":\"987654\"}")]));
    assert!(matches!(&bad, Err(LogEntryError::Corrupt(e)) if !e.contains("987654")), "{bad:?}");
}

#[test]
fn the_reserve_and_buy_it_now_fields() {
    let created = r#"{"type":"created","auction_id":"a-1","seq":"0","title":"Lamp","start_ms":"1","end_ms":"2",
        "starting_bid":"100","ext_window_s":"30","ext_s":"30","created_ms":"1","reserve":"5000","buy_now":"9000"}"#;
    let Event::Created(created) = Event::decode(created).unwrap() else { panic!("not created") };
    assert_eq!((created.reserve.map(Amount::cents), created.buy_now.map(Amount::cents)), (Some(5000), Some(9000)));
    let ended = r#"{"type":"ended","auction_id":"a-1","seq":"3","bid_count":"2","end_ms":"5","reserve_met":"0"}"#;
    let Event::Ended(ended) = Event::decode(ended).unwrap() else { panic!("not ended") };
    assert_eq!((ended.winner, ended.reserve_met, ended.bought_now), (None, Some(false), false));
    let bought = r#"{"type":"ended","auction_id":"a-1","seq":"3","bid_count":"1","end_ms":"5","winner":"bob",
        "final_price":"9000","bought_now":"1"}"#;
    let Event::Ended(bought) = Event::decode(bought).unwrap() else { panic!("not ended") };
    assert!(bought.bought_now);
    // What the decoder writes reads back the same, flags as "1"/"0".
    let text = Event::Ended(bought.clone()).encode();
    assert!(text.contains(r#""bought_now":"1""#), "{text}");
    assert_eq!(Event::decode(&text).unwrap(), Event::Ended(bought));
    assert!(
        Event::decode(
            r#"{"type":"ended","auction_id":"a-1","seq":"3","bid_count":"2","end_ms":"5","reserve_met":"yes"}"#
        )
        .is_err()
    );
}
