//! Short-lived access tokens: HS256 only, issuer, audience and expiry checked.

use inventiv_common::{OrgId, SessionId, UserId};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

const ISSUER: &str = "inventiv";
const AUDIENCE: &str = "inventiv-api";

/// What an access token says. The session row stays the source of truth.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: UserId,
    pub sid: SessionId,
    pub org: OrgId,
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
}

/// Signs and checks access tokens with one secret.
#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl_secs: i64,
}

impl JwtKeys {
    /// Keys from the configured secret; tokens live `ttl`.
    pub fn new(secret: &SecretString, ttl: std::time::Duration) -> JwtKeys {
        let bytes = secret.expose_secret().as_bytes();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 5;
        JwtKeys {
            encoding: EncodingKey::from_secret(bytes),
            decoding: DecodingKey::from_secret(bytes),
            validation,
            ttl_secs: i64::try_from(ttl.as_secs()).unwrap_or(900),
        }
    }

    /// Lifetime of a token, in seconds.
    pub fn ttl_secs(&self) -> i64 {
        self.ttl_secs
    }

    /// A signed token for this session.
    pub fn issue(
        &self,
        user: UserId,
        session: SessionId,
        org: OrgId,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: user,
            sid: session,
            org,
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            iat: now,
            exp: now + self.ttl_secs,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
    }

    /// The claims of a valid token, or None for anything else.
    pub fn verify(&self, token: &str) -> Option<Claims> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .ok()
            .map(|d| d.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tampering() -> Result<(), jsonwebtoken::errors::Error> {
        let keys = JwtKeys::new(
            &SecretString::from("a".repeat(40)),
            std::time::Duration::from_secs(60),
        );
        let token = keys.issue(UserId::new(), SessionId::new(), OrgId::new())?;
        assert!(keys.verify(&token).is_some());
        let other = JwtKeys::new(
            &SecretString::from("b".repeat(40)),
            std::time::Duration::from_secs(60),
        );
        assert!(
            other.verify(&token).is_none(),
            "another secret must not verify"
        );
        let none_alg = format!(
            "eyJhbGciOiJub25lIn0.{}.",
            token.split('.').nth(1).unwrap_or_default()
        );
        assert!(keys.verify(&none_alg).is_none(), "alg none refused");
        let now = chrono::Utc::now().timestamp();
        let past = Claims {
            sub: UserId::new(),
            sid: SessionId::new(),
            org: OrgId::new(),
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            iat: now - 120,
            exp: now - 60,
        };
        let stale = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &past, &keys.encoding)?;
        assert!(keys.verify(&stale).is_none(), "expired refused");
        let foreign = Claims {
            aud: "someone-else".into(),
            exp: now + 60,
            ..past
        };
        let foreign =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &foreign, &keys.encoding)?;
        assert!(keys.verify(&foreign).is_none(), "wrong audience refused");
        Ok(())
    }
}
