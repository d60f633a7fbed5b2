//! Forensics: the flight recorder (the last minute of events, dumped around a trigger),
//! capture files (`.vcap`), and what reads them offline: `vigil inspect`, and `replay`
//! (recorded events restored and policies re-run over them). `command` holds the commands:
//! `vigil capture record|dump`, `vigil replay`, `vigil inspect`.

pub mod capture;
pub mod command;
pub mod config;
pub mod dump;
pub mod inspect;
pub mod recorder;
pub mod replay;
pub mod restore;
pub mod scope;
pub mod stage;

pub use config::RecorderConfig;
pub use recorder::{Dump, DumpRequest, Recorder};
pub use scope::Scope;
