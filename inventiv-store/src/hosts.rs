//! An organization's hosts (its own GPU servers, the `ssh` provider): the
//! SSH key the control plane logs in to them with, and the writes of a
//! host's status with its history row. The key pair is made on first need
//! with `ssh-keygen` (as the orchestrator's own), its private half stored
//! only encrypted (see [`crate::crypto`]) and written to disk only for the
//! length of a connection ([`crate::host_check`]).

use std::path::{Path, PathBuf};

use base64::Engine as _;
use inventiv_common::HostStatus;
use ring::digest::{digest, SHA256};
use secrecy::SecretString;
use sqlx::{PgConnection, PgExecutor, PgPool};
use uuid::Uuid;

use crate::credentials::CredentialsError;
use crate::crypto::{CryptoError, Keyring, Sealed};

/// Why an organization's key could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(transparent)]
    Stored(#[from] CredentialsError),
    #[error("ssh-keygen: {0}")]
    Keygen(#[from] std::io::Error),
}

impl From<sqlx::Error> for KeyError {
    fn from(e: sqlx::Error) -> KeyError {
        KeyError::Stored(e.into())
    }
}

impl From<CryptoError> for KeyError {
    fn from(e: CryptoError) -> KeyError {
        KeyError::Stored(e.into())
    }
}

/// An organization's SSH key pair, decrypted.
pub struct OrgKey {
    /// The OpenSSH public key line to put in `authorized_keys`.
    pub public: String,
    /// The OpenSSH private key file's content.
    pub private: SecretString,
}

impl std::fmt::Debug for OrgKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrgKey")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

struct KeyRow {
    public_key: String,
    key_version: i32,
    nonce: Vec<u8>,
    ciphertext: Vec<u8>,
}

impl KeyRow {
    fn sealed(self) -> (String, Sealed) {
        (
            self.public_key,
            Sealed {
                key_version: self.key_version,
                nonce: self.nonce,
                ciphertext: self.ciphertext,
            },
        )
    }
}

/// The organization's key pair, made (and stored) if it has none yet.
/// Two callers racing make one key each; the first stored wins and both
/// get it.
pub async fn ensure_key(
    db: &PgPool,
    keys: &Keyring,
    organization_id: Uuid,
    scratch: &Path,
) -> Result<OrgKey, KeyError> {
    if let Some(key) = load_key(db, keys, organization_id).await? {
        return Ok(key);
    }
    let (private, public) = generate(scratch, organization_id).await?;
    let sealed = keys.seal_ssh_key(organization_id, private.as_bytes())?;
    sqlx::query!(
        "INSERT INTO organization_ssh_keys (organization_id, public_key, key_version, nonce, ciphertext)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (organization_id) DO NOTHING",
        organization_id,
        public,
        sealed.key_version,
        sealed.nonce,
        sealed.ciphertext,
    )
    .execute(db)
    .await?;
    load_key(db, keys, organization_id)
        .await?
        .ok_or_else(|| KeyError::Keygen(std::io::Error::other("the stored key vanished")))
}

/// The organization's key pair, if it has one.
pub async fn load_key(
    db: impl PgExecutor<'_>,
    keys: &Keyring,
    organization_id: Uuid,
) -> Result<Option<OrgKey>, KeyError> {
    let row = sqlx::query_as!(
        KeyRow,
        "SELECT public_key, key_version, nonce, ciphertext FROM organization_ssh_keys
          WHERE organization_id = $1",
        organization_id,
    )
    .fetch_optional(db)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let (public, sealed) = row.sealed();
    let plain = keys.open_ssh_key(organization_id, &sealed)?;
    let private = String::from_utf8(plain).map_err(|_| CryptoError::Undecryptable)?;
    Ok(Some(OrgKey {
        public,
        private: private.into(),
    }))
}

/// An SSH client that logs in with an organization's key: the key is on
/// disk, mode 600, in a private scratch directory only until [`OrgSsh::close`].
pub struct OrgSsh {
    dir: Scratch,
    pub ssh: crate::ssh::Ssh,
}

impl OrgSsh {
    /// Writes the key under `parent` and prepares the client.
    pub async fn open(
        parent: &Path,
        key: &OrgKey,
        connect_timeout: std::time::Duration,
    ) -> std::io::Result<OrgSsh> {
        use secrecy::ExposeSecret;
        use tokio::io::AsyncWriteExt;
        let dir = Scratch::new(parent).await?;
        let key_file = dir.0.join("id_ed25519");
        let written = async {
            let mut file = tokio::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&key_file)
                .await?;
            file.write_all(key.private.expose_secret().as_bytes())
                .await?;
            file.shutdown().await
        }
        .await;
        if let Err(e) = written {
            dir.remove().await?;
            return Err(e);
        }
        let ssh = crate::ssh::Ssh {
            key: key_file,
            work_dir: dir.0.clone(),
            connect_timeout,
        };
        Ok(OrgSsh { dir, ssh })
    }

    /// Removes the key and the connections' files.
    pub async fn close(self) -> std::io::Result<()> {
        self.dir.remove().await
    }
}

