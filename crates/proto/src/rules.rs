//! The bid increment rules: a table of price bands, each with the smallest raise allowed in it.
//!
//! The table is stored in Redis under `bid_validation_rules`, edited through `PUT /api/v1/rules`,
//! and applied by the bid script; the same code here computes `min_next_bid` for snapshots.

use serde::{Deserialize, Serialize};

use crate::amount::{Amount, non_negative};

/// The most bands a table may have: enough for any real schedule, small enough to pass per bid.
pub const MAX_BANDS: usize = 100;

/// One band: from `from` (inclusive) up to the next band's `from`, bids rise by at least `increment`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct IncrementBand {
    #[serde(with = "non_negative")]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::amount::non_negative_schema))]
    pub from: i64,
    /// The table is a request body too (`PUT /api/v1/rules`), so its amounts take the request form.
    #[cfg_attr(feature = "openapi", schema(value_type = crate::amount::AmountInput))]
    pub increment: Amount,
}

/// The increment table, bands in ascending order of `from`, the first starting at zero.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BidRules {
    /// 1 to 100 bands; the first from "0.00", each next from higher.
    #[cfg_attr(feature = "openapi", schema(schema_with = bands_schema))]
    pub increments: Vec<IncrementBand>,
}

/// The increment list's schema: its length limits come from [`MAX_BANDS`].
#[cfg(feature = "openapi")]
fn bands_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    use utoipa::ToSchema;
    utoipa::openapi::schema::ArrayBuilder::new()
        .items(utoipa::openapi::Ref::from_schema_name(IncrementBand::name()))
        .min_items(Some(1))
        .max_items(Some(MAX_BANDS))
        .into()
}

/// Why a rules table is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RulesError {
    #[error("increments is empty; at least one band is needed")]
    Empty,
    #[error("increments has {0} bands; the limit is {MAX_BANDS}")]
    TooMany(usize),
    #[error("increments[0].from must be \"0.00\" so that every price has a band")]
    FirstNotZero,
    #[error("increments[{0}].from must be above increments[{prev}].from", prev = .0 - 1)]
    NotAscending(usize),
}

impl Default for BidRules {
    /// eBay-like bands: 0.05 under 1, 0.25 under 5, ... 100 from 5000 up.
    fn default() -> Self {
        const BANDS: [(i64, i64); 10] = [
            (0, 5),
            (100, 25),
            (500, 50),
            (2_500, 100),
            (10_000, 250),
            (25_000, 500),
            (50_000, 1_000),
            (100_000, 2_500),
            (250_000, 5_000),
            (500_000, 10_000),
        ];
        let increments = BANDS
            .iter()
            .filter_map(|&(from, inc)| Some(IncrementBand { from, increment: Amount::from_cents(inc)? }))
            .collect();
        BidRules { increments }
    }
}

impl BidRules {
    /// Checks the table's shape.
    pub fn validate(&self) -> Result<(), RulesError> {
        match self.increments.len() {
            0 => return Err(RulesError::Empty),
            n if n > MAX_BANDS => return Err(RulesError::TooMany(n)),
            _ => {}
        }
        if self.increments[0].from != 0 {
            return Err(RulesError::FirstNotZero);
        }
        for (i, pair) in self.increments.windows(2).enumerate() {
            if pair[1].from <= pair[0].from {
                return Err(RulesError::NotAscending(i + 1));
            }
        }
        Ok(())
    }

    /// The increment in force at `price`: that of the last band starting at or below it.
    pub fn increment_at(&self, price: Amount) -> Amount {
        self.increments
            .iter()
            .take_while(|band| band.from <= price.cents())
            .last()
            .or(self.increments.first())
            .map(|band| band.increment)
            .unwrap_or(Amount::from_cents(1).unwrap_or(price))
    }

    /// The smallest acceptable next bid: the starting bid before the first bid, else the current bid
    /// plus the increment at it (capped at [`Amount::MAX`]).
    pub fn min_next_bid(&self, starting_bid: Amount, current_bid: Option<Amount>) -> Amount {
        match current_bid {
            None => starting_bid,
            Some(current) => {
                let next = current.cents().saturating_add(self.increment_at(current).cents());
                Amount::from_cents(next.min(Amount::MAX.cents())).unwrap_or(Amount::MAX)
            }
        }
    }

    /// The smallest acceptable next bid when no bid may be above `max` (`MAX_BID`): the
    /// [`min_next_bid`](BidRules::min_next_bid), but at most `max`, so the last raise, to `max`
    /// itself, may be smaller than the increment. `None` once no bid can be placed: the current bid
    /// is `max` already (or above it, or the starting bid is, under a lower `max` than the one they
    /// were placed under). The bid script applies the same rule.
    pub fn min_next_bid_up_to(&self, starting_bid: Amount, current_bid: Option<Amount>, max: Amount) -> Option<Amount> {
        let next = self.min_next_bid(starting_bid, current_bid);
        let next = match current_bid {
            Some(current) if next > max => max.max(current),
            _ => next,
        };
        (next <= max && current_bid.is_none_or(|current| next > current)).then_some(next)
    }

