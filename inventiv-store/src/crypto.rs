//! Encryption of secrets at rest (provider credentials, Hugging Face
//! tokens): AES-256-GCM with a random 96-bit nonce per write and associated
//! data that binds the ciphertext to what it is and whose it is (a row
//! copied to another organization, provider or kind of secret does not
//! decrypt). Keys carry a version so they can be rotated: the current key
//! encrypts, the previous one still decrypts rows not yet re-encrypted (see
//! [`crate::credentials::rotate`], [`crate::huggingface::rotate`]).

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use uuid::Uuid;

/// The development key used when none is configured (the API refuses it
/// in production).
pub const DEV_KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

/// Why a key could not be built or a ciphertext opened.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("an encryption key must be 64 hex characters (32 bytes)")]
    BadKey,
    #[error("key versions must be 1 to 32767, the previous one below the current one")]
    BadVersion,
    #[error("no key of version {0} is configured")]
    UnknownVersion(i32),
    #[error("the ciphertext does not decrypt with its key and binding")]
    Undecryptable,
    #[error("the system random generator failed")]
    Random,
}

/// One AES-256 key and its version.
struct VersionedKey {
    version: i32,
    key: LessSafeKey,
}

impl VersionedKey {
    fn from_hex(hex_key: &str, version: i32) -> Result<VersionedKey, CryptoError> {
        let bytes = hex::decode(hex_key.trim()).map_err(|_| CryptoError::BadKey)?;
        let unbound = UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| CryptoError::BadKey)?;
        Ok(VersionedKey {
            version,
            key: LessSafeKey::new(unbound),
        })
    }
}

/// The keys of this deployment: the current one (encrypts and decrypts) and
/// optionally the previous one (decrypts only, during a rotation).
pub struct Keyring {
    current: VersionedKey,
    previous: Option<VersionedKey>,
    random: SystemRandom,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("current_version", &self.current.version)
            .field(
                "previous_version",
                &self.previous.as_ref().map(|k| k.version),
            )
            .finish_non_exhaustive()
    }
}

/// A sealed secret as stored: the key version, the nonce and the
/// ciphertext with its authentication tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub key_version: i32,
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

impl Keyring {
    /// The current key (hex) with its version, and the previous key (hex),
    /// whose version is one less.
    pub fn from_hex(
        current: &str,
        version: i32,
        previous: Option<&str>,
    ) -> Result<Keyring, CryptoError> {
        if !(1..=32767).contains(&version) || (previous.is_some() && version == 1) {
            return Err(CryptoError::BadVersion);
        }
        Ok(Keyring {
            current: VersionedKey::from_hex(current, version)?,
            previous: previous
                .map(|p| VersionedKey::from_hex(p, version - 1))
                .transpose()?,
            random: SystemRandom::new(),
        })
    }

    /// The version new ciphertexts are written with.
    pub fn current_version(&self) -> i32 {
        self.current.version
    }

    /// Encrypts `plaintext` for one organization and provider.
    pub fn seal(
        &self,
        organization_id: Uuid,
        provider: &str,
        plaintext: &[u8],
    ) -> Result<Sealed, CryptoError> {
        self.seal_bound(&provider_binding(organization_id, provider), plaintext)
    }

    /// Decrypts what [`Keyring::seal`] produced for the same organization
    /// and provider, with whichever configured key has its version.
    pub fn open(
        &self,
        organization_id: Uuid,
        provider: &str,
        sealed: &Sealed,
    ) -> Result<Vec<u8>, CryptoError> {
        self.open_bound(&provider_binding(organization_id, provider), sealed)
    }

    /// Encrypts an organization's Hugging Face token.
    pub fn seal_huggingface_token(
        &self,
        organization_id: Uuid,
        plaintext: &[u8],
    ) -> Result<Sealed, CryptoError> {
        self.seal_bound(&huggingface_binding(organization_id), plaintext)
    }

