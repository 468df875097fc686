//! Rendering of domain records into Layer's JSON, per API version: the one place where wire
//! versions differ in output (handlers never branch on versions themselves).

use serde_json::{json, Value};

use crate::http::Urls;
use crate::store::Identity;
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
