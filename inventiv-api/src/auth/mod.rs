//! Authentication: passwords, opaque tokens, access JWTs, login throttling
//! and the extractor that yields the caller.

pub mod api_key;
pub mod caller;
pub mod jwt;
pub mod password;
pub mod throttle;
pub mod tokens;

pub use caller::{Caller, MaybeCaller};
