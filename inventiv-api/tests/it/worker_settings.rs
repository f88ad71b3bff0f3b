//! Worker settings per organization and provider: defaults until set,
//! bounds checked (nothing stored on refusal), one organization's settings
//! invisible to another, unknown providers a 404; the dead-man switch's
//! delay (0, or 300 to 86400 s) and the opt-in Scaleway power-off.

use crate::support::{error_code, TestApp};
use reqwest::Method;
use serde_json::json;

const PATH: &str = "/organizations/current/providers/scaleway/worker-settings";

#[tokio::test]
async fn settings_default_are_bounded_and_per_organization() {
    let app = TestApp::spawn().await;
    let a = app.org("a").await;
    let b = app.org("b").await;
    let defaults = json!({ "mode": "mono", "engine_port": 8000, "agent_port": 8090, "startup_timeout_secs": 900, "bootstrap_attempts": 3,
                          "dead_man_after_s": 1800, "dead_man_poweroff": false });
    let (s, got) = app.get(PATH, Some(&a.owner.token)).await;
    assert_eq!((s.as_u16(), &got), (200, &defaults));

    let bad = [
        json!({ "mode": "dual" }),
        json!({ "engine_port": 80 }),
        json!({ "engine_port": 9000, "agent_port": 9000 }),
        json!({ "startup_timeout_secs": 10 }),
        json!({ "bootstrap_attempts": 0 }),
        json!({ "dead_man_after_s": 299, "dead_man_poweroff": true }),
        json!({ "dead_man_after_s": 86_401 }),
    ];
    for body in bad {
        let (s, _, answer) = app
            .call(Method::PUT, PATH, Some(&a.admin.token), Some(&body))
            .await;
        assert_eq!(
            (s.as_u16(), error_code(&answer)),
            (400, "VALIDATION_ERROR"),
            "{body}"
        );
    }
    let (s, answer) = app
        .put(PATH, Some(&a.admin.token), json!({ "engine_image": "x" }))
        .await;
    assert_eq!(s, 400, "unknown fields are refused: {answer}");
    for body in [
        json!({ "dead_man_after_s": -1 }),
        json!({ "dead_man_after_s": 4_294_967_296_u64 }),
        json!({ "dead_man_poweroff": "yes" }),
    ] {
        let (s, _, answer) = app
            .call(Method::PUT, PATH, Some(&a.admin.token), Some(&body))
            .await;
        assert_eq!(s, 400, "not the field's type: {body} {answer}");
    }
    assert_eq!(
        app.get(PATH, Some(&a.owner.token)).await.1,
        defaults,
        "nothing stored"
    );

    // A field left out takes its default.
    let (s, set) = app
        .put(
            PATH,
            Some(&a.admin.token),
            json!({ "mode": "multi", "engine_port": 8100, "agent_port": 8190 }),
        )
        .await;
    assert_eq!(s, 200, "{set}");
    let expected = json!({ "mode": "multi", "engine_port": 8100, "agent_port": 8190, "startup_timeout_secs": 900, "bootstrap_attempts": 3,
                           "dead_man_after_s": 1800, "dead_man_poweroff": false });
    assert_eq!(app.get(PATH, Some(&a.owner.token)).await.1, expected);
    assert_eq!(
        app.get(PATH, Some(&b.owner.token)).await.1,
        defaults,
        "B keeps its own"
    );
    assert_eq!(
        app.get(
            "/organizations/current/providers/mock/worker-settings",
            Some(&a.owner.token)
        )
        .await
        .1,
        defaults,
        "per provider"
    );

    // The dead-man switch: off (0), the bounds themselves, the opt-in.
    for (after_s, poweroff) in [(0, false), (300, true), (86_400, true)] {
        let body = json!({ "dead_man_after_s": after_s, "dead_man_poweroff": poweroff });
        let (s, _, set) = app
            .call(Method::PUT, PATH, Some(&a.admin.token), Some(&body))
            .await;
        assert_eq!(s, 200, "{body}: {set}");
        let got = app.get(PATH, Some(&a.owner.token)).await.1;
        assert_eq!(
            (
                &got["dead_man_after_s"],
                &got["dead_man_poweroff"],
                &got["mode"]
            ),
            (&json!(after_s), &json!(poweroff), &json!("mono")),
            "{got}"
        );
    }

    let (s, _) = app
        .get(
            "/organizations/current/providers/nowhere/worker-settings",
            Some(&a.owner.token),
        )
        .await;
    assert_eq!(s, 404);
}
