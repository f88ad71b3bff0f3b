//! Fixtures written straight to the database (fast: one precomputed password
//! hash, sessions opened with the application's own function), and the few
//! set-up steps tests take through the API (activations, API keys).

use inventiv_api::routes::auth::{open_session, Client};
use inventiv_common::{OrgId, OrgRole, UserId};
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

use super::matrix::{MOCK_INSTANCE_TYPE, MOCK_ZONE};
use super::TestApp;

/// The password of every fixture user.
pub const PASSWORD: &str = "fixture-password-42";

/// A user with a live session in some organization.
#[derive(Debug, Clone)]
pub struct Person {
    pub user_id: Uuid,
    pub email: String,
    pub token: String,
    pub refresh_token: String,
    pub session_id: Uuid,
}

/// A team organization with one member of each role, a spare member with the
/// `user` role, a second session of its user, and a pending invitation.
#[derive(Debug, Clone)]
pub struct Org {
    pub id: Uuid,
    pub slug: String,
    pub owner: Person,
    pub admin: Person,
    pub manager: Person,
    pub user: Person,
    pub spare: Person,
    pub invitation_id: Uuid,
    pub invitation_token: String,
    /// An API key created by `spare` (a user).
    pub api_key_id: Uuid,
    pub api_key: String,
    /// An instance of the organization and its worker token, once
    /// [`TestApp::add_instance`] made one (nil and empty until then).
    pub instance_id: Uuid,
    pub worker_token: String,
    /// Once [`TestApp::add_offerings`] ran (nil until then): an offering of
    /// this organization, its share with a third organization (whose slug
    /// is `share_consumer_slug`), and a third organization's offering
    /// shared with this one, not yet accepted.
    pub offering_id: Uuid,
    pub share_id: Uuid,
    pub share_consumer_slug: String,
    pub incoming_offering_id: Uuid,
    /// A soft organization budget (1000 EUR a month, alerts only).
    pub budget_id: Uuid,
    /// A service of the organization (active, 0 to 2 replicas, one
    /// replica in `installing`), once [`TestApp::add_service`] made one
    /// (nil until then).
    pub service_id: Uuid,
    /// A host of the organization (registered, at an address where nothing
    /// answers), once [`TestApp::add_host`] made one (nil until then).
    pub host_id: Uuid,
}

impl Org {
    pub fn member(&self, role: OrgRole) -> &Person {
        match role {
            OrgRole::Owner => &self.owner,
            OrgRole::Admin => &self.admin,
            OrgRole::Manager => &self.manager,
            OrgRole::User => &self.user,
        }
    }
}

impl TestApp {
    /// The hash of [`PASSWORD`], computed once per app.
    async fn fixture_hash(&self) -> String {
        let cached: Option<String> = sqlx::query_scalar(
            "SELECT password_hash FROM users WHERE email LIKE 'fixture-%' LIMIT 1",
        )
        .fetch_optional(&self.state.db)
        .await
        .expect("hash lookup");
        match cached {
            Some(h) => h,
            None => self.state.hasher.hash(PASSWORD).await.expect("hash"),
        }
    }

    /// A new account (with personal organization) whose password is [`PASSWORD`].
    pub async fn person(&self, label: &str) -> (UserId, OrgId, String) {
        let email = format!(
            "fixture-{label}-{}@example.com",
            &Uuid::new_v4().simple().to_string()[..10]
        );
        let hash = self.fixture_hash().await;
        let mut tx = self.state.db.begin().await.expect("tx");
        let parsed = inventiv_common::Email::parse(&email).expect("email");
        let name = inventiv_common::DisplayName::parse(label).expect("name");
        let (user, org) = inventiv_api::accounts::create(&mut tx, &parsed, &name, &hash, false)
            .await
            .expect("account");
        tx.commit().await.expect("commit");
        (user, org, email)
    }

