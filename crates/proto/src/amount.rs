//! Money: a positive decimal with at most two places, carried as an integer count of minor units.
//!
//! On the wire an amount is a JSON string such as `"105.00"`; a JSON number is accepted on input only
//! when it converts exactly. Inside the services and in Redis it is the integer number of cents, so no
//! float ever touches a price.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A positive amount of money in minor units (cents).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Amount(i64);

/// Why a text is not an amount. The messages are shown to users as they are.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("amount is empty")]
    Empty,
    #[error("amount {0:?} is not a decimal number such as \"105.00\"")]
    NotANumber(String),
    #[error("amount {0:?} has more than 2 decimal places")]
    TooPrecise(String),
    #[error("amount {0:?} must be greater than zero")]
    NotPositive(String),
    #[error("amount {0:?} is above the maximum of {max}", max = Amount::MAX)]
    TooLarge(String),
}

impl Amount {
    /// The largest amount any component accepts: 100 billion. Far below 2^53 cents, so the Lua
    /// scripts, whose numbers are doubles, still hold every amount and increment exactly.
    pub const MAX: Amount = Amount(10_000_000_000_000);

    /// An amount from a count of cents; `None` unless `0 < cents <= MAX`.
    pub fn from_cents(cents: i64) -> Option<Amount> {
        (cents > 0 && cents <= Self::MAX.0).then_some(Amount(cents))
    }

    /// The amount in cents.
    pub fn cents(self) -> i64 {
        self.0
    }

    /// Parses a decimal text strictly: digits, optionally a point and one or two more digits.
    /// No sign, exponent, spaces or other forms, so `"1e2"`, `"+5"` and `" 5"` are refused.
    pub fn parse(text: &str) -> Result<Amount, AmountError> {
        let cents = parse_cents(text)?;
        Amount::from_cents(cents).ok_or_else(|| {
            if cents <= 0 { AmountError::NotPositive(text.to_owned()) } else { AmountError::TooLarge(text.to_owned()) }
        })
    }

    /// The amount as a `rust_decimal` with scale 2, for MySQL's `DECIMAL(18,2)`.
    pub fn to_decimal(self) -> Decimal {
        Decimal::new(self.0, 2)
    }

    /// The amount of a `DECIMAL(18,2)` value; `None` if it is not a valid amount.
    pub fn from_decimal(value: Decimal) -> Option<Amount> {
        let scaled = value.checked_mul(Decimal::ONE_HUNDRED)?;
        if !scaled.fract().is_zero() {
            return None;
        }
        Amount::from_cents(i64::try_from(scaled).ok()?)
    }
}

/// Parses `digits[.d[d]]` into cents, allowing zero (callers decide what zero means). Negative
/// numbers are reported as not positive rather than as garbage, since that is what they are.
fn parse_cents(text: &str) -> Result<i64, AmountError> {
    if text.is_empty() {
        return Err(AmountError::Empty);
    }
    let not_a_number = || AmountError::NotANumber(text.to_owned());
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, fraction) = match unsigned.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (unsigned, None),
    };
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return Err(not_a_number());
    }
    let fraction = fraction.unwrap_or("");
    if unsigned.contains('.') && fraction.is_empty() {
        return Err(not_a_number());
    }
    if !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return Err(not_a_number());
    }
    if fraction.len() > 2 {
        return Err(AmountError::TooPrecise(text.to_owned()));
    }
    let too_large = || AmountError::TooLarge(text.to_owned());
    let mut cents: i64 = 0;
    for digit in whole.bytes() {
        cents = cents.checked_mul(10).and_then(|c| c.checked_add(i64::from(digit - b'0'))).ok_or_else(too_large)?;
    }
    let mut fraction_cents = 0;
    for (i, digit) in fraction.bytes().enumerate() {
        fraction_cents += i64::from(digit - b'0') * if i == 0 { 10 } else { 1 };
    }
    let cents = cents.checked_mul(100).and_then(|c| c.checked_add(fraction_cents)).ok_or_else(too_large)?;
    // "-0" too: no amount, not even a zero lower bound, is written with a sign.
    if negative {
        return Err(AmountError::NotPositive(text.to_owned()));
    }
    Ok(cents)
}

