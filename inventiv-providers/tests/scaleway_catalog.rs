//! The catalog of (fake) Scaleway: more than 100 GPU types over several
//! pages of products and of availability (50 per page unless asked, the
//! total in `X-Total-Count`), each imported with its GPU count, VRAM and
//! RAM (binary gigabytes on the wire), its price as the JSON number
//! Scaleway wrote, and its availability (a type missing from the
//! availability answer counts as available); CPU types are left out.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

mod scw;

use std::time::Duration;

use inventiv_testkit::fake_scaleway::{FakeOffer, FakeScaleway};
use scw::{provider, VM_IP, ZONE};

fn offer(i: usize) -> FakeOffer {
    let gpu = if i % 10 == 9 { 0 } else { 1 + (i % 4) as u32 };
    FakeOffer {
        code: format!("GPU{i:03}-{gpu}-48G"),
        gpu,
        gpu_memory_gib: if gpu > 0 { 24 + (i % 3) as u64 * 24 } else { 0 },
        ncpus: 8 * (1 + (i % 4) as u32),
        ram_gib: 96,
        hourly_price: format!("{}.{:04}", i % 7, i * 37 % 10_000),
        availability: match i % 5 {
            0 => "shortage",
            1 => "scarce",
            2 => "unknown",
            _ => "available",
        }
        .into(),
    }
}

#[tokio::test]
async fn every_gpu_type_of_every_page_is_imported_with_its_size_price_and_availability() {
    let fake = FakeScaleway::start(VM_IP, Duration::ZERO).await;
    let configured: Vec<FakeOffer> = (0..260).map(offer).collect();
    fake.set_offers(configured.clone());
    let (p, _, _) = provider(&fake);

    let offers = p.offers(ZONE).await.unwrap();
    let gpus: Vec<&FakeOffer> = configured.iter().filter(|o| o.gpu > 0).collect();
    assert!(gpus.len() > 100);
    assert_eq!(offers.len(), gpus.len(), "every GPU type, no CPU type");
    for expected in gpus {
        let got = offers.iter().find(|o| o.code == expected.code).unwrap();
        assert_eq!(got.gpu_count, expected.gpu);
        assert_eq!(got.vram_per_gpu_gb, expected.gpu_memory_gib);
        assert_eq!(got.ram_gb, 96);
        assert_eq!(got.vcpu, expected.ncpus);
        let price: f64 = got.hourly_price.parse().unwrap();
        let wanted: f64 = expected.hourly_price.parse().unwrap();
        assert!(
            (price - wanted).abs() < 1e-12,
            "{} vs {}",
            got.hourly_price,
            expected.hourly_price
        );
        assert_eq!(
            got.available,
            expected.availability != "shortage",
            "{}: {}",
            got.code,
            expected.availability
        );
    }
    let pages = |suffix: &str| {
        fake.calls()
            .iter()
            .filter(|c| c.path.ends_with(suffix))
            .count()
    };
    assert_eq!(pages("/products/servers"), 3, "260 types, 100 per page");
    assert_eq!(pages("/availability"), 3, "availability is paged too");
}
