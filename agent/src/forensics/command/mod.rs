//! The forensics commands: `vigil capture record|dump` (capture files from a running agent,
//! through its API), `vigil replay` (policies over capture files, offline) and `vigil
//! inspect` (what a capture file holds). Each takes its output streams, so that tests run
//! them as the binary does.

pub mod dump;
pub mod inspect;
pub mod record;
pub mod replay;
mod units;

use std::io::Write;

use clap::{Args, Subcommand};

use crate::api::proto;

pub use units::{parse_duration, parse_size};

/// The agent's API socket by default.
pub const DEFAULT_SOCKET: &str = "/run/vigil/vigil.sock";

#[derive(Args, Debug)]
pub struct CaptureArgs {
    #[command(subcommand)]
    pub command: CaptureCommand,
}

#[derive(Subcommand, Debug)]
pub enum CaptureCommand {
    /// Record the agent's event stream into rotating capture files until SIGINT or SIGTERM.
    Record(record::RecordArgs),
    /// Write the flight recorder's ring (optionally one process tree, container or pod) to a
    /// capture file on the agent's node, and print where.
    Dump(dump::DumpArgs),
}

/// What reading capture files met, and the exit status it makes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Findings printed (`vigil replay`).
    pub findings: u64,
    /// Files that could not be read at all.
    pub unreadable: u64,
    /// Damaged ranges skipped (each one named on stderr).
    pub damaged: u64,
    /// Records that could not be restored to events (`vigil replay`).
    pub not_restored: u64,
}

impl Outcome {
    /// 0: all read; 3: read, but some of it was damaged (what was intact was used); 1: some
    /// file could not be read at all.
    pub fn exit_code(&self) -> u8 {
        if self.unreadable > 0 {
            1
        } else if self.damaged > 0 || self.not_restored > 0 {
            3
        } else {
            0
        }
    }
}

/// Writes `event` as a readable line or as JSON; `false` when `out` is closed (`| head`).
pub fn write_event(out: &mut dyn Write, event: &proto::Event, json: bool) -> std::io::Result<bool> {
    let written = if json {
        serde_json::to_writer(&mut *out, event)
            .map_err(std::io::Error::other)
            .and_then(|()| writeln!(out))
    } else {
        writeln!(out, "{}", crate::api::client::line(event))
    };
    match written.and_then(|()| out.flush()) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests;
