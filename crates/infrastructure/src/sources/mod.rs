//! Source walking, fingerprints and repo-root discovery (spec 10 §1.9–§1.11).

mod repo_root;

pub use repo_root::{absolute_lexical, find_repo_root};
