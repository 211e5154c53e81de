//! Aggregates, repositories and the command bus: the write side of an event-sourced application.
