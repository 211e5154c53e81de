//! One committed state of the index file, its tables opened once and shared by every read
//! until the next commit replaces it.
//!
//! Why: a read of the file used to begin a redb read transaction and open its table each
//! time, and that was two thirds of the cost of looking up a stream the memtable does
//! not hold (every new stream: its first load, the writer's expected-version check, the
//! indexer's numbering). With the shop at 2,000 orders/s those lookups were ~5% of the
//! server's CPU.
//!
//! Only the thread that commits to the file installs a view, right after its commit and
//! before it removes the committed entries from the memtable. A reader consults the
//! memtable first and takes the view after: if it found the memtable already without the
//! entries, the view it takes is the one installed after their commit.

use std::any::Any;

use redb::{Database, ReadableDatabase, TableDefinition};

use eventum_core::StorageError;

use crate::index::storage;

/// The tables of one read snapshot of the index file.
pub(crate) struct FileView {
    /// Each table the view was opened with; `None` where the file has no such table.
    tables: Vec<(String, Option<Box<dyn Any + Send + Sync>>)>,
}

/// A table definition a view can open without knowing its key and value types.
pub(crate) trait ViewTable {
    fn open(
        &self,
        txn: &redb::ReadTransaction,
    ) -> Result<Option<Box<dyn Any + Send + Sync>>, redb::TableError>;
    fn name(&self) -> &str;
}

impl<K: redb::Key + Send + Sync + 'static, V: redb::Value + Send + Sync + 'static> ViewTable
    for TableDefinition<'static, K, V>
{
    fn open(
        &self,
        txn: &redb::ReadTransaction,
    ) -> Result<Option<Box<dyn Any + Send + Sync>>, redb::TableError> {
        match txn.open_table(*self) {
            Ok(t) => Ok(Some(Box::new(t))),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn name(&self) -> &str {
        redb::TableHandle::name(self)
    }
}

impl FileView {
    /// Opens `tables` in a new read transaction of `db`.
    pub fn open(db: &Database, tables: &[&dyn ViewTable]) -> Result<Self, StorageError> {
        let txn = db.begin_read().map_err(storage)?;
        let mut opened = Vec::with_capacity(tables.len());
        for t in tables {
            opened.push((t.name().to_owned(), t.open(&txn).map_err(storage)?));
        }
        // The tables keep the snapshot alive on their own; the transaction can go.
        Ok(Self { tables: opened })
    }

    /// Table `def` of this snapshot: `None` when the view was not opened with it,
    /// `Some(None)` when the file has no such table.
    pub fn table<K: redb::Key + 'static, V: redb::Value + 'static>(
        &self,
        def: &TableDefinition<'static, K, V>,
    ) -> Option<Option<&redb::ReadOnlyTable<K, V>>> {
        let name = redb::TableHandle::name(def);
        let (_, table) = self.tables.iter().find(|(n, _)| *n == name)?;
        Some(
            table
                .as_ref()
                .and_then(|t| t.downcast_ref::<redb::ReadOnlyTable<K, V>>()),
        )
    }
}