    /// What a snapshot or a `bid_placed` shows as `min_next_bid` when no bid may be above `max`:
    /// [`min_next_bid_up_to`](BidRules::min_next_bid_up_to), or `max` itself once no bid can be
    /// placed (the current bid is then `max`): never a price above the maximum.
    pub fn shown_min_next_bid(&self, starting_bid: Amount, current_bid: Option<Amount>, max: Amount) -> Amount {
        self.min_next_bid_up_to(starting_bid, current_bid, max).unwrap_or(max)
    }

    /// The table in the compact form the bid script takes: `from:increment` pairs in cents, joined
    /// by commas, in ascending order.
    pub fn to_script_arg(&self) -> String {
        let parts: Vec<String> =
            self.increments.iter().map(|b| format!("{}:{}", b.from, b.increment.cents())).collect();
        parts.join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn amount(text: &str) -> Amount {
        Amount::parse(text).unwrap()
    }

    #[test]
    fn default_bands_match_the_design() {
        let rules = BidRules::default();
        assert_eq!(rules.validate(), Ok(()));
        assert_eq!(rules.increment_at(amount("0.50")), amount("0.05"));
        assert_eq!(rules.increment_at(amount("1.00")), amount("0.25"));
        assert_eq!(rules.increment_at(amount("24.99")), amount("0.50"));
        assert_eq!(rules.increment_at(amount("25")), amount("1"));
        assert_eq!(rules.increment_at(amount("100")), amount("2.50"));
        assert_eq!(rules.increment_at(amount("4999.99")), amount("50"));
        assert_eq!(rules.increment_at(amount("5000")), amount("100"));
        assert_eq!(rules.increment_at(amount("1000000")), amount("100"));
    }

    #[test]
    fn min_next_bid_is_starting_bid_then_current_plus_increment() {
        let rules = BidRules::default();
        assert_eq!(rules.min_next_bid(amount("100"), None), amount("100"));
        assert_eq!(rules.min_next_bid(amount("100"), Some(amount("99.99"))), amount("100.99"));
        assert_eq!(rules.min_next_bid(amount("100"), Some(amount("100"))), amount("102.50"));
        assert_eq!(rules.min_next_bid(amount("1"), Some(Amount::MAX)), Amount::MAX);
    }

    #[test]
    fn min_next_bid_up_to_a_maximum_caps_the_last_raise_then_stops() {
        let rules = BidRules::default();
        let max = amount("100");
        assert_eq!(rules.min_next_bid_up_to(amount("90"), None, max), Some(amount("90")));
        assert_eq!(rules.min_next_bid_up_to(amount("90"), Some(amount("98")), max), Some(amount("99")));
        // 99.50 + 1.00 would be 100.50: the last raise is to the maximum itself.
        assert_eq!(rules.min_next_bid_up_to(amount("90"), Some(amount("99.50")), max), Some(max));
        assert_eq!(rules.min_next_bid_up_to(amount("90"), Some(max), max), None);
        assert_eq!(rules.min_next_bid_up_to(amount("90"), Some(amount("150")), max), None);
        assert_eq!(rules.min_next_bid_up_to(amount("150"), None, max), None);
        assert_eq!(rules.min_next_bid_up_to(amount("1"), Some(Amount::MAX), Amount::MAX), None);
        assert_eq!(rules.shown_min_next_bid(amount("90"), Some(amount("99.50")), max), max);
        assert_eq!(rules.shown_min_next_bid(amount("90"), Some(max), max), max);
        assert_eq!(rules.shown_min_next_bid(amount("90"), Some(amount("98")), max), amount("99"));
    }

    #[test]
    fn validation_names_the_problem() {
        let band = |from, inc| IncrementBand { from, increment: Amount::from_cents(inc).unwrap() };
        assert_eq!(BidRules { increments: vec![] }.validate(), Err(RulesError::Empty));
        assert_eq!(BidRules { increments: vec![band(5, 1)] }.validate(), Err(RulesError::FirstNotZero));
        let err = BidRules { increments: vec![band(0, 1), band(10, 1), band(10, 2)] }.validate();
        assert_eq!(err, Err(RulesError::NotAscending(2)));
        assert_eq!(err.unwrap_err().to_string(), "increments[2].from must be above increments[1].from");
    }

    #[test]
    fn json_shape() {
        let json = r#"{"increments":[{"from":"0.00","increment":"0.05"},{"from":"1.00","increment":"0.25"}]}"#;
        let rules: BidRules = serde_json::from_str(json).unwrap();
        assert_eq!(rules.increments[1].from, 100);
        assert_eq!(serde_json::to_string(&rules).unwrap(), json);
        assert_eq!(rules.to_script_arg(), "0:5,100:25");
        assert!(serde_json::from_str::<BidRules>(r#"{"increments":[{"from":"-1","increment":"1"}]}"#).is_err());
        assert!(serde_json::from_str::<BidRules>(r#"{"increments":[],"extra":1}"#).is_err());
    }
}
