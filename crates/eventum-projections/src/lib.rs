//! Projections and read models: the read side, with checkpoints and an inbox kept in one transaction.
