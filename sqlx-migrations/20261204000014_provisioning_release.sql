-- An instance whose provisioning failed keeps no cloud resource: the
-- orchestrator deletes what was created (server, security group, volumes
-- that are not persistent) and records when that was done. Until then the
-- instance stays on the orchestrator's list of work. Instances that failed
-- before this migration are cleaned up the same way.
ALTER TABLE instances ADD COLUMN resources_released_at timestamptz;
