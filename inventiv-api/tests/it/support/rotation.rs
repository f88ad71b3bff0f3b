//! Rotating the encryption key: the two keys the tests use, and a second
//! process on key 2 (key 1 kept as the previous one), which rewrites every
//! encrypted row at start-up.

use inventiv_store::crypto::Keyring;

use super::TestApp;

pub const KEY_1: &str = "1111111111111111111111111111111111111111111111111111111111111111";
pub const KEY_2: &str = "2222222222222222222222222222222222222222222222222222222222222222";

/// An app whose secrets are encrypted with key 1 (version 1).
pub async fn app_on_key_1() -> TestApp {
    TestApp::spawn_with(&[("INVENTIV_ENCRYPTION_KEY", KEY_1)]).await
}

/// Starts a replica of `app` on key 2 and checks that it re-encrypted the
/// `rows` rows `versions` reads (`SELECT key_version, ciphertext ...` in a
/// stable order): each goes from version 1 to 2 with a new ciphertext.
pub async fn rotated_to_key_2(app: &TestApp, versions: &str, rows: usize) -> TestApp {
    let read = || async {
        sqlx::query_as::<_, (i32, Vec<u8>)>(versions)
            .fetch_all(&app.state.db)
            .await
            .expect("encrypted rows")
    };
    let before = read().await;
    assert_eq!(before.len(), rows);
    assert!(before.iter().all(|(v, _)| *v == 1), "all on key 1 first");
    let rotated = app
        .replica_with(&[
            ("INVENTIV_ENCRYPTION_KEY", KEY_2),
            ("INVENTIV_ENCRYPTION_KEY_VERSION", "2"),
            ("INVENTIV_ENCRYPTION_KEY_PREVIOUS", KEY_1),
        ])
        .await;
    let after = read().await;
    assert_eq!(after.len(), rows);
    for ((_, old), (version, new)) in before.iter().zip(&after) {
        assert_eq!(*version, 2);
        assert_ne!(old, new);
    }
    rotated
}

/// Key 2 alone and key 1 alone: after the rotation the first opens every
/// row, the second none.
pub fn single_keys() -> (Keyring, Keyring) {
    (
        Keyring::from_hex(KEY_2, 2, None).expect("key 2"),
        Keyring::from_hex(KEY_1, 1, None).expect("key 1"),
    )
}
