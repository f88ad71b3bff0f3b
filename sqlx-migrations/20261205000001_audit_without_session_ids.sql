-- Audit entries never carry session ids: `auth.login` used to name the new
-- session as its target. Rewrite those to name the user instead. The audit
-- log is append-only; the trigger is lifted for this one redaction only.
ALTER TABLE audit_logs DISABLE TRIGGER audit_logs_no_update_delete;
UPDATE audit_logs
   SET target_type = 'user', target_id = actor_user_id::text
 WHERE action = 'auth.login' AND target_type = 'session';
ALTER TABLE audit_logs ENABLE TRIGGER audit_logs_no_update_delete;