impl FromStr for Amount {
    type Err = AmountError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Amount::parse(s)
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02}", self.0 / 100, self.0 % 100)
    }
}

impl Serialize for Amount {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        AmountInput::deserialize(deserializer)?.0.map_err(de::Error::custom)
    }
}

/// An amount as a client sent it, kept even when it is not a valid amount, so that a bid with a
/// bad amount can be answered with `bid_rejected`/`invalid_amount` instead of a frame error.
/// Only a string or a number gets this far; any other JSON type fails to deserialize.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmountInput(pub Result<Amount, AmountError>);

impl<'de> Deserialize<'de> for AmountInput {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(AmountVisitor).map(AmountInput)
    }
}

impl Serialize for AmountInput {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match &self.0 {
            Ok(amount) => amount.serialize(serializer),
            Err(_) => serializer.serialize_str("invalid"),
        }
    }
}

impl From<Amount> for AmountInput {
    fn from(amount: Amount) -> Self {
        AmountInput(Ok(amount))
    }
}

struct AmountVisitor;

impl Visitor<'_> for AmountVisitor {
    type Value = Result<Amount, AmountError>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an amount as a decimal string such as \"105.00\"")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Amount::parse(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Amount::parse(&v.to_string()))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Amount::parse(&v.to_string()))
    }

    /// A JSON number with a fraction arrives as the nearest double. Its shortest round-trip text is
    /// what the client wrote for every number with few enough digits to be a price, so parsing that
    /// text accepts `105.5` and refuses `1.001` and `1e20` (too large) exactly as the string forms.
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        if !v.is_finite() {
            return Ok(Err(AmountError::NotANumber(v.to_string())));
        }
        Ok(Amount::parse(&v.to_string()))
    }
}

/// Serde helpers for a non-negative amount in cents (zero allowed), such as the lower bound of the
/// first increment band.
pub mod non_negative {
    use super::*;

    pub fn parse(text: &str) -> Result<i64, AmountError> {
        let cents = parse_cents(text)?;
        if cents > Amount::MAX.0 {
            return Err(AmountError::TooLarge(text.to_owned()));
        }
        Ok(cents)
    }

    pub fn format(cents: i64) -> String {
        format!("{}.{:02}", cents / 100, cents % 100)
    }

    pub fn serialize<S: Serializer>(cents: &i64, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format(*cents))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse(&text).map_err(de::Error::custom)
    }
}

/// The two schemas of money: what the server writes ([`Amount`]) and what it accepts in a request
/// ([`AmountInput`]), which also takes one decimal place or none, and exact JSON numbers.
#[cfg(feature = "openapi")]
mod schema {
    use std::borrow::Cow;

    use utoipa::openapi::RefOr;
    use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};

    use super::{Amount, AmountInput};

    impl utoipa::PartialSchema for Amount {
        fn schema() -> RefOr<Schema> {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some(format!(
                    "Money as the server writes it: a decimal string with exactly two places, above 0.00 and \
                     at most {}.",
                    Amount::MAX
                )))
                // `Display`: the whole units without leading zeros (at most 12 digits), then the cents.
                .pattern(Some(r"^(0|[1-9][0-9]{0,11})\.[0-9]{2}$"))
                .examples(["105.00"])
                .into()
        }
    }

    impl utoipa::ToSchema for Amount {}

    impl utoipa::PartialSchema for AmountInput {
        fn schema() -> RefOr<Schema> {
            let text = ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(r"^[0-9]+(\.[0-9]{1,2})?$"))
                .examples(["105.00", "105.5", "105"]);
            // A number is taken when its shortest decimal text is a valid amount (see `visit_f64`).
            let number = ObjectBuilder::new()
                .schema_type(Type::Number)
                .exclusive_minimum(Some(0))
                .maximum(Some(Amount::MAX.cents() / 100))
                .examples([105.5]);
            OneOfBuilder::new()
                .item(text)
                .item(number)
                .description(Some(format!(
                    "Money in a request: a decimal string with at most two places (preferred), or a JSON \
                     number with at most two decimal places; above 0.00 and at most {} (or the service's \
                     MAX_BID). Answers always carry the two-place string.",
                    Amount::MAX
                )))
                .into()
        }
    }

    impl utoipa::ToSchema for AmountInput {
        fn name() -> Cow<'static, str> {
            Cow::Borrowed("AmountInput")
        }
    }

    /// A non-negative amount such as a band's lower bound: a decimal string, zero allowed.
    pub fn non_negative() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some("A decimal string with at most two places, 0.00 or more."))
            .pattern(Some(r"^[0-9]+(\.[0-9]{1,2})?$"))
            .examples(["0.00"])
            .into()
    }
}

