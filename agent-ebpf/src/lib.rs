//! The programs live in the `vigil` binary target (`src/main.rs`); this library target exists
//! so that `agent` can name this crate as a build-dependency and be rebuilt when it changes.
#![no_std]