    /// Decrypts what [`Keyring::seal_huggingface_token`] produced for the
    /// same organization.
    pub fn open_huggingface_token(
        &self,
        organization_id: Uuid,
        sealed: &Sealed,
    ) -> Result<Vec<u8>, CryptoError> {
        self.open_bound(&huggingface_binding(organization_id), sealed)
    }

    /// Encrypts the key of an instance's relay.
    pub fn seal_relay_key(
        &self,
        instance_id: Uuid,
        plaintext: &[u8],
    ) -> Result<Sealed, CryptoError> {
        self.seal_bound(&relay_binding(instance_id), plaintext)
    }

    /// Decrypts what [`Keyring::seal_relay_key`] produced for the same
    /// instance.
    pub fn open_relay_key(
        &self,
        instance_id: Uuid,
        sealed: &Sealed,
    ) -> Result<Vec<u8>, CryptoError> {
        self.open_bound(&relay_binding(instance_id), sealed)
    }

    /// Encrypts the private half of an organization's SSH key (the key the
    /// control plane logs in to the organization's hosts with).
    pub fn seal_ssh_key(
        &self,
        organization_id: Uuid,
        plaintext: &[u8],
    ) -> Result<Sealed, CryptoError> {
        self.seal_bound(&ssh_key_binding(organization_id), plaintext)
    }

    /// Decrypts what [`Keyring::seal_ssh_key`] produced for the same
    /// organization.
    pub fn open_ssh_key(
        &self,
        organization_id: Uuid,
        sealed: &Sealed,
    ) -> Result<Vec<u8>, CryptoError> {
        self.open_bound(&ssh_key_binding(organization_id), sealed)
    }

    fn seal_bound(&self, binding: &[u8], plaintext: &[u8]) -> Result<Sealed, CryptoError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.random
            .fill(&mut nonce)
            .map_err(|_| CryptoError::Random)?;
        let mut buffer = plaintext.to_vec();
        self.current
            .key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(binding),
                &mut buffer,
            )
            .map_err(|_| CryptoError::Undecryptable)?;
        Ok(Sealed {
            key_version: self.current.version,
            nonce: nonce.to_vec(),
            ciphertext: buffer,
        })
    }

    fn open_bound(&self, binding: &[u8], sealed: &Sealed) -> Result<Vec<u8>, CryptoError> {
        let key = self.key(sealed.key_version)?;
        let nonce = Nonce::try_assume_unique_for_key(&sealed.nonce)
            .map_err(|_| CryptoError::Undecryptable)?;
        let mut buffer = sealed.ciphertext.clone();
        let plain = key
            .key
            .open_in_place(nonce, Aad::from(binding), &mut buffer)
            .map_err(|_| CryptoError::Undecryptable)?;
        Ok(plain.to_vec())
    }

    fn key(&self, version: i32) -> Result<&VersionedKey, CryptoError> {
        if version == self.current.version {
            return Ok(&self.current);
        }
        self.previous
            .as_ref()
            .filter(|k| k.version == version)
            .ok_or(CryptoError::UnknownVersion(version))
    }
}

/// The associated data of provider credentials: what they belong to.
fn provider_binding(organization_id: Uuid, provider: &str) -> Vec<u8> {
    format!("inventiv-provider-credentials:{organization_id}:{provider}").into_bytes()
}

/// The associated data of a relay key: which instance's it is.
fn relay_binding(instance_id: Uuid) -> Vec<u8> {
    format!("inventiv-relay-key:{instance_id}").into_bytes()
}

/// The associated data of an organization's SSH private key: whose it is.
fn ssh_key_binding(organization_id: Uuid) -> Vec<u8> {
    format!("inventiv-ssh-key:{organization_id}").into_bytes()
}

