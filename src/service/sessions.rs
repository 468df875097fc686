//! Logging in with a Layer identity token (client-api.md §2.3-2.4, client-wire-protocol.md §3.2)
//! and logging out.
//!
//! An identity token is a compact JWS the app's own backend signs with a key registered here:
//! `alg` RS256 and nothing else, `cty: layer-eit;v=1`, `kid` naming one of the app's keys, and
//! claims `iss` (that key's provider), `prn` (the user id), `iat`, `exp` and `nce` (a nonce from
//! `POST /nonces`, burnt on first use). Optional profile claims create or update the identity.
//! `verify` is pure (the key and the time are given); `login` adds the store.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::config::AuthSettings;
use crate::error::{ApiError, ApiResult, ErrorKind};
use crate::ids;
use crate::keys::IDENTITY_TOKEN_CTY;
use crate::secrets;
use crate::store::{DynStore, Identity, ProviderKey, Session, Timestamp};

/// Longest identity token accepted (real ones are well under 2 KB).
pub const MAX_IDENTITY_TOKEN_BYTES: usize = 16 * 1024;

/// Why an identity token was refused; the text goes into the 422's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is longer than {MAX_IDENTITY_TOKEN_BYTES} bytes")]
    TooLong,
    #[error("it is not a JWS in compact form (header.claims.signature, base64url JSON)")]
    Malformed,
    #[error("alg must be RS256, not {0:?}")]
    Algorithm(String),
    #[error("typ must be JWT or JWS, not {0:?}")]
    Type(String),
    #[error("cty must be {IDENTITY_TOKEN_CTY:?}")]
    ContentType,
    #[error("kid must name a key as layer:///keys/<uuid> or <uuid>")]
    KeyId,
    #[error("no key with this kid is registered for the app")]
    UnknownKey,
    #[error("the signature does not verify with the key named by kid")]
    Signature,
    #[error("the {0} claim is missing or is not {1}")]
    Claim(&'static str, &'static str),
    #[error("iss does not name the provider the key is registered for")]
    Issuer,
    #[error("the token has expired (exp)")]
    Expired,
    #[error("the token is not valid yet (iat is in the future)")]
    IssuedInFuture,
    #[error("the nonce (nce) was not issued by this server, has expired or was used already")]
    Nonce,
}

impl From<TokenError> for ApiError {
    fn from(err: TokenError) -> Self {
        ApiError::invalid_property(
            "identity_token",
            format!(
                "Invalid identity token: {err}. Check the token against the key registered for \
                 the app (layer-server key list)."
            ),
        )
    }
}

/// The JOSE header fields an identity token must carry. Parsed here rather than by
/// `jsonwebtoken::decode_header`, which cannot represent `alg: none` and so could not say why
/// such a token is refused.
#[derive(Debug, Deserialize)]
struct JoseHeader {
    alg: Option<String>,
    typ: Option<String>,
    cty: Option<String>,
    kid: Option<String>,
}

/// The key id (`kid`) of an identity token whose header is acceptable.
pub fn key_id(token: &str) -> Result<Uuid, TokenError> {
    if token.len() > MAX_IDENTITY_TOKEN_BYTES {
        return Err(TokenError::TooLong);
    }
    let segment = token.split('.').next().ok_or(TokenError::Malformed)?;
    if token.split('.').count() != 3 {
        return Err(TokenError::Malformed);
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(segment.trim_end_matches('='))
        .map_err(|_| TokenError::Malformed)?;
    let header: JoseHeader = serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed)?;
    match header.alg.as_deref() {
        Some("RS256") => {}
        other => return Err(TokenError::Algorithm(other.unwrap_or_default().to_owned())),
    }
    // `typ` is optional in JWS; Layer's samples send JWT or (older) JWS.
    if let Some(typ) = header.typ {
        if !typ.eq_ignore_ascii_case("JWT") && !typ.eq_ignore_ascii_case("JWS") {
            return Err(TokenError::Type(typ));
        }
    }
    let cty = header.cty.ok_or(TokenError::ContentType)?;
    let cty: String = cty.chars().filter(|c| !c.is_whitespace()).collect();
    if !cty.eq_ignore_ascii_case(IDENTITY_TOKEN_CTY) {
        return Err(TokenError::ContentType);
    }
    header
        .kid
        .as_deref()
        .and_then(ids::parse_key_id)
        .ok_or(TokenError::KeyId)
}

