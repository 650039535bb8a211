//! Rebuilds the crate when a migration is added or edited: `sqlx::migrate!()` embeds
//! `migrations/` at compile time, and cargo does not track that directory by itself.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
