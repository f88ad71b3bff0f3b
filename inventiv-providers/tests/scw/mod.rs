//! Shared by the Scaleway test files: a provider for a fresh project of
//! the fake Scaleway, a create request and the orchestrator-like SSH key.

#![allow(dead_code, reason = "each test file uses a part")]

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use inventiv_providers::scaleway::{Credentials, RetryPolicy, ScalewayProvider, Settings};
use inventiv_providers::CreateServer;
use inventiv_testkit::fake_scaleway::FakeScaleway;
use uuid::Uuid;

pub const ZONE: &str = "fr-par-2";
pub const VM_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 140, 2));
pub const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBq7b8hQ7YkLxq orchestrator@inventiv";

/// Settings pointing at the fake, with quick retries and polls.
pub fn settings(fake: &FakeScaleway) -> Settings {
    Settings {
        base_url: fake.url.clone(),
        retry: RetryPolicy {
            attempts: 4,
            base_delay: Duration::from_millis(5),
        },
        poll_interval: Duration::from_millis(20),
        power_timeout: Duration::from_secs(10),
        ..Settings::default()
    }
}

/// A provider for a fresh project whose key the fake accepts: (provider,
/// secret key, project).
pub fn provider(fake: &FakeScaleway) -> (ScalewayProvider, String, String) {
    provider_with_settings(fake, settings(fake))
}

pub fn provider_with_settings(
    fake: &FakeScaleway,
    settings: Settings,
) -> (ScalewayProvider, String, String) {
    let (secret, project) = (Uuid::new_v4().to_string(), Uuid::new_v4().to_string());
    fake.accept(&secret, &project);
    let p = ScalewayProvider::new(
        reqwest::Client::new(),
        settings,
        credentials(&secret, &project),
    );
    (p, secret, project)
}

pub fn credentials(secret: &str, project: &str) -> Credentials {
    Credentials {
        access_key: "SCWAAAAAAAAAAAAAAAAA".into(),
        secret_key: secret.to_owned().into(),
        project_id: project.to_owned(),
        organization_id: Uuid::new_v4().to_string(),
        default_zone: ZONE.into(),
    }
}

/// A create request for an L4 in the test zone with the default image.
pub fn request() -> CreateServer {
    CreateServer {
        instance_id: Uuid::new_v4(),
        organization_id: Uuid::new_v4(),
        zone: ZONE.into(),
        instance_type: "L4-1-24G".into(),
        name: "inventiv-test".into(),
        image: None,
        tags: Vec::new(),
        root_volume_gb: None,
        ssh_public_key: None,
    }
}
