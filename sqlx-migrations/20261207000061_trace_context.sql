-- Traces across processes (docs/architecture.md, "Traces"): the W3C
-- traceparent of the request whose course an instance is on, written with
-- the command that starts that course; the orchestrator's steps, run long
-- after in its reconcile loop, and the worker's first heartbeat join that
-- trace. NULL when the API does not export traces.
ALTER TABLE instances ADD COLUMN trace_context text;
ALTER TABLE command_outbox ADD COLUMN traceparent text;
