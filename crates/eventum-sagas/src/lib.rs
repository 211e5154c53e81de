//! Sagas and process managers: long-running workflows with compensations and durable deadlines.
