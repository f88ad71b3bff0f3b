//! What can go wrong talking to a cloud, and whether trying again helps.

/// A provider call failed.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// Network trouble, rate limit, 5xx, an injected fault: retry later.
    #[error("provider temporarily unavailable: {0}")]
    Transient(String),
    /// The server or volume does not exist (any more).
    #[error("not found: {0}")]
    NotFound(String),
    /// The request itself is wrong (unknown zone or type, bad size...).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The provider understood and said no (e.g. action not allowed in the
    /// resource's current state, account locked).
    #[error("refused by the provider: {0}")]
    Refused(String),
    /// A quota of the account would be exceeded. The text is the
    /// provider's own message, shown to the user as it is.
    #[error("quota exceeded: {0}")]
    Quota(String),
    /// The provider has no capacity for the request now (out of stock in
    /// the zone); another zone or type, or later, may work.
    #[error("out of stock: {0}")]
    OutOfStock(String),
    /// The credentials were rejected.
    #[error("provider credentials rejected: {0}")]
    Unauthorized(String),
    /// Something broke on our side of the call (local files, processes).
    #[error("provider internal error: {0}")]
    Internal(String),
}

/// The codes ([`ProviderError::code`]) of a create refused for lack of
/// capacity or quota: another placement may work where this one did not.
pub const CAPACITY_CODES: [&str; 2] = ["PROVIDER_OUT_OF_STOCK", "PROVIDER_QUOTA_EXCEEDED"];

impl ProviderError {
    /// Whether sending the same request again later may succeed.
    pub fn retryable(&self) -> bool {
        matches!(self, ProviderError::Transient(_))
    }

    /// A stable machine code for action logs and API errors.
    pub fn code(&self) -> &'static str {
        match self {
            ProviderError::Transient(_) => "PROVIDER_UNAVAILABLE",
            ProviderError::NotFound(_) => "PROVIDER_NOT_FOUND",
            ProviderError::InvalidRequest(_) => "PROVIDER_INVALID_REQUEST",
            ProviderError::Refused(_) => "PROVIDER_REFUSED",
            ProviderError::Quota(_) => "PROVIDER_QUOTA_EXCEEDED",
            ProviderError::OutOfStock(_) => "PROVIDER_OUT_OF_STOCK",
            ProviderError::Unauthorized(_) => "PROVIDER_CREDENTIALS_REJECTED",
            ProviderError::Internal(_) => "PROVIDER_INTERNAL",
        }
    }

    /// An `Internal` error for a local I/O failure, saying what was done.
    pub(crate) fn io(context: impl std::fmt::Display, err: std::io::Error) -> ProviderError {
        ProviderError::Internal(format!("{context}: {err}"))
    }
}

#[cfg(test)]
mod tests {
    use super::ProviderError;

    #[test]
    fn only_transient_errors_are_retryable() {
        let table = [
            (ProviderError::Transient("x".into()), true),
            (ProviderError::NotFound("x".into()), false),
            (ProviderError::InvalidRequest("x".into()), false),
            (ProviderError::Refused("x".into()), false),
            (ProviderError::Quota("x".into()), false),
            (ProviderError::OutOfStock("x".into()), false),
            (ProviderError::Unauthorized("x".into()), false),
            (ProviderError::Internal("x".into()), false),
        ];
        for (err, retryable) in table {
            assert_eq!(err.retryable(), retryable, "{err}");
            assert!(err.code().starts_with("PROVIDER_"));
            let capacity = matches!(err, ProviderError::Quota(_) | ProviderError::OutOfStock(_));
            assert_eq!(
                super::CAPACITY_CODES.contains(&err.code()),
                capacity,
                "{err}"
            );
        }
    }
}
