//! Multi-shard tests.
