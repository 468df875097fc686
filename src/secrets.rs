//! Secrets the server hands out (Bearer tokens, session tokens, nonces): generation, the SHA-256
//! digest that is all the database keeps, and constant-time comparison of digests.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A URL-safe random secret with 256 bits of entropy, e.g. for Bearer and session tokens.
pub fn generate_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A nonce in the shape Layer used: 40 hex characters (160 bits).
pub fn generate_nonce() -> String {
    let mut bytes = [0u8; 20];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Lower-case hex SHA-256: how secrets are stored and looked up.
pub fn sha256_hex(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Compares two digests without an early exit on the first differing byte.
pub fn digests_match(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// A SHA-256 hex digest given by an operator (configuration), normalised; `None` if malformed.
pub fn parse_sha256_hex(value: &str) -> Option<String> {
    let value = value.trim().to_ascii_lowercase();
    (value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit())).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_url_safe_and_distinct() {
        let a = generate_token();
        assert_eq!(a.len(), 43);
        assert!(a
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_ne!(a, generate_token());
        assert_eq!(generate_nonce().len(), 40);
    }

    #[test]
    fn digests() {
        let d = sha256_hex("test");
        assert_eq!(
            d,
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
        );
        assert!(digests_match(&d, &sha256_hex("test")));
        assert!(!digests_match(&d, &sha256_hex("tesT")));
        assert!(!digests_match(&d, ""));
        assert_eq!(parse_sha256_hex(&d.to_uppercase()), Some(d));
        assert_eq!(parse_sha256_hex("abc"), None);
    }
}
