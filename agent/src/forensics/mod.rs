//! Forensics: recorded events read back (restore) and policies re-run over them (replay).

pub mod replay;
pub mod restore;
