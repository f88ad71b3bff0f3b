//! The orchestrator's building blocks: the action log, SSH to worker nodes,
//! the worker bootstrap over SSH and the agent's version check.

pub mod agent_info;
pub mod bootstrap;
pub mod ssh;
