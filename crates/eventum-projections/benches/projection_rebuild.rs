//! Placeholder until the projection rebuild benchmark lands.
fn main() {}
