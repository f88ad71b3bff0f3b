-- The request log (GET /usage/requests) pages an organization's requests
-- newest first by (at, id): this index serves that order and its cursor
-- without a sort. It also serves every range scan the old (organization_id,
-- at) index did, which is dropped so the metering path maintains one index
-- rather than two.
CREATE INDEX usage_records_org_at_id ON usage_records (organization_id, at DESC, id DESC);
DROP INDEX usage_records_org_time;
