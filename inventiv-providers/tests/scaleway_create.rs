//! Creating on (fake) Scaleway: the image label is resolved through the
//! marketplace for the type and zone (cached), an image id is used as is,
//! a label without an image fails before anything is created; quota and
//! stock refusals come back as `Quota` / `OutOfStock` with Scaleway's
//! message; a server adopted after a lost create answer gets the SSH key
//! from `start_server` before it powers on.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

mod scw;

use std::time::Duration;

use inventiv_providers::scaleway::{cloud_config, Settings};
use inventiv_providers::{tags, CloudProvider, CreateServer, ListFilter, ProviderError};
use inventiv_testkit::fake_scaleway::{FakeImage, FakeScaleway, Faults, DEFAULT_IMAGE_ID};
use scw::{provider, provider_with_settings, request, KEY, VM_IP, ZONE};

fn marketplace_calls(fake: &FakeScaleway) -> usize {
    fake.calls()
        .iter()
        .filter(|c| c.path.starts_with("/marketplace/"))
        .count()
}

fn creates(fake: &FakeScaleway) -> usize {
    fake.calls()
        .iter()
        .filter(|c| c.method == "POST" && c.path.ends_with("/servers"))
        .count()
}

#[tokio::test]
async fn image_labels_resolve_per_type_and_zone_and_ids_pass_as_they_are() {
    let fake = FakeScaleway::start(VM_IP, Duration::ZERO).await;
    let other_zone_image = "0d7c9a3e-3a55-4f0b-9a53-8a1f5c1f2b7e";
    let mut images = vec![FakeImage {
        id: other_zone_image.into(),
        label: "ubuntu_jammy_gpu_os_12".into(),
        zone: Some("fr-par-1".into()),
        kind: "instance_sbs".into(),
        compatible_commercial_types: vec!["L4-1-24G".into()],
    }];
    images.extend(FakeImage::defaults());
    fake.set_images(images);
    let (p, _, _) = provider(&fake);

    p.create_server(request()).await.unwrap();
    p.create_server(request()).await.unwrap();
    assert_eq!(
        fake.servers()
            .iter()
            .map(|s| s.image.as_str())
            .collect::<Vec<_>>(),
        vec![DEFAULT_IMAGE_ID; 2],
        "the image of the zone, not fr-par-1's"
    );
    assert_eq!(marketplace_calls(&fake), 1, "resolved once, then cached");

    let explicit = CreateServer {
        image: Some(DEFAULT_IMAGE_ID.into()),
        ..request()
    };
    p.create_server(explicit).await.unwrap();
    assert_eq!(marketplace_calls(&fake), 1, "an image id is not looked up");

    // No image for this type (or label): refused before any create.
    let before = creates(&fake);
    for req in [
        CreateServer {
            instance_type: "DEV1-S".into(),
            ..request()
        },
        CreateServer {
            image: Some("no_such_label".into()),
            ..request()
        },
    ] {
        match p.create_server(req).await {
            Err(ProviderError::InvalidRequest(m)) => assert!(m.contains("no image"), "{m}"),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(creates(&fake), before, "nothing was created");
    assert_eq!(fake.servers().len(), 3);
}

#[tokio::test]
async fn quota_and_stock_refusals_keep_scaleways_message() {
    let fake = FakeScaleway::start(VM_IP, Duration::ZERO).await;
    let (p, _, _) = provider(&fake);
    fake.set_faults(Faults {
        quota_exceeded: 1,
        out_of_stock: 1,
        ..Faults::default()
    });
    match p.create_server(request()).await {
        Err(e @ ProviderError::Quota(_)) => {
            assert!(!e.retryable());
            assert!(
                e.to_string().contains("Quota exceeded for this resource."),
                "{e}"
            );
        }
        other => panic!("{other:?}"),
    }
    match p.create_server(request()).await {
        Err(ProviderError::OutOfStock(m)) => assert!(m.contains("L4-1-24G is out of stock"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(fake.servers().is_empty(), "refused creates leave nothing");

    // Out of stock at power-on too.
    let server = p.create_server(request()).await.unwrap();
    fake.set_faults(Faults {
        out_of_stock: 1,
        ..Faults::default()
    });
    assert!(matches!(
        p.start_server(server.reference()).await,
        Err(ProviderError::OutOfStock(_))
    ));
    p.start_server(server.reference()).await.unwrap();
}

#[tokio::test]
async fn a_server_adopted_after_a_lost_answer_gets_the_key_before_power_on() {
    let fake = FakeScaleway::start(VM_IP, Duration::from_millis(50)).await;
    let settings = Settings {
        ssh_public_key: Some(KEY.into()),
        ..scw::settings(&fake)
    };
    let (p, _, _) = provider_with_settings(&fake, settings);
    fake.set_faults(Faults {
        fail_after_create: 1,
        ..Faults::default()
    });
    let req = CreateServer {
        ssh_public_key: Some(KEY.into()),
        ..request()
    };
    assert!(p.create_server(req.clone()).await.unwrap_err().retryable());
    assert!(
        fake.servers()[0].user_data.is_empty(),
        "the lost answer cut the create short"
    );
    let adopted = p
        .list_servers(ListFilter {
            zone: Some(ZONE.into()),
            tag: Some(tags::instance(req.instance_id)),
        })
        .await
        .unwrap()
        .remove(0);
    p.start_server(adopted.reference()).await.unwrap();
    let server = &fake.servers()[0];
    let sets = &server.user_data_log;
    assert_eq!(sets.len(), 1, "{sets:?}");
    assert_eq!(sets[0].state, "stopped", "set before power-on");
    assert_eq!(sets[0].value, cloud_config(KEY).unwrap());
    assert_ne!(server.state, "stopped");
}