    /// Opens a session for a user in an organization.
    pub async fn session(&self, user: UserId, org: Uuid, email: &str) -> Person {
        let client = Client {
            ip: "127.0.0.9".into(),
            user_agent: Some("fixture".into()),
        };
        let t = open_session(&self.state.db, &self.state, user, OrgId(org), &client)
            .await
            .expect("session");
        Person {
            user_id: user.0,
            email: email.to_owned(),
            token: t.access_token,
            refresh_token: t.refresh_token,
            session_id: t.session_id.0,
        }
    }

    /// A member of `org` with `role`, whose session sits in `org`.
    pub async fn member(&self, org: Uuid, role: OrgRole, label: &str) -> Person {
        let (user, _, email) = self.person(label).await;
        sqlx::query("INSERT INTO organization_memberships (organization_id, user_id, role) VALUES ($1, $2, $3)")
            .bind(org)
            .bind(user.0)
            .bind(role.as_str())
            .execute(&self.state.db)
            .await
            .expect("membership");
        self.session(user, org, &email).await
    }

    /// A team organization populated as described on [`Org`].
    pub async fn org(&self, label: &str) -> Org {
        let (owner_id, _, owner_email) = self.person(&format!("{label}-owner")).await;
        let id = Uuid::new_v4();
        let slug = format!("{label}-{}", &Uuid::new_v4().simple().to_string()[..8]);
        sqlx::query("INSERT INTO organizations (id, name, slug, kind, created_by) VALUES ($1, $2, $3, 'team', $4)")
            .bind(id)
            .bind(format!("Org {label}"))
            .bind(&slug)
            .bind(owner_id.0)
            .execute(&self.state.db)
            .await
            .expect("org");
        sqlx::query("INSERT INTO organization_memberships (organization_id, user_id, role) VALUES ($1, $2, 'owner')")
            .bind(id)
            .bind(owner_id.0)
            .execute(&self.state.db)
            .await
            .expect("owner");
        let owner = self.session(owner_id, id, &owner_email).await;
        let admin = self
            .member(id, OrgRole::Admin, &format!("{label}-admin"))
            .await;
        let manager = self
            .member(id, OrgRole::Manager, &format!("{label}-manager"))
            .await;
        let user = self
            .member(id, OrgRole::User, &format!("{label}-user"))
            .await;
        let spare = self
            .member(id, OrgRole::User, &format!("{label}-spare"))
            .await;
        let (invitation_token, hash) = inventiv_api::auth::tokens::generate();
        let invitation_id = Uuid::new_v4();
        sqlx::query(
            "INSERT INTO organization_invitations (id, organization_id, email, role, token_hash, invited_by, expires_at)
             VALUES ($1, $2, $3, 'user', $4, $5, now() + interval '1 day')",
        )
        .bind(invitation_id)
        .bind(id)
        .bind(format!("invitee-{}@example.com", Uuid::new_v4().simple()))
        .bind(hash)
        .bind(owner_id.0)
        .execute(&self.state.db)
        .await
        .expect("invitation");
        let key = inventiv_api::auth::api_key::generate();
        let api_key_id = Uuid::new_v4();
        sqlx::query(
            "INSERT INTO api_keys (id, organization_id, created_by, name, public_id, secret_hash, last_four, technical_active, economic_active)
             VALUES ($1, $2, $3, 'fixture key', $4, $5, $6, true, true)",
        )
        .bind(api_key_id)
        .bind(id)
        .bind(spare.user_id)
        .bind(&key.public_id)
        .bind(&key.hash)
        .bind(&key.last_four)
        .execute(&self.state.db)
        .await
        .expect("api key");
        let budget_id = Uuid::new_v4();
        sqlx::query(
            "INSERT INTO budgets (id, organization_id, scope, monthly_eur, hard_limit, created_by)
             VALUES ($1, $2, 'organization', 1000, false, $3)",
        )
        .bind(budget_id)
        .bind(id)
        .bind(owner_id.0)
        .execute(&self.state.db)
        .await
        .expect("budget");
        Org {
            id,
            slug,
            owner,
            admin,
            manager,
            user,
            spare,
            invitation_id,
            invitation_token,
            instance_id: Uuid::nil(),
            worker_token: String::new(),
            api_key_id,
            api_key: key.key,
            offering_id: Uuid::nil(),
            share_id: Uuid::nil(),
            share_consumer_slug: String::new(),
            incoming_offering_id: Uuid::nil(),
            budget_id,
            service_id: Uuid::nil(),
            host_id: Uuid::nil(),
        }
    }

