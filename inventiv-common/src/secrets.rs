//! Secrets in the configuration: read from `NAME` or from the file named by
//! `NAME_FILE`, and the one rule both processes apply to the built-in
//! development values (refused unless explicitly allowed on loopback).

use std::net::SocketAddr;

/// The flag that allows the built-in development secrets.
pub const INSECURE_DEVELOPMENT: &str = "INVENTIV_INSECURE_DEVELOPMENT";

/// A secret that cannot be read or is not acceptable; the message names the
/// variable, never the value.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SecretError(pub String);

/// `NAME` when set and not blank, else the content of the file named by
/// `NAME_FILE` (one trailing newline removed), else `None`.
pub fn read(
    lookup: impl Fn(&str) -> Option<String>,
    name: &str,
) -> Result<Option<String>, SecretError> {
    let set = |key: &str| lookup(key).filter(|v| !v.trim().is_empty());
    if let Some(value) = set(name) {
        return Ok(Some(value));
    }
    let file_var = format!("{name}_FILE");
    let Some(path) = set(&file_var) else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path.trim())
        .map_err(|e| SecretError(format!("{file_var}={path:?} cannot be read: {e}")))?;
    let value = text.strip_suffix('\n').unwrap_or(&text);
    let value = value.strip_suffix('\r').unwrap_or(value);
    if value.trim().is_empty() {
        return Err(SecretError(format!("{file_var}={path:?} is empty")));
    }
    Ok(Some(value.to_owned()))
}

/// Whether the built-in development secrets may be used: only when the
/// operator asked for it (`INVENTIV_INSECURE_DEVELOPMENT=1`), outside
/// production, and while the process listens on loopback only. Asking for it
/// anywhere else is an error rather than silently ignored.
pub fn insecure_allowed(
    flag: bool,
    production: bool,
    listener: SocketAddr,
) -> Result<bool, SecretError> {
    if !flag {
        return Ok(false);
    }
    if production {
        return Err(SecretError(format!(
            "{INSECURE_DEVELOPMENT} is refused with INVENTIV_ENV=production"
        )));
    }
    if !listener.ip().is_loopback() {
        return Err(SecretError(format!(
            "{INSECURE_DEVELOPMENT} needs a loopback listener, not {listener}"
        )));
    }
    Ok(true)
}

/// Picks the value of a secret: the configured one unless it is a built-in
/// constant (or too short), the built-in `fallback` only when `insecure` is
/// allowed. `hint` says how to get a good value.
pub fn choose(
    name: &str,
    configured: Option<String>,
    fallback: &str,
    builtin: &[&str],
    min_len: usize,
    insecure: bool,
    hint: &str,
) -> Result<String, SecretError> {
    match configured {
        None if insecure => Ok(fallback.to_owned()),
        None => Err(SecretError(format!(
            "{name} (or {name}_FILE) is required: {hint}; the built-in development value is only \
             accepted with {INSECURE_DEVELOPMENT}=1 on a loopback listener"
        ))),
        Some(v) if !insecure && builtin.contains(&v.as_str()) => Err(SecretError(format!(
            "{name} is a built-in development value published in the source code: {hint}"
        ))),
        Some(v) if !insecure && v.len() < min_len => Err(SecretError(format!(
            "{name} must be at least {min_len} bytes: {hint}"
        ))),
        Some(v) => Ok(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lo() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 1))
    }

    #[test]
    fn insecure_only_on_loopback_outside_production() {
        assert!(matches!(insecure_allowed(false, false, lo()), Ok(false)));
        assert!(matches!(insecure_allowed(true, false, lo()), Ok(true)));
        assert!(insecure_allowed(true, true, lo()).is_err());
        assert!(insecure_allowed(true, false, SocketAddr::from(([0, 0, 0, 0], 1))).is_err());
    }

    #[test]
    fn builtin_and_missing_values_are_refused_unless_insecure() {
        let pick = |v: Option<&str>, insecure| {
            choose(
                "S",
                v.map(str::to_owned),
                "dev",
                &["dev"],
                8,
                insecure,
                "generate one",
            )
            .ok()
        };
        assert_eq!(pick(None, false), None);
        assert_eq!(pick(Some("dev"), false), None);
        assert_eq!(pick(Some("short"), false), None);
        assert_eq!(
            pick(Some("long-enough"), false).as_deref(),
            Some("long-enough")
        );
        assert_eq!(pick(None, true).as_deref(), Some("dev"));
    }

    #[test]
    fn file_variant_is_read_and_the_variable_wins() -> Result<(), Box<dyn std::error::Error>> {
        let dir = std::env::temp_dir().join(format!("inventiv-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let file = dir.join("s");
        std::fs::write(&file, "from-file\n")?;
        let path = file.display().to_string();
        let only_file = |k: &str| (k == "S_FILE").then(|| path.clone());
        assert_eq!(read(only_file, "S")?.as_deref(), Some("from-file"));
        let both = |k: &str| match k {
            "S" => Some("direct".to_owned()),
            "S_FILE" => Some(path.clone()),
            _ => None,
        };
        assert_eq!(read(both, "S")?.as_deref(), Some("direct"));
        let missing = |k: &str| (k == "S_FILE").then(|| "/nonexistent/secret".to_owned());
        assert!(read(missing, "S").is_err());
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }
}