/// The associated data of a Hugging Face token: whose it is.
fn huggingface_binding(organization_id: Uuid) -> Vec<u8> {
    format!("inventiv-huggingface-token:{organization_id}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "0101010101010101010101010101010101010101010101010101010101010101";
    const K2: &str = "0202020202020202020202020202020202020202020202020202020202020202";

    fn ring(current: &str, version: i32, previous: Option<&str>) -> Keyring {
        match Keyring::from_hex(current, version, previous) {
            Ok(k) => k,
            Err(e) => unreachable!("test key: {e}"),
        }
    }

    #[test]
    fn round_trip_and_fresh_nonces() {
        let keys = ring(K1, 1, None);
        let org = Uuid::new_v4();
        let a = keys.seal(org, "scaleway", b"secret").ok();
        let b = keys.seal(org, "scaleway", b"secret").ok();
        assert_ne!(a, b, "each seal draws a new nonce");
        let a = a.unwrap_or_else(|| unreachable!());
        assert!(!a.ciphertext.windows(6).any(|w| w == b"secret"));
        assert_eq!(
            keys.open(org, "scaleway", &a).ok().as_deref(),
            Some(&b"secret"[..])
        );
    }

    #[test]
    fn binding_to_org_and_provider_is_enforced() {
        let keys = ring(K1, 1, None);
        let org = Uuid::new_v4();
        let sealed = keys
            .seal(org, "scaleway", b"secret")
            .unwrap_or_else(|_| unreachable!());
        assert!(keys.open(Uuid::new_v4(), "scaleway", &sealed).is_err());
        assert!(keys.open(org, "mock", &sealed).is_err());
        let mut tampered = sealed.clone();
        tampered.ciphertext[0] ^= 1;
        assert!(keys.open(org, "scaleway", &tampered).is_err());
    }

    #[test]
    fn a_huggingface_token_opens_only_as_its_organizations_token() {
        let keys = ring(K1, 1, None);
        let org = Uuid::new_v4();
        let sealed = keys
            .seal_huggingface_token(org, b"hf_secret")
            .unwrap_or_else(|_| unreachable!());
        assert_eq!(
            keys.open_huggingface_token(org, &sealed).ok().as_deref(),
            Some(&b"hf_secret"[..])
        );
        assert!(keys
            .open_huggingface_token(Uuid::new_v4(), &sealed)
            .is_err());
        // Not interchangeable with provider credentials, either way.
        assert!(keys.open(org, "scaleway", &sealed).is_err());
        let credentials = keys
            .seal(org, "scaleway", b"secret")
            .unwrap_or_else(|_| unreachable!());
        assert!(keys.open_huggingface_token(org, &credentials).is_err());
    }

    #[test]
    fn an_ssh_key_opens_only_as_its_organizations_ssh_key() {
        let keys = ring(K1, 1, None);
        let org = Uuid::new_v4();
        let sealed = keys
            .seal_ssh_key(org, b"-----BEGIN OPENSSH PRIVATE KEY-----")
            .unwrap_or_else(|_| unreachable!());
        assert!(keys.open_ssh_key(org, &sealed).is_ok());
        assert!(keys.open_ssh_key(Uuid::new_v4(), &sealed).is_err());
        assert!(keys.open_huggingface_token(org, &sealed).is_err());
    }

    #[test]
    fn previous_key_decrypts_during_rotation_only() {
        let org = Uuid::new_v4();
        let old = ring(K1, 1, None)
            .seal(org, "scaleway", b"secret")
            .unwrap_or_else(|_| unreachable!());
        let rotating = ring(K2, 2, Some(K1));
        assert_eq!(
            rotating.open(org, "scaleway", &old).ok().as_deref(),
            Some(&b"secret"[..])
        );
        assert!(matches!(
            ring(K2, 2, None).open(org, "scaleway", &old),
            Err(CryptoError::UnknownVersion(1))
        ));
    }

    #[test]
    fn bad_keys_and_versions_are_refused() {
        let table = [
            ("ab", 1, None),
            (&"zz".repeat(32)[..], 1, None),
            (K1, 0, None),
            (K1, 1, Some(K2)),
            (K2, 2, Some("short")),
        ];
        for (key, version, previous) in table {
            assert!(
                Keyring::from_hex(key, version, previous).is_err(),
                "{key} {version}"
            );
        }
    }
}