    /// Publishes `provider`'s `mock/model` (private, on, priced) and shares
    /// it with `consumer` (not accepted). Returns (offering id, share id).
    pub async fn offer(&self, provider: &Org, consumer: &Org) -> (Uuid, Uuid) {
        let (offering, share) = (Uuid::new_v4(), Uuid::new_v4());
        let db = &self.state.db;
        sqlx::query(
            "INSERT INTO offerings (id, organization_id, model_code, visibility, technical_active, economic_active, created_by)
             VALUES ($1, $2, 'mock/model', 'private', true, true, $3)",
        )
        .bind(offering)
        .bind(provider.id)
        .bind(provider.owner.user_id)
        .execute(db)
        .await
        .expect("offering");
        sqlx::query(
            "INSERT INTO offering_prices (id, offering_id, input_eur_per_1k, output_eur_per_1k, effective_at, created_by)
             VALUES ($1, $2, 0.001, 0.002, now(), $3)",
        )
        .bind(Uuid::new_v4())
        .bind(offering)
        .bind(provider.owner.user_id)
        .execute(db)
        .await
        .expect("price");
        sqlx::query(
            "INSERT INTO offering_shares (id, offering_id, consumer_organization_id, created_by) VALUES ($1, $2, $3, $4)",
        )
        .bind(share)
        .bind(offering)
        .bind(consumer.id)
        .bind(provider.owner.user_id)
        .execute(db)
        .await
        .expect("share");
        (offering, share)
    }

    /// Fills the offering fields of `org` (see [`Org`]) with a new third
    /// organization as the other side.
    pub async fn add_offerings(&self, org: &mut Org) {
        let third = self.org("c").await;
        let (offering, share) = self.offer(org, &third).await;
        let (incoming, _) = self.offer(&third, org).await;
        org.offering_id = offering;
        org.share_id = share;
        org.share_consumer_slug = third.slug;
        org.incoming_offering_id = incoming;
    }

    /// Gives `org` an instance (status `installing`) with a worker token.
    pub async fn add_instance(&self, org: &mut Org) {
        let (token, hash) = inventiv_api::auth::tokens::generate();
        org.instance_id = Uuid::new_v4();
        org.worker_token = token;
        sqlx::query(
            "INSERT INTO instances (id, organization_id, name, provider, zone, instance_type, model_id, status, worker_token_hash)
             VALUES ($1, $2, 'fixture', 'mock', 'mock-zone-1', 'mock-1gpu-24g', 'mock/model', 'installing', $3)",
        )
        .bind(org.instance_id)
        .bind(org.id)
        .bind(hash)
        .execute(&self.state.db)
        .await
        .expect("instance");
    }

