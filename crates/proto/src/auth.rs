//! Bidder tokens: HS256 JWTs whose `sub` is the user id, with an expiry. Minted by operators
//! (`auctionctl token`), verified by the bidding service before a WebSocket upgrade.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::ids::UserId;

/// The token's claims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
}

/// Why a token was refused; the text is safe to show the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid: {0}")]
    Invalid(String),
}

/// Mints a token for `user`, valid for `ttl_s` seconds from `now_s`.
pub fn mint(secret: &[u8], user: &UserId, now_s: u64, ttl_s: u64) -> Result<String, TokenError> {
    let claims = Claims { sub: user.to_string(), exp: now_s.saturating_add(ttl_s) };
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(secret))
        .map_err(|e| TokenError::Invalid(e.to_string()))
}

/// A verified token: who it names, and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bidder {
    pub user: UserId,
    /// Expiry, seconds since the Unix epoch: a connection opened with the token ends then.
    pub exp: u64,
}

/// Verifies a token (HS256 only: `alg: none` and every other algorithm are refused) and returns
/// its user.
pub fn verify(secret: &[u8], token: &str) -> Result<UserId, TokenError> {
    verify_bidder(secret, token).map(|bidder| bidder.user)
}

/// Verifies a token as [`verify`] does and returns its user with its expiry.
pub fn verify_bidder(secret: &[u8], token: &str) -> Result<Bidder, TokenError> {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.leeway = 0;
    validation.set_required_spec_claims(&["exp", "sub"]);
    let data = jsonwebtoken::decode::<Claims>(token, &DecodingKey::from_secret(secret), &validation).map_err(|e| {
        match e.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
            _ => TokenError::Invalid(e.to_string()),
        }
    })?;
    // The library still accepts a token in its `exp` second; a connection opened with it is closed
    // at `exp`, so it is refused from `exp` on, and connect and close agree.
    if data.claims.exp <= jsonwebtoken::get_current_timestamp() {
        return Err(TokenError::Expired);
    }
    let user = UserId::parse(&data.claims.sub).map_err(|e| TokenError::Invalid(e.to_string()))?;
    Ok(Bidder { user, exp: data.claims.exp })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> u64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
    }

    #[test]
    fn mint_and_verify() {
        let alice = UserId::parse("alice").unwrap();
        let token = mint(b"0123456789abcdef0123456789abcdef", &alice, now(), 60).unwrap();
        assert_eq!(verify(b"0123456789abcdef0123456789abcdef", &token), Ok(alice.clone()));
        let bidder = verify_bidder(b"0123456789abcdef0123456789abcdef", &token).unwrap();
        assert_eq!(bidder.user, alice);
        assert!((now() + 59..=now() + 60).contains(&bidder.exp), "exp {} is a minute from now", bidder.exp);
        assert!(matches!(verify(b"another secret, another secret!!", &token), Err(TokenError::Invalid(_))));
        let old = mint(b"0123456789abcdef0123456789abcdef", &alice, now() - 120, 60).unwrap();
        assert_eq!(verify(b"0123456789abcdef0123456789abcdef", &old), Err(TokenError::Expired));
        assert!(verify(b"0123456789abcdef0123456789abcdef", "not.a.token").is_err());
    }

    #[test]
    fn alg_none_is_refused() {
        use base64_free::encode;
        let header = encode(br#"{"alg":"none","typ":"JWT"}"#);
        let claims = encode(format!(r#"{{"sub":"alice","exp":{}}}"#, now() + 60).as_bytes());
        let token = format!("{header}.{claims}.");
        assert!(matches!(verify(b"0123456789abcdef0123456789abcdef", &token), Err(TokenError::Invalid(_))));
    }

    /// URL-safe base64 without padding, enough for building a forged token in a test.
    mod base64_free {
        pub fn encode(bytes: &[u8]) -> String {
            const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
            let mut out = String::new();
            for chunk in bytes.chunks(3) {
                let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
                let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
                for i in 0..=chunk.len() {
                    out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
                }
            }
            out
        }
    }
}
