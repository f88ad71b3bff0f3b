//! Creating an account: the user, their personal organization and their
//! owner membership, always together.

use inventiv_common::{DisplayName, Email, OrgId, Slug, UserId};
use rand::Rng;
use sqlx::PgConnection;

use crate::error::{ApiError, ApiResult};

/// Whether a database error is a unique-constraint violation.
pub fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.code().as_deref() == Some("23505"))
}

/// A slug derived from `base` with a random suffix, to keep slugs unique
/// without a retry loop in the common case.
pub fn unique_slug(base: &str) -> Slug {
    let stem = Slug::from_name(base);
    let suffix: u32 = rand::thread_rng().gen_range(0x1000..0xffff);
    Slug::from_name(&format!("{}-{suffix:x}", stem.as_str()))
}

/// Inserts the user, a personal organization and the owner membership.
/// Run it inside a transaction. A taken email is a 409.
pub async fn create(
    tx: &mut PgConnection,
    email: &Email,
    name: &DisplayName,
    password_hash: &str,
    platform_admin: bool,
) -> ApiResult<(UserId, OrgId)> {
    let user = UserId::new();
    let org = OrgId::new();
    sqlx::query!(
        "INSERT INTO users (id, email, display_name, password_hash, is_platform_admin) VALUES ($1, $2, $3, $4, $5)",
        user as UserId,
        email.as_str(),
        name.as_str(),
        password_hash,
        platform_admin,
    )
    .execute(&mut *tx)
    .await
    .map_err(|e| {
        if is_unique_violation(&e) {
            ApiError::conflict("EMAIL_TAKEN", "an account with this email already exists")
        } else {
            e.into()
        }
    })?;
    let local = email.as_str().split('@').next().unwrap_or("me");
    let slug = unique_slug(local);
    sqlx::query!(
        "INSERT INTO organizations (id, name, slug, kind, created_by) VALUES ($1, $2, $3, 'personal', $4)",
        org as OrgId,
        name.as_str(),
        slug.as_str(),
        user as UserId,
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "INSERT INTO organization_memberships (organization_id, user_id, role) VALUES ($1, $2, 'owner')",
        org as OrgId,
        user as UserId,
    )
    .execute(&mut *tx)
    .await?;
    Ok((user, org))
}