    /// Gives `org` a service (see [`Org::service_id`]) on the mock
    /// provider's first zone and type, as the API would have written it.
    pub async fn add_service(&self, org: &mut Org) {
        org.service_id = Uuid::new_v4();
        let db = &self.state.db;
        sqlx::query(
            "INSERT INTO services (id, organization_id, name, model_id, min_replicas, max_replicas, desired_replicas, created_by)
             VALUES ($1, $2, 'fixture service', 'mock/model', 0, 2, 1, $3)",
        )
        .bind(org.service_id)
        .bind(org.id)
        .bind(org.owner.user_id)
        .execute(db)
        .await
        .expect("service");
        sqlx::query(
            "INSERT INTO service_placements (service_id, position, provider, zone, instance_type, zone_id, instance_type_id)
             VALUES ($1, 0, 'mock', 'mock-zone-1', 'mock-1gpu-24g', $2::uuid, $3::uuid)",
        )
        .bind(org.service_id)
        .bind(MOCK_ZONE)
        .bind(MOCK_INSTANCE_TYPE)
        .execute(db)
        .await
        .expect("placement");
        sqlx::query(
            "INSERT INTO instances (id, organization_id, name, provider, zone, instance_type, model_id, status, service_id)
             VALUES ($1, $2, 'fixture service #1', 'mock', 'mock-zone-1', 'mock-1gpu-24g', 'mock/model', 'installing', $3)",
        )
        .bind(Uuid::new_v4())
        .bind(org.id)
        .bind(org.service_id)
        .execute(db)
        .await
        .expect("replica");
        sqlx::query(
            "INSERT INTO service_events (service_id, organization_id, kind, from_replicas, to_replicas, reason)
             VALUES ($1, $2, 'created', 0, 1, 'fixture')",
        )
        .bind(org.service_id)
        .bind(org.id)
        .execute(db)
        .await
        .expect("service event");
    }

    /// Gives `org` a host (see [`Org::host_id`]): registered, on a port of
    /// 127.0.0.1 where nothing listens, so a verification finds it unreachable.
    pub async fn add_host(&self, org: &mut Org) {
        org.host_id = Uuid::new_v4();
        sqlx::query(
            "INSERT INTO hosts (id, organization_id, address, ssh_port, ssh_user, label, pool, gpu_count, gpu_model, gpu_vram_mib)
             VALUES ($1, $2, '127.0.0.1', 1, 'inventiv', 'fixture host', 'fixture-pool', 1, 'NVIDIA L4', 23034)",
        )
        .bind(org.host_id)
        .bind(org.id)
        .execute(&self.state.db)
        .await
        .expect("host");
    }

    /// `consumer`'s manager accepts `share`; the routing table knows it at once.
    pub async fn accept_share(&self, share: Uuid, consumer: &Org) {
        sqlx::query(
            "UPDATE offering_shares SET accepted_at = now(), accepted_by = $2 WHERE id = $1",
        )
        .bind(share)
        .bind(consumer.manager.user_id)
        .execute(&self.state.db)
        .await
        .expect("share accepted");
        self.state
            .routing
            .refresh(&self.state)
            .await
            .expect("routing refreshed");
    }

    /// `org`'s owner turns `item` of catalog `kind` on, technically and
    /// economically.
    pub async fn activate(&self, org: &Org, kind: &str, item: &str) {
        let (status, body) = self
            .put(
                &format!("/organizations/current/activations/{kind}/{item}"),
                Some(&org.owner.token),
                json!({ "technical": true, "economic": true }),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::OK,
            "activation of {kind} {item}: {body}"
        );
    }

    /// Activates what a deployment of `model` on the mock provider needs:
    /// the provider, its zone and its instance type, and the model.
    pub async fn activate_mock(&self, org: &Org, model: &str) {
        for (kind, item) in [
            ("provider", "mock"),
            ("zone", MOCK_ZONE),
            ("instance_type", MOCK_INSTANCE_TYPE),
            ("model", model),
        ] {
            self.activate(org, kind, item).await;
        }
    }

    /// An API key made by the holder of `token` from `body` (its name, limits,
    /// expiry); returns its id and the key (shown this once).
    pub async fn api_key(&self, token: &str, body: Value) -> (String, String) {
        let (status, created) = self.post("/api-keys", Some(token), body).await;
        assert_eq!(status, StatusCode::CREATED, "API key: {created}");
        (
            created["api_key"]["id"]
                .as_str()
                .expect("key id")
                .to_owned(),
            created["key"].as_str().expect("key").to_owned(),
        )
    }
}
