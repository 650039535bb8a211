//! `fen registry serve` (spec 20 §3).
