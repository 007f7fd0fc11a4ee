//! The string fields of a job that have a shape of their own, as types that
//! check it wherever one is read — a request, a job message, a function's
//! definition (`serde(try_from)`) — so the frontend and the executor run the
//! same check on the same type. (The repository URL is [`crate::policy::RepoUrl`].)

use std::fmt;
use std::ops::Deref;

use serde::{Deserialize, Serialize};

use super::entry::{is_checkout_path, MAX_PATH_CHARS};

/// Why a field's value is refused: the sentence says what it must be.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidField(pub String);

macro_rules! string_field {
    ($(#[$doc:meta])* $name:ident, $check:expr) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl TryFrom<String> for $name {
            type Error = InvalidField;

            fn try_from(value: String) -> Result<Self, InvalidField> {
                let check: fn(&str) -> Result<(), String> = $check;
                check(&value).map(|()| Self(value)).map_err(InvalidField)
            }
        }

        impl std::str::FromStr for $name {
            type Err = InvalidField;

            fn from_str(value: &str) -> Result<Self, InvalidField> {
                Self::try_from(value.to_owned())
            }
        }

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl Deref for $name {
            type Target = str;

            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}

string_field!(
    /// A branch, tag or commit name (or `HEAD`): nothing git would read as an
    /// option, a range or a pattern.
    GitRef,
    |value| {
        if super::is_valid_ref(value) {
            Ok(())
        } else {
            Err("ref must be a branch, tag or commit name".into())
        }
    }
);

impl GitRef {
    /// The remote's default branch.
    pub fn head() -> Self {
        Self("HEAD".into())
    }
}

string_field!(
    /// A path inside a checkout, relative, without `.` or `..` parts (an `entry`
    /// or `workdir`; the executor resolves it against the checkout).
    CheckoutPath,
    |value| {
        if is_checkout_path(value) {
            Ok(())
        } else {
            Err(format!(
                "must be a relative path inside the repository (at most {MAX_PATH_CHARS} characters, no `.` or `..` parts)"
            ))
        }
    }
);

/// The longest runtime name.
pub const MAX_RUNTIME_CHARS: usize = 64;

string_field!(
    /// A runtime's name, as the operator's images name them (`python`, `node`,
    /// `command`, …): which ones a deployment offers is its own check.
    RuntimeName,
    |value| {
        let fits = !value.is_empty() && value.chars().count() <= MAX_RUNTIME_CHARS;
        if fits && value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
            Ok(())
        } else {
            Err(format!("runtime must be a name of at most {MAX_RUNTIME_CHARS} letters, digits, `-`, `_` or `.`"))
        }
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_field_checks_its_shape_when_read_from_json() {
        assert_eq!(serde_json::from_str::<GitRef>("\"main\"").unwrap(), "main");
        for bad in ["\"--upload-pack=x\"", "\"a..b\"", "\"\"", "\"a b\""] {
            let error = serde_json::from_str::<GitRef>(bad).unwrap_err().to_string();
            assert!(error.contains("ref must be a branch, tag or commit name"), "{bad}: {error}");
        }
        assert_eq!(serde_json::to_string(&"src/f.py".parse::<CheckoutPath>().unwrap()).unwrap(), "\"src/f.py\"");
        for bad in ["../x", "/etc/passwd", "a/./b", ""] {
            assert!(bad.parse::<CheckoutPath>().is_err(), "{bad}");
        }
        assert!("python".parse::<RuntimeName>().is_ok() && "node-20".parse::<RuntimeName>().is_ok());
        assert!(serde_json::from_str::<RuntimeName>("\"py thon\"").is_err());
        assert!("x".repeat(MAX_RUNTIME_CHARS + 1).parse::<RuntimeName>().is_err());
    }
}
