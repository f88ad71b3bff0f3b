//! The SSH key a new server authorizes, delivered as cloud-init user data:
//! Scaleway images log in as `root` and run cloud-init on first boot, so
//! the key goes in a `#cloud-config` with `disable_root: false` (cloud-init
//! then writes `ssh_authorized_keys` for root too, without the "please log
//! in as ..." prefix). Set with `PATCH …/user_data/cloud-init` as
//! `text/plain`, before the first power-on; setting it again is harmless.

use reqwest::Method;

use super::ScalewayProvider;
use crate::error::ProviderError;
use crate::types::ServerRef;

/// The `#cloud-config` authorizing `public_key` (one OpenSSH public key
/// line) for root; `InvalidRequest` for anything else.
pub fn cloud_config(public_key: &str) -> Result<String, ProviderError> {
    let key = public_key.trim();
    let fields: Vec<&str> = key.split_whitespace().collect();
    let plausible = fields.len() >= 2
        && (fields[0].starts_with("ssh-") || fields[0].starts_with("ecdsa-"))
        && !key.contains(['\n', '\r', '"', '\\']);
    if !plausible {
        return Err(ProviderError::InvalidRequest(
            "the SSH public key must be one OpenSSH public key line".into(),
        ));
    }
    Ok(format!(
        "#cloud-config\ndisable_root: false\nssh_authorized_keys:\n  - \"{key}\"\n"
    ))
}

impl ScalewayProvider {
    /// Sets the server's `cloud-init` user data to `text`.
    pub(super) async fn set_user_data(
        &self,
        server: &ServerRef,
        text: &str,
    ) -> Result<(), ProviderError> {
        let path = format!(
            "/instance/v1/zones/{}/servers/{}/user_data/cloud-init",
            server.zone, server.provider_id
        );
        self.http.send_text(Method::PATCH, &path, text).await
    }
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::cloud_config;

    #[test]
    fn the_cloud_config_authorizes_one_key_for_root() {
        let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDj orchestrator@inventiv";
        let text = cloud_config(&format!("{key}\n")).unwrap();
        assert!(text.starts_with("#cloud-config\n"));
        assert!(text.contains("disable_root: false\n"));
        assert!(text.contains(&format!("ssh_authorized_keys:\n  - \"{key}\"\n")));
        for bad in [
            "",
            "not a key",
            "ssh-ed25519 AAAA\nssh-rsa BBBB",
            "ssh-ed25519 \"x",
        ] {
            assert!(cloud_config(bad).is_err(), "{bad:?}");
        }
    }
}
