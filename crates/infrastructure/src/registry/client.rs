//! The registry HTTP client (spec 20 §2).
