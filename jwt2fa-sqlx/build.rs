//! Rebuilds the crate when a migration file is added, so that the embedded
//! migration sets never go stale.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
