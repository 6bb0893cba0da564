//! Integration tests: the real services on port 0 against the real Redis and MariaDB. One test
//! binary, each test with its own Redis key prefix and its own database, so they run in parallel.

// Panicking is how a test fails; the harness's helpers are part of the tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod auth;
mod bad_input;
mod bidding;
mod concurrency;
mod config;
mod create;
mod durability;
mod faults;
mod helpers;
mod hostile;
mod lifecycle;
mod limits;
mod listing;
mod loadgen;
mod logs;
mod model;
mod proxy;
mod rest;
mod retention;
mod startup;
mod timeouts;
