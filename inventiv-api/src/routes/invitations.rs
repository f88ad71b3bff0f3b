//! Invitations by email: create, list, revoke, and the public look-up and
//! acceptance by token. Tokens are random, stored hashed, single use, and expire.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use inventiv_common::rbac::can_assign;
use inventiv_common::{
    Action, DisplayName, Email, InvitationStatus, OrgId, OrgRole, Password, UserId,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::audit;
use crate::auth::{tokens, Caller, MaybeCaller};
use crate::client_ip::ClientIp;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Json, OptionalJson, Path, Query};
use crate::ratelimit;
use crate::routes::auth::{open_session, with_cookies, Client, TokenResponse};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_invitation, list_invitations))
        .routes(routes!(revoke_invitation))
        .routes(routes!(show_invitation))
        .routes(routes!(accept_invitation))
}

/// An invitation as the inviting organization sees it (never its token).
#[derive(Serialize, ToSchema)]
pub struct Invitation {
    pub id: Uuid,
    pub email: String,
    pub role: String,
    pub status: InvitationStatus,
    pub invited_by: Uuid,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub accepted_at: Option<DateTime<Utc>>,
}

/// Whom to invite, with which role.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateInvitation {
    #[schema(format = "email")]
    email: String,
    role: OrgRole,
}

/// Invites someone by email; the role is capped by the inviter's own.
#[utoipa::path(post, path = "/organizations/current/invitations", tag = "invitations", security(("bearer" = [])),
    request_body = CreateInvitation,
    responses((status = 201, body = Invitation), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 429, body = ErrorBody, description = "too many invitations sent; see Retry-After")))]
async fn create_invitation(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<CreateInvitation>,
) -> ApiResult<(StatusCode, Json<Invitation>)> {
    caller.require(Action::ManageInvitations)?;
    let email = Email::parse(&body.email)?;
    crate::ratelimit::hit(
        &state,
        &crate::ratelimit::INVITATIONS_PER_USER,
        &caller.user_id.to_string(),
    )
    .await?;
    if !can_assign(caller.role, None, body.role) {
        return Err(ApiError::Forbidden {
            code: "ROLE_TOO_HIGH",
            message: format!(
                "{} cannot invite {}",
                caller.role.with_article(),
                body.role.with_article()
            ),
        });
    }
    let mut tx = state.db.begin().await?;
    let org = sqlx::query!(
        "SELECT name, kind FROM organizations WHERE id = $1 FOR UPDATE",
        caller.org_id as OrgId,
    )
    .fetch_one(&mut *tx)
    .await?;
    let (org_name, kind) = (org.name, org.kind);
    if kind == "personal" {
        return Err(ApiError::conflict(
            "PERSONAL_ORGANIZATION",
            "create a team organization to invite people",
        ));
    }
    let member = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM organization_memberships m JOIN users u ON u.id = m.user_id
                         WHERE m.organization_id = $1 AND u.email = $2) AS "exists!""#,
        caller.org_id as OrgId,
        email.as_str(),
    )
    .fetch_one(&mut *tx)
    .await?;
    if member {
        return Err(ApiError::conflict(
            "ALREADY_MEMBER",
            "this person is already a member",
        ));
    }
    let pending = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM organization_invitations WHERE organization_id = $1 AND email = $2
                           AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > now()) AS "exists!""#,
        caller.org_id as OrgId,
        email.as_str(),
    )
    .fetch_one(&mut *tx)
    .await?;
    if pending {
        return Err(ApiError::conflict(
            "ALREADY_INVITED",
            "a pending invitation exists; revoke it to send a new one",
        ));
    }
    let (token, hash) = tokens::generate();
    let id = Uuid::new_v4();
    let invitation = sqlx::query_as!(
        Invitation,
        r#"INSERT INTO organization_invitations (id, organization_id, email, role, token_hash, invited_by, expires_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7)
           RETURNING id, email, role,
                     invitation_status(accepted_at, revoked_at, expires_at) AS "status!: InvitationStatus",
                     invited_by, created_at, expires_at, accepted_at"#,
        id,
        caller.org_id as OrgId,
        email.as_str(),
        body.role.as_str(),
        hash,
        caller.user_id as UserId,
        Utc::now() + state.config.invitation_ttl,
    )
    .fetch_one(&mut *tx)
    .await?;
    let inviter = sqlx::query_scalar!(
        "SELECT display_name FROM users WHERE id = $1",
        caller.user_id as UserId,
    )
    .fetch_one(&mut *tx)
    .await?;
    let entry = audit::Entry::by(&caller, "invitation.created", "invitation", id.to_string())
        .details(serde_json::json!({ "email": email.as_str(), "role": body.role }));
    audit::record(&mut *tx, entry).await?;
    tx.commit().await?;
    let link = format!("{}/invitations/{token}", state.config.public_url);
    let days = state.config.invitation_ttl.as_secs().div_ceil(86_400);
    // Both names are chosen by users: quoted and stripped of anything that
    // could pass for a link or our own words.
    let inviter = crate::mail::quoted_name(&inviter);
    let org_name = crate::mail::quoted_name(&org_name);
    let text = format!(
        "{inviter} invited you to join the organization {org_name} on Inventiv as {role}.\n\n\
         Accept the invitation within {days} days by opening this link:\n\n{link}\n\n\
         If you did not expect this, ignore this message.\n",
        role = body.role
    );
    let mailer = state.mailer.clone();
    let to = email.as_str().to_owned();
    let subject = format!("Join {org_name} on Inventiv");
    state.tasks.spawn(async move {
        if let Err(e) = mailer.send(&to, &subject, text).await {
            tracing::error!(error = %e, invitation_id = %id, "invitation mail not sent");
        }
    });
    Ok((StatusCode::CREATED, Json(invitation)))
}

