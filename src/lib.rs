//! Owner of the cross-crate integration and end-to-end tests in `tests/`.
