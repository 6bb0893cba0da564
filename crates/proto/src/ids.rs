//! Identifiers that clients send (auction, user and bid ids) and the one rule that keeps them safe.
//!
//! Ids end up inside Redis keys, pub/sub payloads and log lines, so they are restricted to a short
//! run of characters that can never act as a separator or an escape: ASCII letters, digits and
//! `_ . @ -`, at most 64 bytes.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

/// The longest id accepted anywhere.
pub const MAX_ID_LEN: usize = 64;

/// Why a text is not a valid id. `kind` names the id ("user_id", "bid_id", ...).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("{kind} is empty")]
    Empty { kind: &'static str },
    #[error("{kind} is {len} bytes long; the limit is {MAX_ID_LEN}")]
    TooLong { kind: &'static str, len: usize },
    #[error("{kind} contains {found:?}; only letters, digits and _ . @ - are allowed")]
    BadCharacter { kind: &'static str, found: char },
}

/// Checks `text` against the id rule, naming it `kind` in the error.
pub fn validate_id(kind: &'static str, text: &str) -> Result<(), IdError> {
    if text.is_empty() {
        return Err(IdError::Empty { kind });
    }
    if text.len() > MAX_ID_LEN {
        return Err(IdError::TooLong { kind, len: text.len() });
    }
    match text.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '@' | '-'))) {
        Some(found) => Err(IdError::BadCharacter { kind, found }),
        None => Ok(()),
    }
}

/// The schema of every id: the rule of [`validate_id`] as a pattern.
#[cfg(feature = "openapi")]
fn id_schema(kind: &str) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .description(Some(format!("{kind}: 1 to {MAX_ID_LEN} ASCII letters, digits and _ . @ -")))
        .min_length(Some(1))
        .max_length(Some(MAX_ID_LEN))
        .pattern(Some(format!("^[A-Za-z0-9_.@-]{{1,{MAX_ID_LEN}}}$")))
        .into()
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Validates `text` as this kind of id.
            pub fn parse(text: &str) -> Result<Self, IdError> {
                validate_id($kind, text).map(|()| Self(text.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                id_schema($kind)
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::ToSchema for $name {}

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                Self::parse(&text).map_err(serde::de::Error::custom)
            }
        }
    };
}

id_type!(
    /// An auction's id, assigned by the auction service.
    AuctionId,
    "auction_id"
);
id_type!(
    /// A bidder's id.
    UserId,
    "user_id"
);
id_type!(
    /// A bid's id: chosen by the client to make retries idempotent, or assigned by the server.
    BidId,
    "bid_id"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_ids() {
        for ok in ["alice", "a", "bob.smith@example.com", "user_42-x", &"x".repeat(64)] {
            assert!(UserId::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_separators_quotes_controls_and_long_ids() {
        assert_eq!(UserId::parse(""), Err(IdError::Empty { kind: "user_id" }));
        assert_eq!(UserId::parse(&"x".repeat(4096)), Err(IdError::TooLong { kind: "user_id", len: 4096 }));
        for (bad, found) in [("a:b", ':'), ("a\"b", '"'), ("a\nb", '\n'), ("a b", ' '), ("a{b", '{'), ("é", 'é')] {
            assert_eq!(UserId::parse(bad), Err(IdError::BadCharacter { kind: "user_id", found }), "{bad:?}");
        }
    }

    #[test]
    fn deserialize_validates() {
        assert!(serde_json::from_str::<BidId>("\"b-1\"").is_ok());
        let err = serde_json::from_str::<BidId>("\"b:1\"").unwrap_err().to_string();
        assert!(err.contains("bid_id contains ':'"), "{err}");
    }
}
