//! Validated values: once you hold an `Email` or a `Slug`, it is well formed.

use serde::{Deserialize, Serialize};

/// Why a submitted value was refused. The message is safe to show to a client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct ValueError {
    /// The field the value came from.
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

fn err(field: &'static str, reason: impl Into<String>) -> ValueError {
    ValueError {
        field,
        reason: reason.into(),
    }
}

/// An email address, trimmed and lowercased (addresses compare case-insensitively).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    /// Longest address accepted (RFC 5321 path limit).
    pub const MAX_LEN: usize = 254;

    /// Checks the shape `local@domain.tld` without pretending to be a full RFC parser.
    pub fn parse(value: &str) -> Result<Email, ValueError> {
        let v = value.trim().to_lowercase();
        if v.len() > Self::MAX_LEN {
            return Err(err(
                "email",
                format!("at most {} characters", Self::MAX_LEN),
            ));
        }
        let Some((local, domain)) = v.split_once('@') else {
            return Err(err("email", "not an email address"));
        };
        let local_ok = !local.is_empty() && local.len() <= 64;
        let domain_ok = domain.contains('.')
            && domain
                .split('.')
                .all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
        let chars_ok = !v
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "<>()[],;:\"\\".contains(c));
        if !(local_ok && domain_ok && chars_ok) {
            return Err(err("email", "not an email address"));
        }
        Ok(Email(v))
    }

    /// The normalized address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A URL-safe organization identifier: lowercase letters, digits and dashes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Slug(String);

impl Slug {
    /// Longest slug accepted.
    pub const MAX_LEN: usize = 48;

    /// Accepts `[a-z0-9]` runs joined by single dashes, 2 to 48 characters.
    pub fn parse(value: &str) -> Result<Slug, ValueError> {
        let ok_chars = value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        let ok_shape = !value.starts_with('-') && !value.ends_with('-') && !value.contains("--");
        if !(2..=Self::MAX_LEN).contains(&value.len()) || !ok_chars || !ok_shape {
            return Err(err(
                "slug",
                "2 to 48 lowercase letters, digits or single dashes, not at the ends",
            ));
        }
        Ok(Slug(value.to_owned()))
    }

    /// Derives a slug from a free-form name ("Acme AI Lab" → "acme-ai-lab").
    pub fn from_name(name: &str) -> Slug {
        let mut out = String::new();
        for c in name.to_lowercase().chars() {
            if c.is_ascii_alphanumeric() {
                out.push(c);
            } else if !out.is_empty() && !out.ends_with('-') {
                out.push('-');
            }
        }
        let mut s: String = out
            .trim_matches('-')
            .chars()
            .take(Self::MAX_LEN - 7)
            .collect();
        s = s.trim_matches('-').to_owned();
        if s.len() < 2 {
            s = format!("org-{s}").trim_matches('-').to_owned();
        }
        Slug(s)
    }

    /// The slug text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn bounded_text(field: &'static str, value: &str, max: usize) -> Result<String, ValueError> {
    let v = value.trim();
    if v.is_empty() {
        return Err(err(field, "must not be empty"));
    }
    if v.chars().count() > max {
        return Err(err(field, format!("at most {max} characters")));
    }
    if v.chars().any(char::is_control) {
        return Err(err(field, "must not contain control characters"));
    }
    Ok(v.to_owned())
}

/// A person's display name, 1 to 100 characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DisplayName(String);

impl DisplayName {
    /// Trims and bounds the name.
    pub fn parse(value: &str) -> Result<DisplayName, ValueError> {
        bounded_text("display_name", value, 100).map(DisplayName)
    }

    /// The name text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An organization's name, 1 to 100 characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OrgName(String);

impl OrgName {
    /// Trims and bounds the name.
    pub fn parse(value: &str) -> Result<OrgName, ValueError> {
        bounded_text("name", value, 100).map(OrgName)
    }

    /// The name text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A new password that meets the policy: 10 to 1024 characters.
///
/// Deliberately not `Debug`/`Serialize`: it must never reach a log or a response.
pub struct Password(String);

impl Password {
    /// Shortest password accepted.
    pub const MIN_LEN: usize = 10;
    /// Longest password accepted (bounds the hashing cost of a request).
    pub const MAX_LEN: usize = 1024;

    /// Checks the length policy.
    pub fn parse(value: &str) -> Result<Password, ValueError> {
        let n = value.chars().count();
        if n < Self::MIN_LEN {
            return Err(err(
                "password",
                format!("at least {} characters", Self::MIN_LEN),
            ));
        }
        if value.len() > Self::MAX_LEN {
            return Err(err("password", format!("at most {} bytes", Self::MAX_LEN)));
        }
        Ok(Password(value.to_owned()))
    }

    /// The password, for hashing only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert_eq!(
            Email::parse(" Alice@Example.COM ").map(|e| e.0),
            Ok("alice@example.com".into())
        );
        for bad in [
            "",
            "alice",
            "alice@",
            "@example.com",
            "a@b",
            "a b@c.d",
            "a@b..c",
            "a@-",
            &"x".repeat(300),
        ] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn slugs() {
        assert!(Slug::parse("acme-ai").is_ok());
        for bad in [
            "a",
            "Acme",
            "-acme",
            "acme-",
            "ac--me",
            "ac me",
            &"a".repeat(49),
        ] {
            assert!(Slug::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Slug::from_name("Acme AI Lab!").as_str(), "acme-ai-lab");
        assert!(Slug::parse(Slug::from_name("é").as_str()).is_ok());
        assert!(Slug::parse(Slug::from_name(&"Long Name ".repeat(20)).as_str()).is_ok());
    }

    #[test]
    fn texts_and_passwords() {
        assert!(DisplayName::parse("  ").is_err());
        assert!(DisplayName::parse(&"x".repeat(101)).is_err());
        assert!(OrgName::parse("bad\u{0}name").is_err());
        assert_eq!(OrgName::parse(" Acme ").map(|n| n.0), Ok("Acme".into()));
        assert!(Password::parse("short").is_err());
        assert!(Password::parse(&"x".repeat(1025)).is_err());
        assert!(Password::parse("long enough pass").is_ok());
    }
}