/// A private directory under `parent`, removed by [`Scratch::remove`].
pub(crate) struct Scratch(pub(crate) PathBuf);

impl Scratch {
    pub(crate) async fn new(parent: &Path) -> std::io::Result<Scratch> {
        tokio::fs::create_dir_all(parent).await?;
        let dir = parent.join(Uuid::new_v4().simple().to_string());
        tokio::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .await?;
        Ok(Scratch(dir))
    }

    pub(crate) async fn remove(self) -> std::io::Result<()> {
        tokio::fs::remove_dir_all(&self.0).await
    }
}

/// Makes an Ed25519 pair with ssh-keygen in a private scratch directory;
/// returns (private key file, public key line).
async fn generate(scratch: &Path, organization_id: Uuid) -> Result<(String, String), KeyError> {
    let dir = Scratch::new(scratch).await?;
    let file = dir.0.join("id_ed25519");
    let made = async {
        let status = tokio::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", ""])
            .arg("-C")
            .arg(format!("inventiv-org-{organization_id}"))
            .arg("-f")
            .arg(&file)
            .stdin(std::process::Stdio::null())
            .status()
            .await?;
        if !status.success() {
            return Err(std::io::Error::other(
                "ssh-keygen failed (install Debian's openssh-client)",
            ));
        }
        let private = tokio::fs::read_to_string(&file).await?;
        let public = tokio::fs::read_to_string(file.with_extension("pub")).await?;
        Ok((private, public.trim().to_owned()))
    }
    .await;
    dir.remove().await?;
    Ok(made?)
}

/// Re-encrypts with the current key every organization key written with
/// another key version; returns how many rows changed.
pub async fn rotate(db: &PgPool, keys: &Keyring) -> Result<u64, CredentialsError> {
    let stale = sqlx::query_scalar!(
        "SELECT organization_id FROM organization_ssh_keys WHERE key_version <> $1",
        keys.current_version(),
    )
    .fetch_all(db)
    .await?;
    let mut changed = 0;
    for org in stale {
        let mut tx = db.begin().await?;
        let row = sqlx::query_as!(
            KeyRow,
            "SELECT public_key, key_version, nonce, ciphertext FROM organization_ssh_keys
              WHERE organization_id = $1 AND key_version <> $2 FOR UPDATE",
            org,
            keys.current_version(),
        )
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else { continue };
        let plain = keys.open_ssh_key(org, &row.sealed().1)?;
        let sealed = keys.seal_ssh_key(org, &plain)?;
        sqlx::query!(
            "UPDATE organization_ssh_keys SET key_version = $2, nonce = $3, ciphertext = $4
              WHERE organization_id = $1",
            org,
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

/// One entry of a host's timeline to write.
pub struct Change<'a> {
    pub host_id: Uuid,
    pub organization_id: Uuid,
    pub from: Option<HostStatus>,
    pub to: HostStatus,
    pub reason: &'a str,
    /// None: the control plane itself.
    pub actor: Option<Uuid>,
    pub request_id: Option<String>,
}

/// Sets the host's status (when it changes) and appends the history row,
/// in the caller's transaction.
pub async fn record(conn: &mut PgConnection, change: Change<'_>) -> Result<(), sqlx::Error> {
    if change.from != Some(change.to) {
        sqlx::query!(
            "UPDATE hosts SET status = $3, updated_at = now(),
                    removed_at = CASE WHEN $3 = 'removed' THEN now() END
              WHERE id = $1 AND organization_id = $2",
            change.host_id,
            change.organization_id,
            change.to as HostStatus,
        )
        .execute(&mut *conn)
        .await?;
    }
    let reason: String = change.reason.chars().take(500).collect();
    sqlx::query!(
        "INSERT INTO host_state_history (host_id, organization_id, from_status, to_status, reason, actor_user_id, request_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        change.host_id,
        change.organization_id,
        change.from as Option<HostStatus>,
        change.to as HostStatus,
        reason,
        change.actor,
        change.request_id,
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The OpenSSH fingerprint (`SHA256:…`) of the first key of a known_hosts
/// text, as `ssh-keygen -l` shows it.
pub fn fingerprint(known_hosts: &str) -> Option<String> {
    let line = known_hosts
        .lines()
        .find(|l| !l.trim().is_empty() && !l.starts_with('#'))?;
    let blob = line.split_whitespace().nth(2)?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(blob)
        .ok()?;
    let hash = digest(&SHA256, &bytes);
    Some(format!(
        "SHA256:{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(hash.as_ref())
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_as_ssh_keygen() {
        // ssh-keygen -lf of this key prints this fingerprint.
        let line = "inventiv-x ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOcZQYeLicyUabVYKgEu2XX5sPxI6wB7hauiymIkmoEg";
        assert_eq!(
            fingerprint(line).as_deref(),
            Some("SHA256:4cHGJS+OO8tQYmvPt6xHi4WfBDAWuewfFE1icgcLRX4")
        );
        assert_eq!(fingerprint(""), None);
        assert_eq!(fingerprint("alias ssh-ed25519 !!!"), None);
    }
}
