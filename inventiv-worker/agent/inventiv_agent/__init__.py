"""Inventiv worker agent: supervises the inference engine on a GPU node and
reports to the control plane (register, heartbeats, /info, /logs, /healthz)."""

# The one place the agent's version is written; scripts/agent-bundle.sh reads it.
AGENT_VERSION = "0.2.0"
