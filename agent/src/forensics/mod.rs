//! Forensics: what Vigil keeps of events for later study (capture files, the flight recorder).

pub mod capture;
