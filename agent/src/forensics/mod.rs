//! Forensics: the flight recorder (the last minute of events, dumped around a trigger),
//! capture files (`.vcap`), and what reads them offline (`vigil inspect`, `vigil replay`).

pub mod capture;
pub mod config;
pub mod dump;
pub mod inspect;
pub mod recorder;
pub mod scope;
pub mod stage;

pub use config::RecorderConfig;
pub use recorder::{Dump, DumpRequest, Recorder};
pub use scope::Scope;
