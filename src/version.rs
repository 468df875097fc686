//! API versions: parsing the `Accept: application/vnd.layer+json; version=x.y` header (and later the
//! WebSocket subprotocol) into the one enum every renderer branches on.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ApiVersion {
    V1_0,
    V1_1,
    V2_0,
    V3_0,
}

const LAYER_MEDIA_TYPE: &str = "application/vnd.layer+json";

impl ApiVersion {
    pub const ALL: [ApiVersion; 4] = [Self::V1_0, Self::V1_1, Self::V2_0, Self::V3_0];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::V1_0 => "1.0",
            Self::V1_1 => "1.1",
            Self::V2_0 => "2.0",
            Self::V3_0 => "3.0",
        }
    }

    pub fn parse(version: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == version)
    }

    /// Identities (BasicIdentity objects, Identity ids) replaced bare user ids in 2.0.
    pub fn has_identities(self) -> bool {
        self >= Self::V2_0
    }

    /// Reads the version out of an `Accept` header value. Several comma-separated media ranges are
    /// allowed; the first Layer one decides. Anything else (no Layer media type, no or an unknown
    /// version) is `None`, which the compat layer turns into the 406 Layer sent.
    pub fn from_accept(accept: &str) -> Option<Self> {
        accept.split(',').find_map(|range| {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next()?;
            if !media.eq_ignore_ascii_case(LAYER_MEDIA_TYPE) {
                return None;
            }
            parts.find_map(|param| {
                let (name, value) = param.split_once('=')?;
                if !name.trim().eq_ignore_ascii_case("version") {
                    return None;
                }
                Self::parse(value.trim().trim_matches('"'))
            })
        })
    }
}

impl fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::ApiVersion::{self, *};

    #[test]
    fn accepts_each_documented_version() {
        for v in ApiVersion::ALL {
            let header = format!("application/vnd.layer+json; version={v}");
            assert_eq!(ApiVersion::from_accept(&header), Some(v));
        }
    }

    #[test]
    fn tolerates_spacing_case_quotes_and_lists() {
        assert_eq!(
            ApiVersion::from_accept("application/vnd.layer+json;version=2.0"),
            Some(V2_0)
        );
        assert_eq!(
            ApiVersion::from_accept("Application/VND.Layer+JSON ; Version = \"3.0\""),
            Some(V3_0)
        );
        assert_eq!(
            ApiVersion::from_accept("application/json, application/vnd.layer+json; version=1.1"),
            Some(V1_1)
        );
    }

    #[test]
    fn rejects_missing_garbled_and_unknown_versions() {
        for bad in [
            "",
            "application/json",
            "application/vnd.layer+json",
            "application/vnd.layer+json; version=",
            "application/vnd.layer+json; version=4.0",
            "application/vnd.layer+json; version=3",
            "application/vnd.layer+json; v=3.0",
            "application/vnd.layer.webhooks+json; version=3.0",
        ] {
            assert_eq!(ApiVersion::from_accept(bad), None, "{bad:?}");
        }
    }
}