#[cfg(feature = "openapi")]
pub use schema::non_negative as non_negative_schema;

#[cfg(test)]
mod tests {
    use super::*;

    fn cents(text: &str) -> Result<i64, AmountError> {
        Amount::parse(text).map(Amount::cents)
    }

    #[test]
    fn parses_plain_decimals() {
        assert_eq!(cents("105"), Ok(10500));
        assert_eq!(cents("105.5"), Ok(10550));
        assert_eq!(cents("105.05"), Ok(10505));
        assert_eq!(cents("0.01"), Ok(1));
        assert_eq!(cents("007.10"), Ok(710));
        assert_eq!(cents("100000000000"), Ok(Amount::MAX.cents()));
    }

    #[test]
    fn refuses_everything_else() {
        for bad in ["abc", "1e2", "1e400", "+5", " 5", "5 ", "5.", ".5", "1.2.3", "NaN", "Infinity", "0x10", "1,5"] {
            assert!(matches!(Amount::parse(bad), Err(AmountError::NotANumber(_))), "{bad}");
        }
        assert_eq!(Amount::parse(""), Err(AmountError::Empty));
        assert_eq!(Amount::parse("1.001"), Err(AmountError::TooPrecise("1.001".into())));
        assert_eq!(Amount::parse("0"), Err(AmountError::NotPositive("0".into())));
        assert_eq!(Amount::parse("0.00"), Err(AmountError::NotPositive("0.00".into())));
        assert_eq!(Amount::parse("-1"), Err(AmountError::NotPositive("-1".into())));
        assert_eq!(Amount::parse("100000000000.01"), Err(AmountError::TooLarge("100000000000.01".into())));
        assert!(matches!(Amount::parse("99999999999999999999999"), Err(AmountError::TooLarge(_))));
    }

    #[test]
    fn non_negative_takes_zero_but_no_sign() {
        assert_eq!(non_negative::parse("0"), Ok(0));
        assert_eq!(non_negative::parse("0.00"), Ok(0));
        assert_eq!(non_negative::parse("1.5"), Ok(150));
        for bad in ["-0", "-0.00", "-1", "+1", ""] {
            assert!(non_negative::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn formats_with_two_places() {
        assert_eq!(Amount::parse("105").map(|a| a.to_string()), Ok("105.00".into()));
        assert_eq!(Amount::parse("0.5").map(|a| a.to_string()), Ok("0.50".into()));
    }

    #[test]
    fn json_numbers_only_when_exact() {
        let parse = |json: &str| serde_json::from_str::<AmountInput>(json).map(|a| a.0.map(Amount::cents));
        assert_eq!(parse("105").ok(), Some(Ok(10500)));
        assert_eq!(parse("105.25").ok(), Some(Ok(10525)));
        assert_eq!(parse("\"105.25\"").ok(), Some(Ok(10525)));
        assert!(matches!(parse("1.001"), Ok(Err(AmountError::TooPrecise(_)))));
        assert!(matches!(parse("1e20"), Ok(Err(AmountError::TooLarge(_)))));
        assert!(matches!(parse("-3"), Ok(Err(AmountError::NotPositive(_)))));
        assert!(matches!(parse("0"), Ok(Err(AmountError::NotPositive(_)))));
        // 1e400 overflows a double; serde_json refuses it as a number out of range.
        assert!(parse("1e400").is_err());
        assert!(parse("true").is_err());
        assert!(parse("[1]").is_err());
    }

    #[test]
    fn decimal_round_trip() {
        let amount = Amount::parse("1234.56").unwrap();
        assert_eq!(amount.to_decimal().to_string(), "1234.56");
        assert_eq!(Amount::from_decimal(amount.to_decimal()), Some(amount));
        assert_eq!(Amount::from_decimal(Decimal::new(1, 3)), None);
    }
}
