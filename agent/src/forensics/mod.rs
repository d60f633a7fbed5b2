//! Forensics: the flight recorder (the last minute of events, dumped around a trigger),
//! capture files, and what reads them offline.

pub mod config;
pub mod dump;
pub mod inspect;
pub mod recorder;
pub mod scope;
pub mod stage;

pub use config::RecorderConfig;
pub use recorder::{Dump, DumpRequest, Recorder};
pub use scope::Scope;
