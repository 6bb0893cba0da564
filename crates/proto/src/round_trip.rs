//! Every frame and body against literal JSON: what outside clients read and write must not drift.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::rest::*;
use crate::ws::*;

/// Parses `json` as `T`, serializes it back and compares with the literal, key order aside.
fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(json: &str) -> T {
    let value: T = serde_json::from_str(json).unwrap_or_else(|e| panic!("{json}: {e}"));
    let back: Value = serde_json::to_value(&value).unwrap();
    let literal: Value = serde_json::from_str(json).unwrap();
    assert_eq!(back, literal, "re-encoded differs");
    let again: T = serde_json::from_value(back).unwrap();
    assert_eq!(again, value);
    value
}

#[test]
fn client_frames() {
    let bid = round_trip::<ClientFrame>(r#"{"type":"place_bid","amount":"105.00","bid_id":"b-1"}"#);
    assert!(matches!(bid, ClientFrame::PlaceBid(PlaceBid { bid_id: Some(_), .. })));
    round_trip::<ClientFrame>(r#"{"type":"place_bid","amount":"105.00"}"#);
    let proxy =
        round_trip::<ClientFrame>(r#"{"type":"place_bid","amount":"105.00","max_amount":"150.00","bid_id":"b-2"}"#);
    assert!(matches!(proxy, ClientFrame::PlaceBid(PlaceBid { max_amount: Some(_), .. })));
    round_trip::<ClientFrame>(r#"{"type":"ping"}"#);
    round_trip::<ClientFrame>(r#"{"type":"sync"}"#);
}

#[test]
fn decode_tells_errors_apart() {
    let code = |text: &str| ClientFrame::decode(text).map_err(|e| e.code);
    assert!(matches!(code(r#"{"type":"place_bid","amount":105.5}"#), Ok(ClientFrame::PlaceBid(_))));
    assert_eq!(code("{nope"), Err("malformed_json"));
    assert_eq!(code(""), Err("malformed_json"));
    assert_eq!(code("[1,2]"), Err("invalid_frame"));
    assert_eq!(code(r#"{"amount":"1"}"#), Err("invalid_frame"));
    assert_eq!(code(r#"{"type":7}"#), Err("invalid_frame"));
    assert_eq!(code(r#"{"type":"teleport"}"#), Err("unknown_type"));
    assert_eq!(code(r#"{"type":"place_bid"}"#), Err("invalid_frame"));
    assert_eq!(code(r#"{"type":"place_bid","amount":true}"#), Err("invalid_frame"));
    assert_eq!(code(r#"{"type":"place_bid","amount":"1","bid_id":"a:b"}"#), Err("invalid_frame"));
    assert_eq!(code(r#"{"type":"place_bid","amount":"1","extra":1}"#), Err("invalid_frame"));
    let missing = ClientFrame::decode(r#"{"type":"place_bid"}"#).unwrap_err().message;
    assert!(missing.contains("missing field `amount`"), "{missing}");
    // A bad amount is not a frame error: the bid is rejected with `invalid_amount` instead.
    match ClientFrame::decode(r#"{"type":"place_bid","amount":"abc"}"#) {
        Ok(ClientFrame::PlaceBid(bid)) => assert!(bid.amount.0.is_err()),
        other => panic!("{other:?}"),
    }
}

const T0: &str = "2026-11-26T10:00:00Z";

#[test]
fn snapshot() {
    let json = format!(
        r#"{{"type":"snapshot","auction_id":"a1","status":"active","start_time":"{T0}",
        "end_time":"2026-11-26T10:10:00Z","starting_bid":"100.00","current_bid":"105.00",
        "highest_bidder":"alice","min_next_bid":"107.50","bid_count":2,"seq":3,
        "server_time":"2026-11-26T10:01:00.123456Z",
        "recent_bids":[{{"bidder":"alice","amount":"105.00","seq":3,"placed_at":"2026-11-26T10:00:59.500Z"}}]}}"#
    );
    let frame = round_trip::<ServerFrame>(&json);
    assert_eq!(frame.seq(), Some(3));
    let empty = format!(
        r#"{{"type":"snapshot","auction_id":"a1","status":"scheduled","start_time":"{T0}",
        "end_time":"{T0}","starting_bid":"100.00","current_bid":null,"highest_bidder":null,
        "min_next_bid":"100.00","bid_count":0,"seq":1,"server_time":"{T0}","recent_bids":[]}}"#
    );
    round_trip::<ServerFrame>(&empty);
    let proxy = format!(
        r#"{{"type":"snapshot","auction_id":"a1","status":"active","start_time":"{T0}",
        "end_time":"{T0}","starting_bid":"100.00","current_bid":"105.00","highest_bidder":"alice",
        "min_next_bid":"107.50","bid_count":1,"seq":2,"server_time":"{T0}","recent_bids":[],
        "reserve_met":false,"buy_now_price":"500.00","your_max":"150.00"}}"#
    );
    round_trip::<ServerFrame>(&proxy);
}

#[test]
fn bid_outcomes() {
    round_trip::<ServerFrame>(&format!(
        r#"{{"type":"bid_accepted","auction_id":"a1","bid_id":"b-1","amount":"105.00","seq":4,"end_time":"{T0}","leading":true}}"#
    ));
    // From a server before proxy bids: no `leading`, which then means it leads.
    let older: ServerFrame = serde_json::from_str(&format!(
        r#"{{"type":"bid_accepted","auction_id":"a1","bid_id":"b-1","amount":"105.00","seq":4,"end_time":"{T0}"}}"#
    ))
    .unwrap();
    assert!(matches!(older, ServerFrame::BidAccepted(BidAccepted { leading: true, bought_now: false, .. })));
    round_trip::<ServerFrame>(&format!(
        r#"{{"type":"bid_accepted","auction_id":"a1","bid_id":"b-5","amount":"110.00","seq":5,"end_time":"{T0}",
        "leading":false,"current_bid":"112.50","min_next_bid":"115.00"}}"#
    ));
    round_trip::<ServerFrame>(&format!(
        r#"{{"type":"bid_accepted","auction_id":"a1","bid_id":"b-6","amount":"500.00","seq":6,"end_time":"{T0}",
        "leading":true,"current_bid":"500.00","bought_now":true}}"#
    ));
    round_trip::<ServerFrame>(
        r#"{"type":"bid_rejected","auction_id":"a1","bid_id":"b-2","reason":"bid_too_low",
        "message":"the minimum bid is 107.50","min_next_bid":"107.50","current_bid":"105.00"}"#,
    );
    let rejected = round_trip::<ServerFrame>(
        r#"{"type":"bid_rejected","auction_id":"a1","bid_id":null,"reason":"auction_ended","message":"the auction has ended"}"#,
    );
    assert_eq!(rejected.seq(), None);
    round_trip::<ServerFrame>(
        r#"{"type":"bid_rejected","auction_id":"a1","bid_id":"b-3","reason":"max_bid_reached",
        "message":"the bids have reached the maximum; no higher bid can be placed","current_bid":"100000000000.00"}"#,
    );
    for reason in [
        "bid_too_low",
        "auction_not_started",
        "auction_ended",
        "auction_cancelled",
        "auction_not_found",
        "already_highest_bidder",
        "invalid_amount",
        "rate_limited",
        "unavailable",
        "max_bid_reached",
    ] {
        let parsed: RejectReason = reason.parse().unwrap();
        assert_eq!(parsed.as_str(), reason);
    }
}

#[test]
fn live_events() {
    round_trip::<ServerFrame>(&format!(
        r#"{{"type":"bid_placed","auction_id":"a1","bid_id":"b-1","amount":"105.00","bidder":"alice","seq":4,
        "end_time":"{T0}","bid_count":2,"placed_at":"2026-11-26T09:59:59.000001Z","min_next_bid":"107.50"}}"#
    ));
    round_trip::<ServerFrame>(&format!(
        r#"{{"type":"auction_extended","auction_id":"a1","end_time":"2026-11-26T10:00:30Z","previous_end_time":"{T0}","seq":5}}"#
    ));
    round_trip::<ServerFrame>(&format!(r#"{{"type":"auction_started","auction_id":"a1","seq":1,"end_time":"{T0}"}}"#));
    round_trip::<ServerFrame>(
        r#"{"type":"auction_ended","auction_id":"a1","winner":"alice","final_price":"105.00","seq":6}"#,
    );
    round_trip::<ServerFrame>(r#"{"type":"auction_ended","auction_id":"a1","winner":null,"final_price":null,"seq":2}"#);
    round_trip::<ServerFrame>(&format!(
        r#"{{"type":"bid_placed","auction_id":"a1","bid_id":"c-4","amount":"112.50","bidder":"bob","seq":4,
        "end_time":"{T0}","bid_count":3,"placed_at":"{T0}","min_next_bid":"115.00","auto":true,"placed_by":"carol",
        "reserve_met":false}}"#
    ));
    round_trip::<ServerFrame>(
        r#"{"type":"auction_ended","auction_id":"a1","winner":null,"final_price":null,"seq":7,"reserve_met":false}"#,
    );
    round_trip::<ServerFrame>(
        r#"{"type":"auction_ended","auction_id":"a1","winner":"bob","final_price":"500.00","seq":8,"reserve_met":true,"bought_now":true}"#,
    );
    round_trip::<ServerFrame>(r#"{"type":"auction_cancelled","auction_id":"a1","seq":2}"#);
    round_trip::<ServerFrame>(r#"{"type":"pong"}"#);
    round_trip::<ServerFrame>(r#"{"type":"error","code":"unknown_type","message":"unknown frame type"}"#);
}

#[test]
fn rest_bodies() {
    round_trip::<CreateAuction>(&format!(
        r#"{{"title":"Lamp","start_time":"{T0}","end_time":"2026-11-26T11:00:00Z","starting_bid":"10.00",
        "extension_window_s":30,"extension_s":60}}"#
    ));
    round_trip::<CreateAuction>(&format!(
        r#"{{"start_time":"{T0}","end_time":"2026-11-26T11:00:00Z","starting_bid":"10.00",
        "reserve_price":"100.00","buy_now_price":"150.00"}}"#
    ));
    let minimal: CreateAuction =
        serde_json::from_str(&format!(r#"{{"start_time":"{T0}","end_time":"{T0}","starting_bid":10}}"#)).unwrap();
    assert_eq!(minimal.starting_bid.cents(), 1000);
    let unknown = serde_json::from_str::<CreateAuction>(&format!(
        r#"{{"start_time":"{T0}","end_time":"{T0}","starting_bid":"1","colour":"red"}}"#
    ))
    .unwrap_err();
    assert!(unknown.to_string().contains("unknown field `colour`"));
    round_trip::<Auction>(&format!(
        r#"{{"auction_id":"a1","title":"Lamp","status":"ended","start_time":"{T0}","end_time":"{T0}",
        "starting_bid":"10.00","current_bid":"12.00","highest_bidder":"bob","min_next_bid":"12.50",
        "bid_count":1,"seq":2,"server_time":"{T0}","recent_bids":[],"extension_window_s":30,
        "extension_s":30,"created_at":"{T0}","winner":"bob","final_price":"12.00"}}"#
    ));
    round_trip::<Auction>(&format!(
        r#"{{"auction_id":"a1","title":"Lamp","status":"active","start_time":"{T0}","end_time":"{T0}",
        "starting_bid":"10.00","current_bid":"12.00","highest_bidder":"bob","min_next_bid":"12.50",
        "bid_count":1,"seq":2,"server_time":"{T0}","recent_bids":[],"extension_window_s":30,
        "extension_s":30,"created_at":"{T0}","winner":null,"final_price":null,"reserve_met":false,
        "buy_now_price":"150.00","reserve_price":"100.00"}}"#
    ));
    round_trip::<ExtendRequest>(r#"{"seconds":30}"#);
    round_trip::<ExtendResponse>(&format!(
        r#"{{"auction_id":"a1","end_time":"2026-11-26T10:00:30Z","previous_end_time":"{T0}"}}"#
    ));
    round_trip::<BidsPage>(&format!(
        r#"{{"bids":[{{"bid_id":"b-1","bidder":"bob","amount":"12.00","seq":2,"placed_at":"{T0}"}}],"next_cursor":"2"}}"#
    ));
    round_trip::<LeaderInfo>(r#"{"instance_id":"auction-1","epoch":3,"lease_ms_left":8200}"#);
    round_trip::<LeaderInfo>(
        r#"{"instance_id":null,"epoch":3,"lease_ms_left":0,"answered_by":"auction-2","answered_by_leader":false}"#,
    );
    round_trip::<ErrorBody>(
        r#"{"error":{"code":"invalid_request","message":"starting_bid: must be > 0","field":"starting_bid"}}"#,
    );
    round_trip::<ErrorBody>(r#"{"error":{"code":"not_found","message":"no auction a1"}}"#);
    round_trip::<Health>(
        r#"{"status":"ok","service":"bidding","instance_id":"b1","version":"0.1.0","checks":{"redis":"ok"}}"#,
    );
}
