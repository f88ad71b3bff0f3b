//! First start: the platform administrator from `INVENTIV_ADMIN_EMAIL` /
//! `INVENTIV_ADMIN_PASSWORD`, created once and never overwritten.

use inventiv_common::{DisplayName, Email, Password};
use secrecy::ExposeSecret;

use crate::state::AppState;

/// Creates the admin account if it does not exist yet.
pub async fn admin(state: &AppState) -> anyhow::Result<()> {
    let Some(email) = state.config.admin_email.as_deref() else {
        return Ok(());
    };
    let email = Email::parse(email).map_err(|e| anyhow::anyhow!("INVENTIV_ADMIN_EMAIL: {e}"))?;
    let exists = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM users WHERE email = $1) AS "exists!""#,
        email.as_str(),
    )
    .fetch_one(&state.db)
    .await?;
    if exists {
        return Ok(());
    }
    let Some(password) = state.config.admin_password.as_ref() else {
        tracing::warn!("INVENTIV_ADMIN_PASSWORD is not set: no administrator was created");
        return Ok(());
    };
    let password = Password::parse(password.expose_secret())
        .map_err(|e| anyhow::anyhow!("INVENTIV_ADMIN_PASSWORD: {e}"))?;
    let hash = state
        .hasher
        .hash(password.expose())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let name = DisplayName::parse("Administrator").map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut tx = state.db.begin().await?;
    match crate::accounts::create(&mut tx, &email, &name, &hash, true).await {
        Ok((user, _)) => {
            tx.commit().await?;
            tracing::info!(user_id = %user, "platform administrator created");
        }
        // Another replica created it first.
        Err(crate::error::ApiError::Conflict { .. }) => {}
        Err(e) => return Err(anyhow::anyhow!("creating the administrator: {e}")),
    }
    Ok(())
}
