//! The read side's versioned migrations: one `.sql` file per object under `migrations/`,
//! applied by `eventum_postgres::migrate::apply` and recorded in `read_model_migrations`
//! (its own history, so it can share the event store's schema or live elsewhere).

use eventum_postgres::migrate::{Migration, MigrationSet};
use eventum_postgres::migration;

/// Every read-side migration this build knows, in order. Never edit a released file.
pub const MIGRATIONS: &[Migration] = &[
    migration!(1, "0001_consumer_checkpoints"),
    migration!(2, "0002_consumer_inbox"),
    migration!(3, "0003_consumer_inbox_seq_index"),
    migration!(4, "0004_read_models"),
    migration!(5, "0005_documents"),
    migration!(6, "0006_documents_doc_index"),
];

/// The read side's migration set.
pub const READ_SIDE: MigrationSet = MigrationSet {
    history_table: "read_model_migrations",
    migrations: MIGRATIONS,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_numbered_in_order() {
        assert_eq!(READ_SIDE.misnumbered(), None);
    }
}
