//! microsoft