/// Every invitation of the current organization, newest first.
#[utoipa::path(get, path = "/organizations/current/invitations", tag = "invitations", security(("bearer" = [])),
    params(super::Paging),
    responses((status = 200, body = [Invitation]), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list_invitations(
    State(state): State<AppState>,
    caller: Caller,
    Query(page): Query<super::Paging>,
) -> ApiResult<Json<Vec<Invitation>>> {
    caller.require(Action::ManageInvitations)?;
    let rows = sqlx::query_as!(
        Invitation,
        r#"SELECT id, email, role, invitation_status(accepted_at, revoked_at, expires_at) AS "status!: InvitationStatus",
                  invited_by, created_at, expires_at, accepted_at
             FROM organization_invitations WHERE organization_id = $1
            ORDER BY created_at DESC, id LIMIT $2 OFFSET $3"#,
        caller.org_id as OrgId,
        page.limit(),
        page.offset(),
    )
    .fetch_all(&state.db)
    .await?;
    Ok(Json(rows))
}

/// Revokes a pending invitation; its link stops working.
#[utoipa::path(delete, path = "/organizations/current/invitations/{invitation_id}", tag = "invitations", security(("bearer" = [])),
    params(("invitation_id" = Uuid, Path, description = "invitation id")),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn revoke_invitation(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    caller.require(Action::ManageInvitations)?;
    let mut tx = state.db.begin().await?;
    let status = sqlx::query_scalar!(
        r#"SELECT invitation_status(accepted_at, revoked_at, expires_at) AS "status!: InvitationStatus"
             FROM organization_invitations WHERE id = $1 AND organization_id = $2 FOR UPDATE"#,
        id,
        caller.org_id as OrgId,
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(ApiError::NotFound)?;
    if status != InvitationStatus::Pending {
        return Err(ApiError::conflict(
            "INVITATION_NOT_PENDING",
            format!("the invitation is {status}"),
        ));
    }
    sqlx::query!(
        "UPDATE organization_invitations SET revoked_at = now() WHERE id = $1",
        id
    )
    .execute(&mut *tx)
    .await?;
    let entry = audit::Entry::by(&caller, "invitation.revoked", "invitation", id.to_string());
    audit::record(&mut *tx, entry).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// What the acceptance page shows.
#[derive(Serialize, ToSchema)]
pub struct InvitationPreview {
    pub organization_name: String,
    pub organization_slug: String,
    pub role: String,
    pub inviter_name: String,
    pub email: String,
    pub status: InvitationStatus,
    pub expires_at: DateTime<Utc>,
    /// Whether the invitee must log in (true) or create an account (false).
    pub account_exists: bool,
}

/// Public: the organization, role and inviter behind an invitation token.
#[utoipa::path(get, path = "/organizations/invitations/{token}", tag = "invitations",
    params(("token" = String, Path, description = "the token from the invitation link")),
    responses((status = 200, body = InvitationPreview), (status = 404, body = ErrorBody)))]
async fn show_invitation(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> ApiResult<Json<InvitationPreview>> {
    if !tokens::well_formed(&token) {
        return Err(ApiError::NotFound);
    }
    let preview = sqlx::query_as!(
        InvitationPreview,
        r#"SELECT o.name AS organization_name, o.slug AS organization_slug, i.role, u.display_name AS inviter_name,
                  i.email, invitation_status(i.accepted_at, i.revoked_at, i.expires_at) AS "status!: InvitationStatus",
                  i.expires_at, EXISTS (SELECT 1 FROM users x WHERE x.email = i.email) AS "account_exists!"
             FROM organization_invitations i
             JOIN organizations o ON o.id = i.organization_id
             JOIN users u ON u.id = i.invited_by
            WHERE i.token_hash = $1"#,
        tokens::hash(&token),
    )
    .fetch_optional(&state.db)
    .await?
    .ok_or(ApiError::NotFound)?;
    Ok(Json(preview))
}

/// To accept: nothing when logged in as the invitee; otherwise the new
/// account's display name and password.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptInvitation {
    display_name: Option<String>,
    #[schema(format = "password")]
    password: Option<String>,
}

/// The membership an acceptance created, and tokens when it created an account.
#[derive(Serialize, ToSchema)]
pub struct InvitationAccepted {
    pub organization_id: Uuid,
    pub user_id: Uuid,
    pub role: String,
    /// Present when the acceptance created the account (the new user is logged in).
    pub session: Option<TokenResponse>,
}

struct Pending {
    id: Uuid,
    organization_id: Uuid,
    email: String,
    role: String,
    status: InvitationStatus,
}

/// Accepts an invitation, once. A logged-in invitee joins; someone without an
/// account creates one by giving a display name and password.
#[utoipa::path(post, path = "/organizations/invitations/{token}/accept", tag = "invitations",
    params(("token" = String, Path, description = "the token from the invitation link")),
    request_body(content = Option<AcceptInvitation>),
    responses((status = 200, body = InvitationAccepted), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 429, body = ErrorBody, description = "too many attempts from this address; see Retry-After")))]
