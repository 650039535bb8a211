//! Source walking, fingerprints and repo-root discovery (spec 10 §1.9–§1.11).
