//! The OpenAI wire format as vLLM speaks it: [`request`] types that borrow
//! from the body, [`response`] types serialized straight to bytes.

pub mod request;
pub mod response;

pub use request::*;
pub use response::*;
