// `sqlx::migrate!` embeds the migration files when the crate is compiled, but Cargo only knows to
// compile it again when a file it was told about changes: a migration added to the folders would
// otherwise be missing from an incremental build, and a database it should migrate would be refused
// as newer than the binary's schema.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
