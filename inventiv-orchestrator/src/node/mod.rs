//! Reaching a worker node, from the control plane's side:
//!
//! - `ssh`: the system OpenSSH client, with the node's host key pinned
//!   (`inventiv_store::ssh`, shared with the API's host verification);
//! - `install`: the worker's install over that SSH: upload the agent
//!   bundle, its configuration and secrets, run `inventiv-worker/bootstrap.sh`
//!   (the bootstrap: the node-side script and its phases) and read back
//!   the pin of the node's relay certificate;
//! - `agent_info`: the agent's `GET /info` (version, bundle checksum).

pub mod agent_info;
pub mod install;
pub use inventiv_store::ssh;
