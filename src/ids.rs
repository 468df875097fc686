//! Layer ids: parsing and printing of `layer:///...` URIs, in one place. Bare UUIDs are accepted
//! wherever Layer accepted them.

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use uuid::Uuid;

const PREFIX: &str = "layer:///";

/// What `encodeURIComponent` leaves alone: ASCII alphanumerics and `- _ . ! ~ * ' ( )`. The XDK
/// escapes `! ~ ' ( )` as well; decoding is the same either way.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'!')
    .remove(b'~')
    .remove(b'*')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')');

/// Percent-encodes a user id the way `encodeURIComponent` does (for ids and URL paths).
pub fn encode_component(value: &str) -> String {
    utf8_percent_encode(value, COMPONENT).to_string()
}

/// `<uuid>` or `layer:///<kind>/<uuid>`; `kinds` lists the accepted kind paths.
fn parse_prefixed_uuid(value: &str, kinds: &[&str]) -> Option<Uuid> {
    let value = value.trim();
    let bare = match value.strip_prefix(PREFIX) {
        Some(rest) => kinds
            .iter()
            .find_map(|kind| rest.strip_prefix(kind)?.strip_prefix('/'))?,
        None => value,
    };
    Uuid::try_parse(bare).ok()
}

/// An app id: `<uuid>`, `layer:///apps/staging/<uuid>` or `layer:///apps/production/<uuid>`.
pub fn parse_app_id(value: &str) -> Option<Uuid> {
    parse_prefixed_uuid(value, &["apps/staging", "apps/production"])
}

/// A provider id (`iss` of identity tokens): `<uuid>` or `layer:///providers/<uuid>`.
pub fn parse_provider_id(value: &str) -> Option<Uuid> {
    parse_prefixed_uuid(value, &["providers"])
}

/// A key id (`kid` of identity tokens): `<uuid>` or `layer:///keys/<uuid>`.
pub fn parse_key_id(value: &str) -> Option<Uuid> {
    parse_prefixed_uuid(value, &["keys"])
}

pub fn app_uri(id: Uuid) -> String {
    format!("{PREFIX}apps/production/{id}")
}

pub fn provider_uri(id: Uuid) -> String {
    format!("{PREFIX}providers/{id}")
}

pub fn key_uri(id: Uuid) -> String {
    format!("{PREFIX}keys/{id}")
}

/// `layer:///identities/<encodeURIComponent(user_id)>`.
pub fn identity_uri(user_id: &str) -> String {
    format!("{PREFIX}identities/{}", encode_component(user_id))
}

/// The user id inside an Identity id (fully percent-decoded), or the value itself when it is a
/// plain user id. `None` for an Identity id that does not decode to UTF-8 or is empty.
pub fn parse_user_id(value: &str) -> Option<String> {
    let user = match value.strip_prefix(PREFIX) {
        Some(rest) => {
            let encoded = rest.strip_prefix("identities/")?;
            percent_decode_str(encoded).decode_utf8().ok()?.into_owned()
        }
        None => value.to_owned(),
    };
    (!user.is_empty()).then_some(user)
}

#[cfg(test)]
mod tests {
    use super::*;

    const U: &str = "7c27fe20-f650-11e5-9d56-61d800001f29";

    #[test]
    fn app_ids_in_every_form() {
        let id = Uuid::parse_str(U).unwrap();
        for form in [
            U.to_string(),
            format!("layer:///apps/staging/{U}"),
            format!("layer:///apps/production/{U}"),
        ] {
            assert_eq!(parse_app_id(&form), Some(id), "{form}");
        }
        assert_eq!(parse_app_id(&format!("layer:///apps/other/{U}")), None);
        assert_eq!(parse_app_id(&format!("layer:///keys/{U}")), None);
        assert_eq!(parse_app_id("nope"), None);
        assert_eq!(parse_app_id(&app_uri(id)), Some(id));
    }

    #[test]
    fn provider_and_key_ids_round_trip() {
        let id = Uuid::parse_str(U).unwrap();
        assert_eq!(parse_provider_id(&provider_uri(id)), Some(id));
        assert_eq!(parse_provider_id(U), Some(id));
        assert_eq!(parse_key_id(&key_uri(id)), Some(id));
        assert_eq!(parse_key_id(&provider_uri(id)), None);
    }

    #[test]
    fn identity_ids_encode_like_encode_uri_component() {
        assert_eq!(
            identity_uri("namespace/12345"),
            "layer:///identities/namespace%2F12345"
        );
        assert_eq!(identity_uri("a b~*'()!"), "layer:///identities/a%20b~*'()!");
        assert_eq!(
            parse_user_id("layer:///identities/a%7E%21b").as_deref(),
            Some("a~!b")
        );
        assert_eq!(parse_user_id("bob").as_deref(), Some("bob"));
        assert_eq!(parse_user_id("layer:///identities/"), None);
        assert_eq!(parse_user_id("layer:///conversations/x"), None);
        let weird = "ü/%?#&=+";
        assert_eq!(parse_user_id(&identity_uri(weird)).as_deref(), Some(weird));
    }
}
