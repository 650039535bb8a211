//! The lifecycle lock adapter (spec 20 §8.1).
