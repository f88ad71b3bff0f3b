-- Placement fallback (issue 17): a timeline entry may be about one replica
-- (its failed placement), written at most once per replica whichever API
-- replica writes it.
ALTER TABLE service_events ADD COLUMN instance_id uuid;
CREATE UNIQUE INDEX service_events_placement_failed_once
    ON service_events (instance_id) WHERE kind = 'placement_failed' AND instance_id IS NOT NULL;
