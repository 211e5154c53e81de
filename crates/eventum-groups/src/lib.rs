//! Consumer groups: durable, server-side subscriptions shared by competing consumers.
