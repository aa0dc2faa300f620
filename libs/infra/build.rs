//! Rebuilds this crate when a migration is added or changed: `sqlx::migrate!` embeds the
//! migrations at compile time, and cargo does not otherwise see new files in that directory
//! (the build script sqlx's documentation recommends).

fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
