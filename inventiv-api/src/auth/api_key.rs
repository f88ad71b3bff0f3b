//! API keys: `inv_<public id>_<secret>`. The public id (12 base62
//! characters) finds the row; the SHA-256 of the whole key is compared in
//! constant time; the secret (32 random bytes) is shown once.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::distributions::Alphanumeric;
use rand::{Rng, RngCore};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A freshly made key.
pub struct NewKey {
    /// The whole key, shown to its creator once.
    pub key: String,
    pub public_id: String,
    pub hash: Vec<u8>,
    pub last_four: String,
}

/// Makes a key with 256 bits of secret.
pub fn generate() -> NewKey {
    let mut rng = rand::rngs::OsRng;
    let public_id: String = (0..12)
        .map(|_| char::from(rng.sample(Alphanumeric)))
        .collect();
    let mut secret = [0u8; 32];
    rng.fill_bytes(&mut secret);
    let key = format!("inv_{public_id}_{}", URL_SAFE_NO_PAD.encode(secret));
    let last_four = key[key.len() - 4..].to_owned();
    NewKey {
        hash: hash(&key),
        key,
        public_id,
        last_four,
    }
}

/// The stored form of a key.
pub fn hash(key: &str) -> Vec<u8> {
    Sha256::digest(key.as_bytes()).to_vec()
}

/// The public id of a well-formed key, None for anything else.
pub fn public_id(key: &str) -> Option<&str> {
    let rest = key.strip_prefix("inv_")?;
    let (id, secret) = rest.split_once('_')?;
    let ok = id.len() == 12 && id.bytes().all(|b| b.is_ascii_alphanumeric()) && secret.len() == 43;
    ok.then_some(id)
}

/// Whether `key` matches the stored hash (constant time).
pub fn matches(key: &str, stored: &[u8]) -> bool {
    bool::from(hash(key).as_slice().ct_eq(stored))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let k = generate();
        assert!(k.key.starts_with("inv_"));
        assert_eq!(public_id(&k.key), Some(k.public_id.as_str()));
        assert!(matches(&k.key, &k.hash));
        let mut wrong = k.key.clone();
        wrong.pop();
        wrong.push('x');
        assert!(!matches(&wrong, &k.hash) || wrong == k.key);
        assert_eq!(public_id("inv_short_x"), None);
        assert_eq!(public_id("sk-123"), None);
        assert_ne!(generate().key, k.key);
    }
}