async fn accept_invitation(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    MaybeCaller(caller): MaybeCaller,
    Path(token): Path<String>,
    OptionalJson(body): OptionalJson<AcceptInvitation>,
) -> ApiResult<Response> {
    let body = body.unwrap_or(AcceptInvitation {
        display_name: None,
        password: None,
    });
    ratelimit::hit(&state, &ratelimit::PASSWORD_TOKEN_PER_IP, &ip.to_string()).await?;
    if !tokens::well_formed(&token) {
        return Err(ApiError::NotFound);
    }
    // The token first: a made-up one must not cost a password hash (the
    // hasher's few permits are shared with every login). Checked again
    // under lock below.
    let status = sqlx::query_scalar!(
        r#"SELECT invitation_status(accepted_at, revoked_at, expires_at) AS "status!: InvitationStatus"
             FROM organization_invitations WHERE token_hash = $1"#,
        tokens::hash(&token),
    )
    .fetch_optional(&state.db)
    .await?
    .ok_or(ApiError::NotFound)?;
    // Validate and hash before taking locks: hashing is the slow part.
    let new_account = match (&caller, &body.display_name, &body.password) {
        (None, Some(name), Some(password)) if status == InvitationStatus::Pending => {
            let name = DisplayName::parse(name)?;
            let password = Password::parse(password)?;
            Some((name, state.hasher.hash(password.expose()).await?))
        }
        _ => None,
    };
    let mut tx = state.db.begin().await?;
    let invitation = sqlx::query_as!(
        Pending,
        r#"SELECT id, organization_id, email, role,
                  invitation_status(accepted_at, revoked_at, expires_at) AS "status!: InvitationStatus"
             FROM organization_invitations WHERE token_hash = $1 FOR UPDATE"#,
        tokens::hash(&token),
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(ApiError::NotFound)?;
    match invitation.status {
        InvitationStatus::Pending => {}
        InvitationStatus::Accepted => {
            return Err(ApiError::conflict(
                "INVITATION_USED",
                "this invitation was already accepted",
            ))
        }
        InvitationStatus::Revoked => {
            return Err(ApiError::conflict(
                "INVITATION_REVOKED",
                "this invitation was revoked",
            ))
        }
        InvitationStatus::Expired => {
            return Err(ApiError::conflict(
                "INVITATION_EXPIRED",
                "this invitation has expired; ask for a new one",
            ))
        }
    }
    let email = Email::parse(&invitation.email)?;
    let org = OrgId(invitation.organization_id);
    let client = Client::new(ip, &headers);
    let (user, session) = match caller {
        Some(caller) => {
            let mine = sqlx::query_scalar!(
                "SELECT email FROM users WHERE id = $1",
                caller.user_id as UserId,
            )
            .fetch_one(&mut *tx)
            .await?;
            if mine != email.as_str() {
                return Err(ApiError::Forbidden {
                    code: "INVITATION_EMAIL_MISMATCH",
                    message: "this invitation was sent to another email address".into(),
                });
            }
            (caller.user_id, None)
        }
        None => {
            let exists = sqlx::query_scalar!(
                r#"SELECT EXISTS (SELECT 1 FROM users WHERE email = $1) AS "exists!""#,
                email.as_str(),
            )
            .fetch_one(&mut *tx)
            .await?;
            if exists {
                return Err(ApiError::Unauthorized {
                    code: "LOGIN_REQUIRED",
                    message: "an account exists for this email: log in, then accept".into(),
                });
            }
            let (name, hash) = new_account.ok_or_else(|| {
                ApiError::validation(
                    "VALIDATION_ERROR",
                    "display_name and password are required to create the account",
                )
            })?;
            let (user, _) = crate::accounts::create(&mut tx, &email, &name, &hash, false).await?;
            (user, Some(()))
        }
    };
    let inserted = sqlx::query!(
        "INSERT INTO organization_memberships (organization_id, user_id, role) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        org as OrgId,
        user as UserId,
        invitation.role,
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if inserted == 0 {
        return Err(ApiError::conflict(
            "ALREADY_MEMBER",
            "you are already a member of this organization",
        ));
    }
    sqlx::query!(
        "UPDATE organization_invitations SET accepted_at = now(), accepted_by = $2 WHERE id = $1",
        invitation.id,
        user as UserId,
    )
    .execute(&mut *tx)
    .await?;
    let tokens = match session {
        Some(()) => Some(open_session(&mut *tx, &state, user, org, &client).await?),
        None => None,
    };
    let entry = audit::Entry {
        org,
        actor: Some(user),
        action: "invitation.accepted",
        target_type: "invitation",
        target_id: invitation.id.to_string(),
        details: serde_json::json!({ "role": invitation.role, "new_account": tokens.is_some() }),
    };
    audit::record(&mut *tx, entry).await?;
    tx.commit().await?;
    let accepted = InvitationAccepted {
        organization_id: org.0,
        user_id: user.0,
        role: invitation.role,
        session: tokens,
    };
    let cookies = accepted
        .session
        .as_ref()
        .map(|t| with_cookies(&state, Some(t), StatusCode::OK.into_response()));
    let mut response = Json(&accepted).into_response();
    if let Some(with) = cookies {
        for value in with.headers().get_all(axum::http::header::SET_COOKIE) {
            response
                .headers_mut()
                .append(axum::http::header::SET_COOKIE, value.clone());
        }
    }
    Ok(response)
}
