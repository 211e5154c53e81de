//! Reads an instance stream back into an [`Instance`]: the one fold that the runner (on a
//! cache miss or a conflicting write) and the status query share.

use eventum_core::{EventStore, ReadDirection, ReadError};
use serde::de::DeserializeOwned;

use crate::instance::Instance;
use crate::records::InstanceRecord;

/// Why an instance stream could not be folded.
#[derive(Debug)]
pub(crate) enum LoadError {
    Read(ReadError),
    /// An event does not decode, or its records do not fold onto what came before.
    Corrupt(String),
}

/// Folds `instance.stream` from version 0, `page_events_max` events per read, into
/// `instance` (expected fresh). A stream that does not exist leaves it as it was, with no
/// version.
pub(crate) async fn fold_stream<S: Default + DeserializeOwned>(
    store: &dyn EventStore,
    instance: &mut Instance<S>,
    page_events_max: usize,
) -> Result<(), LoadError> {
    let mut from = 0;
    loop {
        let page = match store
            .read_stream(
                &instance.stream,
                Some(from),
                ReadDirection::Forward,
                page_events_max,
            )
            .await
        {
            Ok(page) => page,
            Err(ReadError::StreamNotFound { .. }) => return Ok(()),
            Err(e) => return Err(LoadError::Read(e)),
        };
        for event in &page {
            for record in InstanceRecord::decode_event(event).map_err(LoadError::Corrupt)? {
                instance.apply_owned(record).map_err(LoadError::Corrupt)?;
            }
            instance.version = Some(event.version);
            from = event.version + 1;
        }
        if let Some(last) = page.last() {
            instance.written_by = crate::records::runner_of(last);
        }
        if page.len() < page_events_max {
            return Ok(());
        }
    }
}
