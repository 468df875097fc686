//! Identity-provider keys: validating the RSA public keys operators register, and the development
//! key pair the server generates so that `dev-token` can mint identity tokens without a provider.

use std::path::{Path, PathBuf};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding,
};
use rsa::traits::PublicKeyParts;
use rsa::{RsaPrivateKey, RsaPublicKey};
use serde_json::{json, Value};
use uuid::Uuid;

/// The `cty` header of Layer identity tokens.
pub const IDENTITY_TOKEN_CTY: &str = "layer-eit;v=1";
const MIN_RSA_BITS: usize = 1024;
const DEV_KEY_BITS: usize = 2048;
const DEV_KEY_FILE: &str = "dev-identity-key.pem";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("not an RSA public key in PEM form (PKCS#1 'RSA PUBLIC KEY' or SPKI 'PUBLIC KEY')")]
    NotRsaPublicKey,
    #[error("RSA key of {0} bits is too short (at least {MIN_RSA_BITS})")]
    TooShort(usize),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("development key: {0}")]
    DevKey(String),
    #[error("signing: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
}

/// Checks an operator-supplied RSA public key and returns it as SPKI PEM (what is stored).
pub fn normalize_public_key(pem: &str) -> Result<String, KeyError> {
    let pem = pem.trim();
    let key = RsaPublicKey::from_public_key_pem(pem)
        .or_else(|_| RsaPublicKey::from_pkcs1_pem(pem))
        .map_err(|_| KeyError::NotRsaPublicKey)?;
    let bits = key.size() * 8;
    if bits < MIN_RSA_BITS {
        return Err(KeyError::TooShort(bits));
    }
    key.to_public_key_pem(LineEnding::LF)
        .map_err(|_| KeyError::NotRsaPublicKey)
}

/// The development key pair, kept as a PKCS#8 PEM file in the data directory.
pub struct DevKey {
    private_pem: String,
    pub public_pem: String,
    pub path: PathBuf,
}

impl DevKey {
    pub fn path_in(data_dir: &Path) -> PathBuf {
        data_dir.join(DEV_KEY_FILE)
    }

    pub fn load(data_dir: &Path) -> Result<Self, KeyError> {
        let path = Self::path_in(data_dir);
        let private_pem = std::fs::read_to_string(&path).map_err(|source| KeyError::Io {
            path: path.clone(),
            source,
        })?;
        let key = RsaPrivateKey::from_pkcs8_pem(&private_pem)
            .map_err(|e| KeyError::DevKey(format!("{}: {e}", path.display())))?;
        let public_pem = RsaPublicKey::from(&key)
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| KeyError::DevKey(e.to_string()))?;
        Ok(DevKey {
            private_pem,
            public_pem,
            path,
        })
    }

    /// Generates a fresh pair and writes it (owner-readable only).
    pub fn create(data_dir: &Path) -> Result<Self, KeyError> {
        let key = RsaPrivateKey::new(&mut rand::rngs::OsRng, DEV_KEY_BITS)
            .map_err(|e| KeyError::DevKey(e.to_string()))?;
        let private_pem = key
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| KeyError::DevKey(e.to_string()))?
            .to_string();
        let path = Self::path_in(data_dir);
        let io = |source| KeyError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(data_dir).map_err(io)?;
        write_private(&path, &private_pem).map_err(io)?;
        Self::load(data_dir)
    }

    /// Signs a Layer identity token (RS256, `cty: layer-eit;v=1`) for `user_id`.
    pub fn mint(&self, claims: &IdentityClaims<'_>) -> Result<String, KeyError> {
        let mut header = Header::new(Algorithm::RS256);
        header.typ = Some("JWT".into());
        header.cty = Some(IDENTITY_TOKEN_CTY.into());
        header.kid = Some(crate::ids::key_uri(claims.key_id));
        let mut body = json!({
            "iss": crate::ids::provider_uri(claims.provider_id),
            "prn": claims.user_id,
            "iat": claims.issued_at,
            "exp": claims.issued_at + claims.ttl_secs,
            "nce": claims.nonce,
        });
        if let (Some(extra), Value::Object(map)) = (claims.profile, &mut body) {
            map.extend(extra.clone());
        }
        let key = EncodingKey::from_rsa_pem(self.private_pem.as_bytes())?;
        Ok(jsonwebtoken::encode(&header, &body, &key)?)
    }
}

pub struct IdentityClaims<'a> {
    pub key_id: Uuid,
    pub provider_id: Uuid,
    pub user_id: &'a str,
    pub nonce: &'a str,
    pub issued_at: i64,
    pub ttl_secs: i64,
    /// Identity profile claims (`display_name`, `avatar_url`, ...).
    pub profile: Option<&'a serde_json::Map<String, Value>>,
}

#[cfg(unix)]
pub(crate) fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents.as_bytes())
}

#[cfg(not(unix))]
pub(crate) fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    std::fs::write(path, contents)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{decode, decode_header, DecodingKey, Validation};

    #[test]
    fn dev_key_mints_tokens_its_public_key_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let key = DevKey::create(dir.path()).unwrap();
        assert!(
            DevKey::create(dir.path()).is_err(),
            "never overwrites an existing key"
        );
        let reloaded = DevKey::load(dir.path()).unwrap();
        assert_eq!(reloaded.public_pem, key.public_pem);
        assert_eq!(
            normalize_public_key(&key.public_pem).unwrap(),
            key.public_pem
        );

        let (kid, iss) = (Uuid::new_v4(), Uuid::new_v4());
        let profile = json!({"display_name": "Alice"});
        let token = key
            .mint(&IdentityClaims {
                key_id: kid,
                provider_id: iss,
                user_id: "alice",
                nonce: "n1",
                issued_at: 1_700_000_000,
                ttl_secs: 600,
                profile: profile.as_object(),
            })
            .unwrap();
        let header = decode_header(&token).unwrap();
        assert_eq!(header.alg, Algorithm::RS256);
        assert_eq!(header.cty.as_deref(), Some(IDENTITY_TOKEN_CTY));
        assert_eq!(header.kid, Some(crate::ids::key_uri(kid)));
        let mut validation = Validation::new(Algorithm::RS256);
        validation.validate_exp = false;
        validation.required_spec_claims.clear();
        let claims = decode::<Value>(
            &token,
            &DecodingKey::from_rsa_pem(key.public_pem.as_bytes()).unwrap(),
            &validation,
        )
        .unwrap()
        .claims;
        assert_eq!(claims["prn"], "alice");
        assert_eq!(claims["nce"], "n1");
        assert_eq!(claims["iss"], crate::ids::provider_uri(iss));
        assert_eq!(claims["exp"], 1_700_000_600);
        assert_eq!(claims["display_name"], "Alice");
    }

    #[test]
    fn rejects_what_is_not_an_rsa_public_key() {
        assert!(matches!(
            normalize_public_key("hello"),
            Err(KeyError::NotRsaPublicKey)
        ));
        assert!(
            normalize_public_key("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----")
                .is_err()
        );
    }
}