/// Profile claims that create or update the user's identity; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Profile {
    pub display_name: Option<String>,
    pub avatar_url: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub phone_number: Option<String>,
    pub email_address: Option<String>,
}

/// A verified identity token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub user_id: String,
    pub nonce: String,
    pub profile: Profile,
}

/// Verifies the signature with `key` (the one `kid` named) and the claims at `now`, allowing
/// `skew_secs` of clock difference with the identity provider.
pub fn verify(
    token: &str,
    key: &ProviderKey,
    now: i64,
    skew_secs: i64,
) -> Result<Verified, TokenError> {
    let decoding_key = DecodingKey::from_rsa_pem(key.public_key_pem.as_bytes())
        .map_err(|_| TokenError::UnknownKey)?;
    // Signature and algorithm only; the claims are checked below, with Layer's rules.
    let mut validation = Validation::new(Algorithm::RS256);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let claims = jsonwebtoken::decode::<Map<String, Value>>(token, &decoding_key, &validation)
        .map_err(|err| match err.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => TokenError::Signature,
            jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => {
                TokenError::Algorithm("not RS256".into())
            }
            _ => TokenError::Malformed,
        })?
        .claims;

    let iss = string_claim(&claims, "iss")?;
    if ids::parse_provider_id(iss) != Some(key.provider_id) {
        return Err(TokenError::Issuer);
    }
    let user_id = string_claim(&claims, "prn")?;
    if crate::service::checked_user_id(user_id).is_err() {
        return Err(TokenError::Claim("prn", "a user id of 1 to 128 characters"));
    }
    let issued_at = time_claim(&claims, "iat")?;
    let expires_at = time_claim(&claims, "exp")?;
    if issued_at > now.saturating_add(skew_secs) {
        return Err(TokenError::IssuedInFuture);
    }
    if expires_at.saturating_add(skew_secs) <= now {
        return Err(TokenError::Expired);
    }
    let nonce = string_claim(&claims, "nce")?;
    Ok(Verified {
        user_id: user_id.to_owned(),
        nonce: nonce.to_owned(),
        profile: Profile {
            display_name: profile_claim(&claims, "display_name", 128)?,
            avatar_url: profile_claim(&claims, "avatar_url", 1024)?,
            first_name: profile_claim(&claims, "first_name", 128)?,
            last_name: profile_claim(&claims, "last_name", 128)?,
            phone_number: profile_claim(&claims, "phone_number", 32)?,
            email_address: profile_claim(&claims, "email_address", 255)?,
        },
    })
}

fn string_claim<'a>(
    claims: &'a Map<String, Value>,
    name: &'static str,
) -> Result<&'a str, TokenError> {
    match claims.get(name) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        _ => Err(TokenError::Claim(name, "a non-empty string")),
    }
}

/// A NumericDate (seconds since the epoch; a fraction is allowed by RFC 7519 and dropped).
fn time_claim(claims: &Map<String, Value>, name: &'static str) -> Result<i64, TokenError> {
    let value = claims.get(name).and_then(|v| {
        v.as_i64()
            .or_else(|| v.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
    });
    value.ok_or(TokenError::Claim(name, "a time in seconds since the epoch"))
}

fn profile_claim(
    claims: &Map<String, Value>,
    name: &'static str,
    max_chars: usize,
) -> Result<Option<String>, TokenError> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.chars().count() <= max_chars => Ok(Some(s.clone())),
        Some(_) => Err(TokenError::Claim(
            name,
            "a string of at most its documented length",
        )),
    }
}

/// Applies profile claims to the user's identity, creating it when the user has none.
fn updated_identity(
    existing: Option<Identity>,
    app_id: Uuid,
    user_id: &str,
    profile: Profile,
    now: Timestamp,
) -> Option<Identity> {
    let mut identity = existing
        .clone()
        .unwrap_or_else(|| Identity::blank(app_id, user_id, now));
    let fields = [
        (&mut identity.display_name, profile.display_name),
        (&mut identity.avatar_url, profile.avatar_url),
        (&mut identity.first_name, profile.first_name),
        (&mut identity.last_name, profile.last_name),
        (&mut identity.phone_number, profile.phone_number),
        (&mut identity.email_address, profile.email_address),
    ];
    for (field, claim) in fields {
        if claim.is_some() {
            *field = claim;
        }
    }
    match existing {
        Some(before) if before == identity => None,
        Some(_) => Some(Identity {
            updated_at: now,
            ..identity
        }),
        None => Some(identity),
    }
}

