//! Kiln's validated identifiers: a newtype per kind of id, holding only a
//! well-formed value, parsed once where a value enters kiln (an event, a
//! flag, an SDK response) so nothing deeper checks it again.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Defines a validated string id: a newtype that only holds a well-formed value.
macro_rules! string_id {
    ($(#[$meta:meta])* $name:ident, $what:literal, $valid:expr) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// The id as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = Error;

            fn try_from(value: String) -> Result<Self> {
                let valid: fn(&str) -> bool = $valid;
                if valid(&value) {
                    Ok(Self(value))
                } else {
                    Err(Error::InvalidInput(format!("{value:?} is not a valid {}", $what)))
                }
            }
        }

        impl FromStr for $name {
            type Err = Error;

            fn from_str(value: &str) -> Result<Self> {
                Self::try_from(value.to_owned())
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> Self {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

fn prefixed_hex(value: &str, prefix: &str) -> bool {
    value.strip_prefix(prefix).is_some_and(|rest| {
        (8..=17).contains(&rest.len()) && rest.bytes().all(|b| b.is_ascii_hexdigit())
    })
}

string_id!(
    /// An EC2 image id (`ami-…`).
    AmiId,
    "AMI id",
    |v| prefixed_hex(v, "ami-")
);

string_id!(
    /// An EC2 instance id (`i-…`).
    InstanceId,
    "instance id",
    |v| prefixed_hex(v, "i-")
);

string_id!(
    /// An SSM Run Command id (a UUID).
    CommandId,
    "command id",
    |v| v.len() == 36 && v.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
);

string_id!(
    /// Identifies one build: the Step Functions execution name, or a caller's id.
    /// Letters, digits, `-` and `_`, at most 80 characters (an execution name's limit).
    BuildId,
    "build id (1-80 letters, digits, '-' or '_')",
    |v| !v.is_empty()
        && v.len() <= 80
        && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
);

string_id!(
    /// A recipe's name: the name of its directory. Lower-case letters, digits and
    /// `-`, starting with a letter, at most 64 characters, so it is safe in tags,
    /// SSM parameter paths and image names.
    RecipeName,
    "recipe name (lower-case letters, digits and '-', starting with a letter, at most 64)",
    |v| v.len() <= 64
        && v.starts_with(|c: char| c.is_ascii_lowercase())
        && v.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
);

string_id!(
    /// A release channel (`prod`, `staging`): lower-case letters, digits and
    /// `-`, starting with a letter, at most 32 characters.
    Channel,
    "channel (lower-case letters, digits and '-', starting with a letter, at most 32)",
    |v| v.len() <= 32
        && v.starts_with(|c: char| c.is_ascii_lowercase())
        && v.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
);

string_id!(
    /// The build fingerprint: hex SHA-256 of the source image and the recipe's bytes.
    Fingerprint,
    "fingerprint (64 hex digits)",
    |v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit())
);

impl Fingerprint {
    /// The first 12 hex digits, enough to tell builds apart in names.
    pub fn short(&self) -> &str {
        &self.0[..12]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_accept_real_shapes_and_refuse_others() {
        assert!("ami-0123456789abcdef0".parse::<AmiId>().is_ok());
        assert!("ami-12345678".parse::<AmiId>().is_ok());
        assert!("ami-xyz".parse::<AmiId>().is_err());
        assert!("i-0123456789abcdef0".parse::<InstanceId>().is_ok());
        assert!("vol-0123456789abcdef0".parse::<InstanceId>().is_err());
        assert!("ubuntu-base".parse::<RecipeName>().is_ok());
        assert!("../etc".parse::<RecipeName>().is_err());
        assert!("Ubuntu".parse::<RecipeName>().is_err());
        assert!("kiln-2026_11-25".parse::<BuildId>().is_ok());
        assert!("a b".parse::<BuildId>().is_err());
        assert!("".parse::<BuildId>().is_err());
    }
}
