//! The requirements-tracking service from seed 000 on the Eventum runtime.
