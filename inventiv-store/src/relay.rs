//! How the control plane reaches a worker's engine: through the relay on
//! the node (HAProxy), over TLS with the relay's certificate pinned (its
//! SHA-256, reported by bootstrap.sh over SSH), with the instance's relay
//! key in [`RELAY_KEY_HEADER`]. The key is made here at each install,
//! stored only encrypted (see [`crate::crypto`]); the node gets its SHA-256
//! only. The API's proxy and the orchestrator's probes build their clients
//! with [`pinned_client`], so neither trusts anything but that one
//! certificate nor follows a redirect.

use std::sync::Arc;

use reqwest::header::{HeaderMap, HeaderValue};
use ring::digest::{digest, SHA256};
use ring::rand::{SecureRandom, SystemRandom};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use secrecy::{ExposeSecret, SecretString};
use sqlx::{PgExecutor, PgPool};
use uuid::Uuid;

use crate::credentials::CredentialsError;
use crate::crypto::{CryptoError, Keyring, Sealed};

/// The header carrying the relay key; the relay removes it before the
/// request reaches the engine.
pub const RELAY_KEY_HEADER: &str = "x-inventiv-relay-key";

/// What it takes to talk to one instance's relay.
pub struct RelayAccess {
    key: SecretString,
    cert_sha256: [u8; 32],
}

impl std::fmt::Debug for RelayAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayAccess")
            .field("cert_sha256", &hex::encode(self.cert_sha256))
            .finish_non_exhaustive()
    }
}

impl RelayAccess {
    /// The SHA-256 of the only certificate accepted from the relay.
    pub fn cert_sha256(&self) -> [u8; 32] {
        self.cert_sha256
    }
}

/// The relay columns of an instance as stored.
#[derive(Debug, Clone, Default, sqlx::FromRow)]
pub struct StoredRelay {
    pub relay_key_version: Option<i32>,
    pub relay_key_nonce: Option<Vec<u8>>,
    pub relay_key_ciphertext: Option<Vec<u8>>,
    pub relay_cert_sha256: Option<Vec<u8>>,
}

impl StoredRelay {
    /// The access it describes; None until both the key and the pin are set.
    pub fn open(
        self,
        keys: &Keyring,
        instance_id: Uuid,
    ) -> Result<Option<RelayAccess>, CryptoError> {
        let (Some(key_version), Some(nonce), Some(ciphertext), Some(cert)) = (
            self.relay_key_version,
            self.relay_key_nonce,
            self.relay_key_ciphertext,
            self.relay_cert_sha256,
        ) else {
            return Ok(None);
        };
        let Ok(cert_sha256) = <[u8; 32]>::try_from(cert.as_slice()) else {
            return Ok(None);
        };
        let sealed = Sealed {
            key_version,
            nonce,
            ciphertext,
        };
        let plain = keys.open_relay_key(instance_id, &sealed)?;
        let key = String::from_utf8(plain).map_err(|_| CryptoError::Undecryptable)?;
        Ok(Some(RelayAccess {
            key: key.into(),
            cert_sha256,
        }))
    }

    /// What changes whenever the key or the pin does (a fresh nonce per
    /// seal), to rebuild a client only then.
    pub fn generation(&self) -> (Option<&[u8]>, Option<&[u8]>) {
        (
            self.relay_key_nonce.as_deref(),
            self.relay_cert_sha256.as_deref(),
        )
    }
}

/// A fresh relay key for an instance (32 random bytes, hex), stored
/// encrypted, the previous pin forgotten until the node reports its
/// certificate; returns the key's SHA-256 (hex), which is all the node gets.
pub async fn issue_key(
    db: impl PgExecutor<'_>,
    keys: &Keyring,
    instance_id: Uuid,
) -> Result<String, CredentialsError> {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| CryptoError::Random)?;
    let key = hex::encode(bytes);
    let sealed = keys.seal_relay_key(instance_id, key.as_bytes())?;
    sqlx::query!(
        "UPDATE instances SET relay_key_version = $2, relay_key_nonce = $3, relay_key_ciphertext = $4,
                relay_cert_sha256 = NULL
          WHERE id = $1",
        instance_id,
        sealed.key_version,
        sealed.nonce,
        sealed.ciphertext,
    )
    .execute(db)
    .await?;
    Ok(hex::encode(digest(&SHA256, key.as_bytes())))
}

/// Records the SHA-256 of the relay's certificate, as the node reported it
/// over SSH (whose host key is pinned).
pub async fn pin_certificate(
    db: impl PgExecutor<'_>,
    instance_id: Uuid,
    cert_sha256: [u8; 32],
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE instances SET relay_cert_sha256 = $2 WHERE id = $1",
        instance_id,
        cert_sha256.as_slice(),
    )
    .execute(db)
    .await?;
    Ok(())
}

