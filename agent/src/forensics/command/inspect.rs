//! `vigil inspect FILE [--tree [--pid P | --container ID]] [--json]`: a capture file's
//! summary with its damage named, or the process tree of its events
//! ([`crate::forensics::inspect`]).

use std::{io::Write, path::PathBuf};

use super::Outcome;
use crate::forensics::{capture::CaptureReader, inspect};

#[derive(clap::Args, Debug)]
pub struct InspectArgs {
    pub file: PathBuf,
    #[arg(long)]
    pub tree: bool,
    /// Only the subtree of this process (with --tree).
    #[arg(long, requires = "tree")]
    pub pid: Option<u32>,
    /// Only the processes of this container (id or prefix; with --tree).
    #[arg(long, requires = "tree", conflicts_with = "pid")]
    pub container: Option<String>,
    /// JSON instead of the readable report (with --tree).
    #[arg(long)]
    pub json: bool,
}

/// The report to `out`, damage met while reading the tree's events to `err`. A file that
/// cannot be opened at all is the error.
pub fn run(
    args: &InspectArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> anyhow::Result<Outcome> {
    let reader = CaptureReader::open(&args.file)?;
    let file = args.file.display();
    let mut outcome = Outcome::default();
    if !args.tree {
        let summary = reader.summary();
        writeln!(
            out,
            "{file}: format version {}, {} bytes",
            summary.version, summary.file_len
        )?;
        if let Some(h) = &summary.header {
            writeln!(
                out,
                "  node {} (kernel {}), agent {}",
                h.node, h.kernel_release, h.agent_version
            )?;
            for (key, value) in &h.metadata {
                writeln!(out, "  {key}: {value}")?;
            }
        }
        writeln!(
            out,
            "  {} events in {} frames, finished: {}",
            summary.events, summary.frames, summary.finished
        )?;
        for (kind, n) in &summary.kinds {
            writeln!(out, "    {kind}: {n}")?;
        }
        for damage in &summary.damage {
            writeln!(out, "  damage: {damage}")?;
        }
        outcome.damaged = summary.damage.len() as u64;
        return Ok(outcome);
    }
    let mut events = Vec::new();
    for item in reader.events() {
        match item {
            Ok(event) => events.push(event),
            Err(damage) => {
                outcome.damaged += 1;
                writeln!(err, "vigil inspect: {file}: damaged: {damage}")?;
            }
        }
    }
    let root = match (args.pid, &args.container) {
        (Some(pid), _) => inspect::Root::Pid(pid),
        (None, Some(id)) => inspect::Root::Container(id.clone()),
        (None, None) => inspect::Root::All,
    };
    let roots = inspect::tree(&events, &root);
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&roots)?)?;
    } else {
        write!(out, "{}", inspect::render(&roots))?;
    }
    Ok(outcome)
}
