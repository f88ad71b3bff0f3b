//! Empty: cargo wants a library or a binary in every package. This crate's
//! content is its end-to-end tests, in `tests/it/`.