/// Layer's `app_suspended` (403): the operator suspended the app.
pub fn app_suspended() -> ApiError {
    ApiError::new(
        ErrorKind::APP_SUSPENDED,
        "The app is suspended; ask the server's operator to reinstate it.",
    )
}

/// `POST /sessions`: verifies the identity token for `app` and returns a new session token.
pub async fn login(
    store: &DynStore,
    auth: &AuthSettings,
    app: &str,
    identity_token: &str,
) -> ApiResult<String> {
    let invalid_app = || {
        ApiError::new(
            ErrorKind::INVALID_APP_ID,
            "The app_id is not the id of an app on this server.",
        )
        .with_data(serde_json::json!({ "property": "app_id" }))
    };
    let app_id = ids::parse_app_id(app).ok_or_else(invalid_app)?;
    let app = store.app(app_id).await?.ok_or_else(invalid_app)?;
    if app.suspended {
        return Err(app_suspended());
    }

    let kid = key_id(identity_token)?;
    // Only this app's keys: a key registered for another app never opens this one.
    let key = store
        .key(app_id, kid)
        .await?
        .ok_or(TokenError::UnknownKey)?;
    let now = Timestamp::now();
    let skew = i64::try_from(auth.clock_skew_secs).unwrap_or(i64::MAX);
    let verified = verify(identity_token, &key, now.unix_seconds(), skew)?;
    // Burnt in one statement: of two logins racing with one nonce, exactly one gets through.
    if !store
        .consume_nonce(&secrets::sha256_hex(&verified.nonce), now)
        .await?
    {
        return Err(TokenError::Nonce.into());
    }
    if store.user_state(app_id, &verified.user_id).await?.suspended {
        return Err(ApiError::new(
            ErrorKind::USER_SUSPENDED,
            "The user is suspended and cannot sign in.",
        ));
    }

    let existing = store.identity(app_id, &verified.user_id).await?;
    if let Some(identity) =
        updated_identity(existing, app_id, &verified.user_id, verified.profile, now)
    {
        store.put_identity(&identity).await?;
    }

    let ttl = match store.session_ttl(app_id).await? {
        Some(secs) => u64::try_from(secs).unwrap_or(auth.session_ttl_secs),
        None => auth.session_ttl_secs,
    };
    let token = secrets::generate_token();
    store
        .create_session(
            &secrets::sha256_hex(&token),
            &Session {
                app_id,
                user_id: verified.user_id,
                created_at: now,
                expires_at: now.plus_secs(ttl),
            },
        )
        .await?;
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    const KEY_A: &str = include_str!("../../tests/fixtures/identity-key-a.pem");
    const KEY_B: &str = include_str!("../../tests/fixtures/identity-key-b.pem");
    const NOW: i64 = 1_800_000_000;

    fn public_pem(private_pem: &str) -> String {
        use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey, LineEnding};
        let key = rsa::RsaPrivateKey::from_pkcs8_pem(private_pem).unwrap();
        rsa::RsaPublicKey::from(&key)
            .to_public_key_pem(LineEnding::LF)
            .unwrap()
    }

    fn provider_key(private_pem: &str) -> ProviderKey {
        ProviderKey {
            id: Uuid::from_u128(1),
            app_id: Uuid::from_u128(2),
            provider_id: Uuid::from_u128(3),
            public_key_pem: public_pem(private_pem),
            source: "test".into(),
            created_at: Timestamp::now(),
        }
    }

    fn header() -> Header {
        let mut header = Header::new(Algorithm::RS256);
        header.typ = Some("JWT".into());
        header.cty = Some(IDENTITY_TOKEN_CTY.into());
        header.kid = Some(ids::key_uri(Uuid::from_u128(1)));
        header
    }

    fn claims() -> Value {
        json!({
            "iss": ids::provider_uri(Uuid::from_u128(3)),
            "prn": "alice",
            "iat": NOW,
            "exp": NOW + 600,
            "nce": "nonce-1",
        })
    }

    fn sign(header: &Header, claims: &Value, private_pem: &str) -> String {
        jsonwebtoken::encode(
            header,
            claims,
            &EncodingKey::from_rsa_pem(private_pem.as_bytes()).unwrap(),
        )
        .unwrap()
    }

    fn b64(value: &Value) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
    }

    #[test]
    fn a_well_formed_token_verifies() {
        let mut c = claims();
        c["display_name"] = json!("Alice");
        c["avatar_url"] = Value::Null;
        let token = sign(&header(), &c, KEY_A);
        assert_eq!(key_id(&token), Ok(Uuid::from_u128(1)));
        let verified = verify(&token, &provider_key(KEY_A), NOW, 60).unwrap();
        assert_eq!(verified.user_id, "alice");
        assert_eq!(verified.nonce, "nonce-1");
        assert_eq!(verified.profile.display_name.as_deref(), Some("Alice"));
        assert_eq!(verified.profile.avatar_url, None);
    }

    #[test]
    fn bare_uuids_and_jws_typ_are_accepted() {
        let mut h = header();
        h.typ = Some("JWS".into());
        h.kid = Some(Uuid::from_u128(1).to_string());
        let mut c = claims();
        c["iss"] = json!(Uuid::from_u128(3).to_string());
        let token = sign(&h, &c, KEY_A);
        assert_eq!(key_id(&token), Ok(Uuid::from_u128(1)));
        assert!(verify(&token, &provider_key(KEY_A), NOW, 60).is_ok());
        h.typ = None;
        assert!(key_id(&sign(&h, &c, KEY_A)).is_ok());
    }

    #[test]
    fn header_rules() {
        let c = claims();
        // alg none, with and without a signature
        let none = format!(
            "{}.{}.",
            b64(&json!({"typ": "JWT", "alg": "none", "cty": IDENTITY_TOKEN_CTY, "kid": "x"})),
            b64(&c)
        );
        assert_eq!(key_id(&none), Err(TokenError::Algorithm("none".into())));
        // HS256 signed with the public key as the secret (algorithm confusion)
        let mut h = header();
        h.alg = Algorithm::HS256;
        let public = public_pem(KEY_A);
        let hs =
            jsonwebtoken::encode(&h, &c, &EncodingKey::from_secret(public.as_bytes())).unwrap();
        assert_eq!(key_id(&hs), Err(TokenError::Algorithm("HS256".into())));
        assert!(verify(&hs, &provider_key(KEY_A), NOW, 60).is_err());
        for alg in [Algorithm::RS512, Algorithm::PS256] {
            let mut h = header();
            h.alg = alg;
            assert!(matches!(
                key_id(&sign(&h, &c, KEY_A)),
                Err(TokenError::Algorithm(_))
            ));
        }
        let mut h = header();
        h.cty = None;
        assert_eq!(key_id(&sign(&h, &c, KEY_A)), Err(TokenError::ContentType));
        h.cty = Some("layer-eit;v=2".into());
        assert_eq!(key_id(&sign(&h, &c, KEY_A)), Err(TokenError::ContentType));
        h.cty = Some("layer-eit; v=1".into());
        assert!(key_id(&sign(&h, &c, KEY_A)).is_ok());
        let mut h = header();
        h.typ = Some("JOSE+JSON".into());
        assert!(matches!(
            key_id(&sign(&h, &c, KEY_A)),
            Err(TokenError::Type(_))
        ));
        let mut h = header();
        h.kid = None;
        assert_eq!(key_id(&sign(&h, &c, KEY_A)), Err(TokenError::KeyId));
        h.kid = Some("layer:///providers/00000000-0000-0000-0000-000000000001".into());
        assert_eq!(key_id(&sign(&h, &c, KEY_A)), Err(TokenError::KeyId));
    }

    #[test]
    fn malformed_tokens() {
        for token in ["", "abc", "a.b", "a.b.c.d", "!!.e30.", "e30.e30.e30"] {
            assert!(key_id(token).is_err(), "{token}");
        }
        assert_eq!(
            key_id(&"a".repeat(MAX_IDENTITY_TOKEN_BYTES + 1)),
            Err(TokenError::TooLong)
        );
        // a valid header over garbage claims and signature
        let token = format!(
            "{}.!!!.###",
            b64(
                &json!({"alg": "RS256", "cty": IDENTITY_TOKEN_CTY, "kid": Uuid::from_u128(1).to_string()})
            )
        );
        assert!(key_id(&token).is_ok());
        assert!(verify(&token, &provider_key(KEY_A), NOW, 60).is_err());
    }

    #[test]
    fn the_signature_must_be_the_keys() {
        let token = sign(&header(), &claims(), KEY_B);
        assert_eq!(
            verify(&token, &provider_key(KEY_A), NOW, 60),
            Err(TokenError::Signature)
        );
        // claims altered after signing
        let token = sign(&header(), &claims(), KEY_A);
        let parts: Vec<&str> = token.split('.').collect();
        let mut c = claims();
        c["prn"] = json!("mallory");
        let forged = format!("{}.{}.{}", parts[0], b64(&c), parts[2]);
        assert_eq!(
            verify(&forged, &provider_key(KEY_A), NOW, 60),
            Err(TokenError::Signature)
        );
    }

    #[test]
    fn claim_rules() {
        let key = provider_key(KEY_A);
        let check = |edit: &dyn Fn(&mut Value)| {
            let mut c = claims();
            edit(&mut c);
            verify(&sign(&header(), &c, KEY_A), &key, NOW, 60)
        };
        assert_eq!(
            check(&|c| c["iss"] = json!(ids::provider_uri(Uuid::from_u128(9)))),
            Err(TokenError::Issuer)
        );
        assert_eq!(
            check(&|c| c["iss"] = json!("nonsense")),
            Err(TokenError::Issuer)
        );
        assert!(matches!(
            check(&|c| {
                c.as_object_mut().unwrap().remove("iss");
            }),
            Err(TokenError::Claim("iss", _))
        ));
        assert!(matches!(
            check(&|c| c["prn"] = json!("")),
            Err(TokenError::Claim("prn", _))
        ));
        assert!(matches!(
            check(&|c| c["prn"] = json!(42)),
            Err(TokenError::Claim("prn", _))
        ));
        assert!(matches!(
            check(&|c| c["prn"] = json!("x".repeat(129))),
            Err(TokenError::Claim("prn", _))
        ));
        assert!(matches!(
            check(&|c| {
                c.as_object_mut().unwrap().remove("nce");
            }),
            Err(TokenError::Claim("nce", _))
        ));
        assert!(matches!(
            check(&|c| c["iat"] = json!("now")),
            Err(TokenError::Claim("iat", _))
        ));
        assert!(matches!(
            check(&|c| {
                c.as_object_mut().unwrap().remove("exp");
            }),
            Err(TokenError::Claim("exp", _))
        ));
        assert!(matches!(
            check(&|c| c["display_name"] = json!(7)),
            Err(TokenError::Claim("display_name", _))
        ));
        assert!(matches!(
            check(&|c| c["phone_number"] = json!("1".repeat(33))),
            Err(TokenError::Claim("phone_number", _))
        ));
        // fractional NumericDates are fine
        assert!(check(&|c| c["iat"] = json!(NOW as f64 + 0.5)).is_ok());
    }

    #[test]
    fn clock_skew_is_bounded() {
        let key = provider_key(KEY_A);
        let at = |iat: i64, exp: i64| {
            let mut c = claims();
            c["iat"] = json!(iat);
            c["exp"] = json!(exp);
            verify(&sign(&header(), &c, KEY_A), &key, NOW, 60)
        };
        assert!(at(NOW + 60, NOW + 600).is_ok(), "issued within the skew");
        assert_eq!(at(NOW + 61, NOW + 600), Err(TokenError::IssuedInFuture));
        assert!(at(NOW - 600, NOW - 59).is_ok(), "expired within the skew");
        assert_eq!(at(NOW - 600, NOW - 60), Err(TokenError::Expired));
        assert_eq!(
            verify(&sign(&header(), &claims(), KEY_A), &key, NOW + 600, 0),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn profile_claims_update_only_what_they_name() {
        let now = Timestamp::now();
        let app = Uuid::from_u128(2);
        let created = updated_identity(
            None,
            app,
            "alice",
            Profile {
                display_name: Some("Alice".into()),
                ..Profile::default()
            },
            now,
        )
        .unwrap();
        assert_eq!(created.display_name.as_deref(), Some("Alice"));
        assert_eq!(created.identity_type, "user");
        // nothing new: no write
        assert_eq!(
            updated_identity(Some(created.clone()), app, "alice", Profile::default(), now),
            None
        );
        let later = now.plus_secs(5);
        let updated = updated_identity(
            Some(created.clone()),
            app,
            "alice",
            Profile {
                avatar_url: Some("https://a/x.png".into()),
                ..Profile::default()
            },
            later,
        )
        .unwrap();
        assert_eq!(updated.display_name.as_deref(), Some("Alice"));
        assert_eq!(updated.avatar_url.as_deref(), Some("https://a/x.png"));
        assert_eq!(updated.created_at, created.created_at);
        assert_eq!(updated.updated_at, later);
    }
}
