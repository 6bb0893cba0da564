//! Property tests: parsing money and decoding frames never panic on any input, and what parses
//! formats back to itself.

use proptest::prelude::*;

use crate::amount::{Amount, AmountInput};
use crate::ws::ClientFrame;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn amount_parse_never_panics(text in ".{0,40}") {
        let _ = Amount::parse(&text);
    }

    #[test]
    fn amount_like_text_never_panics(text in "[-+]?[0-9]{0,25}(\\.[0-9]{0,4})?([eE][-+]?[0-9]{1,4})?") {
        let _ = Amount::parse(&text);
        let _ = serde_json::from_str::<AmountInput>(&text);
        let _ = serde_json::from_str::<AmountInput>(&format!("{text:?}"));
    }

    #[test]
    fn every_amount_round_trips(cents in 1i64..=Amount::MAX.cents()) {
        let amount = Amount::from_cents(cents).unwrap();
        let text = amount.to_string();
        prop_assert_eq!(Amount::parse(&text), Ok(amount));
        let json = serde_json::to_string(&amount).unwrap();
        prop_assert_eq!(serde_json::from_str::<Amount>(&json).unwrap(), amount);
        prop_assert_eq!(Amount::from_decimal(amount.to_decimal()), Some(amount));
    }

    #[test]
    fn short_forms_mean_the_same(whole in 0u64..1_000_000_000, fraction in 0u64..100) {
        let long = format!("{whole}.{fraction:02}");
        let parsed = Amount::parse(&long);
        if whole == 0 && fraction == 0 {
            prop_assert!(parsed.is_err());
        } else {
            prop_assert_eq!(parsed.clone().map(|a| a.to_string()), Ok(long));
            if fraction % 10 == 0 {
                prop_assert_eq!(Amount::parse(&format!("{whole}.{}", fraction / 10)), parsed);
            }
        }
    }

    #[test]
    fn frame_decode_never_panics(text in ".{0,200}") {
        let _ = ClientFrame::decode(&text);
    }

    #[test]
    fn json_shaped_frames_never_panic(
        kind in prop_oneof![Just("place_bid".to_owned()), Just("ping".to_owned()), Just("sync".to_owned()), ".{0,10}"],
        amount in prop_oneof![".{0,12}".prop_map(|s| format!("{s:?}")), any::<f64>().prop_map(|f| f.to_string()), any::<i64>().prop_map(|i| i.to_string()), Just("null".to_owned()), Just("[]".to_owned())],
        bid_id in prop_oneof![".{0,70}".prop_map(|s| format!("{s:?}")), Just("1".to_owned())],
    ) {
        let text = format!(r#"{{"type":{kind:?},"amount":{amount},"bid_id":{bid_id}}}"#);
        let _ = ClientFrame::decode(&text);
    }

    #[test]
    fn decoded_frames_round_trip(cents in 1i64..=Amount::MAX.cents(), id in "[A-Za-z0-9_.@-]{1,64}") {
        let text = format!(r#"{{"type":"place_bid","amount":"{}","bid_id":"{id}"}}"#, Amount::from_cents(cents).unwrap());
        let frame = ClientFrame::decode(&text).unwrap();
        prop_assert_eq!(ClientFrame::decode(&frame.encode()).unwrap(), frame);
    }
}
