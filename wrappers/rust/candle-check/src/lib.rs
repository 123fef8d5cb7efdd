//! Test-only crate: see tests/candle_models.rs.
