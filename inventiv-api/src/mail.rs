//! Outgoing email: SMTP when configured, otherwise `.eml` files in the
//! outbox directory. Message bodies (which carry tokens) never reach the logs.

use std::path::PathBuf;

use lettre::message::header::ContentType;
use lettre::message::{Body, Mailbox, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::ExposeSecret;

use crate::config::{Config, SmtpTls};

enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Outbox(PathBuf),
}

/// Sends transactional mail (invitations, password resets).
pub struct Mailer {
    transport: Transport,
    from: Mailbox,
}

impl Mailer {
    /// Builds the transport the configuration asks for.
    pub fn from_config(config: &Config) -> anyhow::Result<Mailer> {
        let from: Mailbox = config
            .smtp_from
            .parse()
            .map_err(|e| anyhow::anyhow!("SMTP_FROM={:?}: {e}", config.smtp_from))?;
        let transport = match &config.smtp {
            None => Transport::Outbox(config.state_dir.join("outbox")),
            Some(smtp) => {
                let mut builder = match smtp.tls {
                    SmtpTls::None => {
                        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.host)
                    }
                    SmtpTls::StartTls => {
                        AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&smtp.host)?
                    }
                    SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&smtp.host)?,
                }
                .port(smtp.port)
                .timeout(Some(std::time::Duration::from_secs(15)));
                if let (Some(user), Some(password)) = (&smtp.username, &smtp.password) {
                    builder = builder.credentials(Credentials::new(
                        user.clone(),
                        password.expose_secret().to_owned(),
                    ));
                }
                Transport::Smtp(builder.build())
            }
        };
        Ok(Mailer { transport, from })
    }

    /// Sends one plain-text message.
    pub async fn send(&self, to: &str, subject: &str, body: String) -> anyhow::Result<()> {
        // lettre picks 7bit, quoted-printable or base64 to fit the text.
        let body = Body::new(body);
        let message = Message::builder()
            .from(self.from.clone())
            .to(to.parse()?)
            .subject(subject)
            .singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_PLAIN)
                    .body(body),
            )?;
        match &self.transport {
            Transport::Smtp(smtp) => {
                smtp.send(message).await?;
            }
            Transport::Outbox(dir) => {
                tokio::fs::create_dir_all(dir).await?;
                let name = format!(
                    "{}-{}.eml",
                    chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ"),
                    uuid::Uuid::new_v4().simple()
                );
                tokio::fs::write(dir.join(&name), message.formatted()).await?;
                tracing::info!(file = %name, "mail written to the outbox (SMTP not configured)");
            }
        }
        Ok(())
    }
}

/// A name chosen by a user (display name, organization name), made safe to
/// quote in a mail: only letters, digits, spaces and a few marks survive,
/// so it cannot carry a link, an address or a line of its own, and it is
/// shown in quotes so it reads as a name, not as our words.
pub fn quoted_name(name: &str) -> String {
    let kept: String = name
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || matches!(c, ' ' | '-' | '\'' | '&' | '(' | ')') {
                c
            } else {
                ' '
            }
        })
        .collect();
    let words: Vec<&str> = kept.split_whitespace().collect();
    let short: String = words.join(" ").chars().take(60).collect();
    format!("\"{}\"", short.trim())
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_in_mails_carry_no_links() {
        let name = super::quoted_name("Alice.\nUrgent: verify at https://evil.example/login now");
        assert_eq!(
            name,
            "\"Alice Urgent verify at https evil example login now\""
        );
        assert_eq!(super::quoted_name("Zoë O'Brien"), "\"Zoë O'Brien\"");
    }
}
