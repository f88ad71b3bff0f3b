//! The orchestrator's building blocks: the action log, SSH to worker nodes
//! and the worker bootstrap over SSH.

pub mod action_log;
pub mod bootstrap;
pub mod ssh;
