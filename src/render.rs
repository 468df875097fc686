//! Rendering of domain records into Layer's JSON, per API version: the one place where wire
//! versions differ in output (handlers never branch on versions themselves).

use serde_json::{json, Value};
use uuid::Uuid;

use crate::http::Urls;
use crate::store::{Badge, Identity};
use crate::version::ApiVersion;

/// A full Identity (server-api.md §3.2). Before 2.0 only the profile fields were returned.
pub fn identity(urls: &Urls, version: ApiVersion, identity: &Identity) -> Value {
    let mut value = json!({
        "display_name": identity.display_name,
        "avatar_url": identity.avatar_url,
        "first_name": identity.first_name,
        "last_name": identity.last_name,
        "phone_number": identity.phone_number,
        "email_address": identity.email_address,
        "public_key": identity.public_key,
        "metadata": identity.metadata.0,
    });
    if version.has_identities() {
        let map = value.as_object_mut().expect("an object literal");
        map.insert(
            "id".into(),
            crate::ids::identity_uri(&identity.user_id).into(),
        );
        map.insert(
            "url".into(),
            urls.platform_identity(identity.app_id, &identity.user_id)
                .into(),
        );
        map.insert("user_id".into(), identity.user_id.clone().into());
        map.insert(
            "identity_type".into(),
            identity.identity_type.clone().into(),
        );
    }
    value
}

/// A BasicIdentity (server-api.md §3.1) of any user: `display_name` and `avatar_url` come from
/// the user's Identity when there is one, and are null otherwise.
pub fn basic_identity(
    urls: &Urls,
    app_id: Uuid,
    user_id: &str,
    identity: Option<&Identity>,
) -> Value {
    json!({
        "id": crate::ids::identity_uri(user_id),
        "url": urls.platform_identity(app_id, user_id),
        "user_id": user_id,
        "display_name": identity.and_then(|i| i.display_name.as_deref()),
        "avatar_url": identity.and_then(|i| i.avatar_url.as_deref()),
    })
}

/// One entry of a block list: `{"user_id"}` before 2.0, a BasicIdentity (which keeps `user_id`,
/// the key clients read) since.
pub fn blocked_user(
    urls: &Urls,
    version: ApiVersion,
    app_id: Uuid,
    user_id: &str,
    identity: Option<&Identity>,
) -> Value {
    if version.has_identities() {
        basic_identity(urls, app_id, user_id, identity)
    } else {
        json!({ "user_id": user_id })
    }
}

/// The user resource (`GET /users/:user_id`): its id, full Identity (or null) and suspension.
pub fn user(
    urls: &Urls,
    version: ApiVersion,
    user_id: &str,
    identity: Option<&Identity>,
    suspended: bool,
) -> Value {
    json!({
        "id": user_id,
        "identity": identity.map(|i| self::identity(urls, version, i)),
        "suspended": suspended,
    })
}

/// A user's badge counts.
pub fn badge(badge: &Badge) -> Value {
    json!({
        "external_unread_count": badge.external_unread_count,
        "unread_conversation_count": badge.unread_conversation_count,
        "unread_message_count": badge.unread_message_count,
    })
}
