-- A budget alert whose mail failed (SMTP away, an owner's address refused)
-- is retried with a growing wait, and given up after a few attempts, so
-- that one alert that can never be sent neither retries forever nor holds
-- back the alerts after it.
ALTER TABLE budget_alerts
    ADD COLUMN mail_attempts   integer NOT NULL DEFAULT 0,
    ADD COLUMN mail_next_at    timestamptz,
    ADD COLUMN mail_failed_at  timestamptz,
    ADD COLUMN mail_error      text;

DROP INDEX budget_alerts_unmailed;
CREATE INDEX budget_alerts_unmailed ON budget_alerts (id) WHERE mailed_at IS NULL AND mail_failed_at IS NULL;