/// The access to an instance's relay, once it has a key and a pin.
pub async fn load(
    db: impl PgExecutor<'_>,
    keys: &Keyring,
    instance_id: Uuid,
) -> Result<Option<RelayAccess>, CredentialsError> {
    let row = sqlx::query_as!(
        StoredRelay,
        "SELECT relay_key_version, relay_key_nonce, relay_key_ciphertext, relay_cert_sha256
           FROM instances WHERE id = $1",
        instance_id,
    )
    .fetch_optional(db)
    .await?;
    match row {
        Some(row) => Ok(row.open(keys, instance_id)?),
        None => Ok(None),
    }
}

/// Re-encrypts with the current key every relay key written with another
/// key version; returns how many rows changed (see
/// [`crate::huggingface::rotate`]).
pub async fn rotate(db: &PgPool, keys: &Keyring) -> Result<u64, CredentialsError> {
    let stale = sqlx::query_scalar!(
        "SELECT id FROM instances WHERE relay_key_version <> $1",
        keys.current_version(),
    )
    .fetch_all(db)
    .await?;
    let mut changed = 0;
    for id in stale {
        let mut tx = db.begin().await?;
        // Not NULL once the version is (a key is written whole).
        let row = sqlx::query!(
            r#"SELECT relay_key_version AS "key_version!", relay_key_nonce AS "nonce!",
                      relay_key_ciphertext AS "ciphertext!"
                 FROM instances
                WHERE id = $1 AND relay_key_version <> $2 FOR UPDATE"#,
            id,
            keys.current_version(),
        )
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            continue;
        };
        let sealed = Sealed {
            key_version: row.key_version,
            nonce: row.nonce,
            ciphertext: row.ciphertext,
        };
        let plain = keys.open_relay_key(id, &sealed)?;
        let sealed = keys.seal_relay_key(id, &plain)?;
        sqlx::query!(
            "UPDATE instances SET relay_key_version = $2, relay_key_nonce = $3, relay_key_ciphertext = $4
              WHERE id = $1",
            id,
            sealed.key_version,
            sealed.nonce,
            sealed.ciphertext,
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        changed += 1;
    }
    Ok(changed)
}

/// The engine's base URL on a node: its relay, over TLS.
pub fn base_url(ip: &str, port: u16) -> String {
    if ip.contains(':') {
        format!("https://[{ip}]:{port}")
    } else {
        format!("https://{ip}:{port}")
    }
}

/// Why a pinned client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    #[error("HTTP client: {0}")]
    Http(#[from] reqwest::Error),
    #[error("the relay key is not a valid header value")]
    Key,
}

/// `builder` (the caller's timeouts and pool settings) made into a client
/// for one instance's relay: TLS accepting exactly the pinned certificate
/// ([`pinned_tls`]), HTTPS only, no redirects (a 3xx is the worker's
/// answer, never followed), and the relay key on every request
/// ([`key_header`]).
pub fn pinned_client(
    builder: reqwest::ClientBuilder,
    access: &RelayAccess,
) -> Result<reqwest::Client, ClientError> {
    let mut headers = HeaderMap::new();
    headers.insert(RELAY_KEY_HEADER, key_header(access)?);
    let mut tls = pinned_tls(access)?;
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(builder
        .use_preconfigured_tls(tls)
        .https_only(true)
        .redirect(reqwest::redirect::Policy::none())
        .default_headers(headers)
        .build()?)
}

/// The TLS of a client of one instance's relay: exactly the pinned
/// certificate is accepted (whatever its name or dates); no ALPN (the
/// caller's HTTP client sets its own).
pub fn pinned_tls(access: &RelayAccess) -> Result<rustls::ClientConfig, ClientError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(
        rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinnedCertificate {
                sha256: access.cert_sha256,
                provider,
            }))
            .with_no_client_auth(),
    )
}

/// The relay key as the value of [`RELAY_KEY_HEADER`], marked sensitive
/// (never in a `Debug` output).
pub fn key_header(access: &RelayAccess) -> Result<HeaderValue, ClientError> {
    let mut key =
        HeaderValue::from_str(access.key.expose_secret()).map_err(|_| ClientError::Key)?;
    key.set_sensitive(true);
    Ok(key)
}

/// Accepts the one certificate whose SHA-256 is pinned, whatever its name
/// or dates (it is self-signed on the node), and checks that the server
/// holds its private key (the handshake signature).
#[derive(Debug)]
struct PinnedCertificate {
    sha256: [u8; 32],
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedCertificate {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if digest(&SHA256, end_entity.as_ref()).as_ref() == self.sha256.as_slice() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn the_key_never_shows_in_a_debug_output() {
        let key = "9f".repeat(32);
        let access = RelayAccess {
            key: key.clone().into(),
            cert_sha256: [7; 32],
        };
        let client = pinned_client(reqwest::Client::builder(), &access).unwrap();
        for shown in [format!("{client:?}"), format!("{access:?}")] {
            assert!(!shown.contains(&key), "{shown}");
        }
        assert!(format!("{client:?}").contains(RELAY_KEY_HEADER));
    }

    #[test]
    fn base_urls_are_https_with_ipv6_in_brackets() {
        assert_eq!(base_url("10.0.0.5", 8000), "https://10.0.0.5:8000");
        assert_eq!(base_url("2001:db8::1", 8000), "https://[2001:db8::1]:8000");
    }
}
