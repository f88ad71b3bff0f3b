//! The HTTP calls tests make to the API: log in, set up an organization,
//! deploy, act on instances.

use serde_json::{json, Value};
use uuid::Uuid;

use inventiv_testkit::fake_scaleway::FakeScaleway;

use super::{Stack, MODEL};

impl Stack {
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.api))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// A service's timeline as the API answers it (newest first).
    pub async fn service_events(&self, token: &str, service: Uuid) -> Vec<Value> {
        let (status, events) = self
            .call(
                reqwest::Method::GET,
                &format!("/services/{service}/events"),
                token,
                None,
            )
            .await;
        assert_eq!(status, 200, "{events}");
        events.as_array().unwrap().clone()
    }

    /// Creates an API key named `name` and waits until `/v1/models` lists
    /// the model with it (a ready instance is routed); returns the key.
    pub async fn routed_key(&self, session: &str, name: &str) -> String {
        let (status, created) = self
            .call(
                reqwest::Method::POST,
                "/api-keys",
                session,
                Some(json!({ "name": name })),
            )
            .await;
        assert_eq!(status, 201, "{created}");
        let key = created["key"].as_str().unwrap().to_owned();
        self.until(
            "the model to be routed",
            std::time::Duration::from_secs(30),
            || {
                let req = self
                    .http
                    .get(format!("{}/v1/models", self.api))
                    .bearer_auth(&key)
                    .send();
                async move {
                    let models: Value = req.await.ok()?.json().await.ok()?;
                    models["data"]
                        .as_array()?
                        .iter()
                        .any(|m| m["id"] == MODEL)
                        .then_some(())
                }
            },
        )
        .await;
        key
    }

    /// Logs in as the admin, creates a team organization, activates the
    /// mock catalog items; returns the session token.
    pub async fn team(&self) -> String {
        self.team_with(
            "E2E",
            &[
                ("provider", "mock"),
                ("zone", "8a1d0000-0000-4000-8000-000000000001"),
                ("zone", "8a1d0000-0000-4000-8000-000000000002"),
                ("instance_type", "8a1e0000-0000-4000-8000-000000000001"),
                ("model", "8a1f0000-0000-4000-8000-000000000001"),
            ],
        )
        .await
    }

    /// Logs in as the admin, creates the team organization `name`, switches
    /// to it and activates the catalog `items` (kind, id) technically and
    /// economically; returns the session token.
    async fn team_with(&self, name: &str, items: &[(&str, &str)]) -> String {
        let res = self
            .http
            .post(format!("{}/auth/login", self.api))
            .json(
                &json!({ "email": "admin@inventiv.test", "password": "admin-password-for-tests" }),
            )
            .send()
            .await
            .unwrap();
        let token = res.json::<Value>().await.unwrap()["access_token"]
            .as_str()
            .unwrap()
            .to_owned();
        let (_, org) = self
            .call(
                reqwest::Method::POST,
                "/organizations",
                &token,
                Some(json!({ "name": name })),
            )
            .await;
        let (_, switched) = self
            .call(
                reqwest::Method::PUT,
                "/organizations/current",
                &token,
                Some(json!({ "organization_id": org["id"] })),
            )
            .await;
        let token = switched["access_token"].as_str().unwrap().to_owned();
        for (kind, item) in items {
            let (s, body) = self
                .call(
                    reqwest::Method::PUT,
                    &format!("/organizations/current/activations/{kind}/{item}"),
                    &token,
                    Some(json!({ "technical": true, "economic": true })),
                )
                .await;
            assert_eq!(s, 200, "{kind}: {body}");
        }
        token
    }

    /// `POST /deployments` of the mock model, under the request id
    /// `request_id` when given (`x-request-id`); returns the instance id.
    pub async fn deploy(&self, token: &str, request_id: Option<&str>) -> Uuid {
        deploy_mock(&self.http, &self.api, token, request_id).await
    }

    /// Deploys the mock model and waits (at most `within`) until the
    /// instance is `ready`; returns its id.
    pub async fn deploy_ready(&self, token: &str, within: std::time::Duration) -> Uuid {
        let id = self.deploy(token, None).await;
        self.wait_status(id, "ready", within).await;
        id
    }

    /// `GET /instances/{id}`.
    pub async fn instance(&self, token: &str, id: Uuid) -> Value {
        let (status, instance) = self
            .call(
                reqwest::Method::GET,
                &format!("/instances/{id}"),
                token,
                None,
            )
            .await;
        assert_eq!(status, 200, "{instance}");
        instance
    }

    /// `n` deployments at once; their instance ids in no particular order.
    pub async fn deploy_many(&self, token: &str, n: usize) -> Vec<Uuid> {
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..n {
            let (http, api, token) = (self.http.clone(), self.api.clone(), token.to_owned());
            set.spawn(async move { deploy_mock(&http, &api, &token, None).await });
        }
        set.join_all().await
    }

    /// Asks for the termination of every instance of `ids` at once.
    pub async fn terminate_many(&self, token: &str, ids: &[Uuid]) {
        let mut set = tokio::task::JoinSet::new();
        for id in ids {
            let (http, api, token) = (self.http.clone(), self.api.clone(), token.to_owned());
            let id = *id;
            set.spawn(async move {
                let res = http
                    .delete(format!("{api}/instances/{id}"))
                    .bearer_auth(token)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(res.status().as_u16(), 202);
            });
        }
        set.join_all().await;
    }

    /// An action on an instance (`DELETE /instances/{id}`, `POST .../reinstall`).
    pub async fn act(&self, token: &str, method: reqwest::Method, path: &str) {
        let (status, body) = self.call(method, path, token, None).await;
        assert_eq!(status, 202, "{path}: {body}");
    }

    /// A team organization with the Scaleway catalog items activated and its
    /// own credentials (accepted by the fake); returns (token, secret key,
    /// project id).
    pub async fn scaleway_team(&self, name: &str, fake: &FakeScaleway) -> (String, String, String) {
        let h = self;
        let token = h
            .team_with(
                name,
                &[
                    ("provider", "scaleway"),
                    ("zone", "8a1d0000-0000-4000-8000-000000000012"),
                    ("instance_type", "8a1e0000-0000-4000-8000-000000000011"),
                    ("model", "8a1f0000-0000-4000-8000-000000000001"),
                ],
            )
            .await;
        let (secret, project) = (Uuid::new_v4().to_string(), Uuid::new_v4());
        fake.accept(&secret, &project.to_string());
        let (s, body) = h
        .call(
            reqwest::Method::PUT,
            "/organizations/current/providers/scaleway/credentials",
            &token,
            Some(json!({ "access_key": "SCWE2EE2EE2EE2EE2EE2", "secret_key": secret, "project_id": project,
                         "organization_id": Uuid::new_v4(), "default_zone": "fr-par-2" })),
        )
        .await;
        assert_eq!(s, 200, "{body}");
        (token, secret, project.to_string())
    }

    /// `POST /deployments` of the model on Scaleway (fr-par-2, L4-1-24G).
    pub async fn deploy_scaleway(&self, token: &str) -> Uuid {
        let h = self;
        let (status, instance) = h
        .call(
            reqwest::Method::POST,
            "/deployments",
            token,
            Some(json!({ "provider": "scaleway", "zone": "fr-par-2", "instance_type": "L4-1-24G", "model_id": MODEL })),
        )
        .await;
        assert_eq!(status, 202, "{instance}");
        Uuid::parse_str(instance["id"].as_str().unwrap()).unwrap()
    }

    /// [`Stack::deploy_scaleway`], then waits (at most `within`) until the
    /// instance is `ready`.
    pub async fn deploy_scaleway_ready(&self, token: &str, within: std::time::Duration) -> Uuid {
        let id = self.deploy_scaleway(token).await;
        self.wait_status(id, "ready", within).await;
        id
    }
}

/// `POST /deployments` of the mock model to the API at `api`.
async fn deploy_mock(
    http: &reqwest::Client,
    api: &str,
    token: &str,
    request_id: Option<&str>,
) -> Uuid {
    let mut req = http.post(format!("{api}/deployments")).bearer_auth(token);
    if let Some(rid) = request_id {
        req = req.header("x-request-id", rid);
    }
    let res = req
        .json(&json!({ "provider": "mock", "zone": "mock-zone-1", "instance_type": "mock-1gpu-24g", "model_id": MODEL }))
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    assert_eq!(status, 202, "{body}");
    Uuid::parse_str(body["id"].as_str().unwrap()).unwrap()
}

/// The `scaled` entries of a timeline (newest first), oldest first:
/// (from, to, reason).
pub fn scalings(events: &[Value]) -> Vec<(i64, i64, String)> {
    events
        .iter()
        .rev()
        .filter(|e| e["kind"] == "scaled")
        .map(|e| {
            (
                e["from_replicas"].as_i64().unwrap(),
                e["to_replicas"].as_i64().unwrap(),
                e["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}
