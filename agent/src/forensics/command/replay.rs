//! `vigil replay FILE... [--policy DIR] [--json]`: the policies run again over recorded
//! events, with the live engine ([`crate::forensics::replay`]) and the live loader
//! ([`crate::policy::load::load`]). Findings go to stdout, one line each (`--json`: the API's
//! `Event` message); what each file held, its damage and what could not be restored go to
//! stderr, so that a damaged file still gives every finding of its intact frames.

use std::{io::Write, path::PathBuf, sync::Arc};

use anyhow::Context as _;

use super::{Outcome, write_event};
use crate::{
    forensics::{
        capture::CaptureReader,
        replay::{Replay, Replayed},
        restore,
    },
    policy::{PolicyConfig, PolicySet, load},
};

/// Restore errors printed per run; the rest are counted.
const ERRORS_SHOWN: u64 = 10;

#[derive(clap::Args, Debug)]
pub struct ReplayArgs {
    /// Capture files (.vcap), replayed in the order given.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// A directory of policy files (`*.yaml`, as `[policy] directory`) instead of the
    /// embedded default pack.
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// With --policy: the default pack too, as `[policy] default_pack = true` loads it.
    #[arg(long, requires = "policy")]
    pub with_default: bool,
    /// Evaluate every event as if seen on this node (rules that name nodes), instead of
    /// the node that recorded it.
    #[arg(long)]
    pub node: Option<String>,
    /// One finding per line as JSON (the API's `Event` message) instead of a readable line.
    #[arg(long)]
    pub json: bool,
}

/// The rules `args` ask for, loaded as `vigil run` loads `[policy]`.
fn policies(args: &ReplayArgs) -> anyhow::Result<PolicySet> {
    let config = PolicyConfig {
        enabled: true,
        default_pack: args.policy.is_none() || args.with_default,
        directory: args
            .policy
            .as_ref()
            .map(|d| d.display().to_string())
            .unwrap_or_default(),
        ..PolicyConfig::default()
    };
    if let Some(dir) = &args.policy
        && !dir.is_dir()
    {
        anyhow::bail!("--policy {}: not a directory", dir.display());
    }
    load::load(&config).context("loading the policies")
}

/// Replays `args.files` against the policies they name; findings to `out`, the report to
/// `err`.
pub fn run(args: &ReplayArgs, out: &mut dyn Write, err: &mut dyn Write) -> anyhow::Result<Outcome> {
    replay_files(Arc::new(policies(args)?), args, out, err)
}

/// [`run`] with the policies already loaded.
pub fn replay_files(
    set: Arc<PolicySet>,
    args: &ReplayArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> anyhow::Result<Outcome> {
    if set.rules().is_empty() {
        writeln!(err, "vigil replay: warning: no rules to replay")?;
    }
    let mut replay = Replay::new(set, args.node.clone());
    let mut outcome = Outcome::default();
    let mut found: Vec<Replayed> = Vec::new();
    let clock = restore::clock();
    for file in &args.files {
        let reader = match CaptureReader::open(file) {
            Ok(reader) => reader,
            Err(error) => {
                writeln!(err, "vigil replay: {}", crate::telemetry::chain(&error))?;
                outcome.unreadable += 1;
                continue;
            }
        };
        let before = replay.stats();
        let mut events = reader.events();
        for (index, item) in (&mut events).enumerate() {
            let message = match item {
                Ok(message) => message,
                Err(damage) => {
                    outcome.damaged += 1;
                    writeln!(err, "vigil replay: {}: damaged: {damage}", file.display())?;
                    continue;
                }
            };
            if let Err(error) = replay.push(&message, &mut found) {
                outcome.not_restored += 1;
                if outcome.not_restored <= ERRORS_SHOWN {
                    writeln!(
                        err,
                        "vigil replay: {}: record {index} ({} at {}) not replayed: {error}",
                        file.display(),
                        message.kind,
                        message.time
                    )?;
                }
            }
            for finding in found.drain(..) {
                let printed = crate::api::convert::event(&finding.event, &finding.node, &clock);
                if !write_event(out, &printed, args.json)? {
                    // A closed stdout (`| head`): nothing more to print.
                    return Ok(outcome);
                }
                outcome.findings += 1;
            }
        }
        let after = replay.stats();
        writeln!(
            err,
            "vigil replay: {}: {} records, {} evaluated, {} findings{}",
            file.display(),
            after.read - before.read,
            after.evaluated - before.evaluated,
            after.findings - before.findings,
            if events.reader().finished() {
                ""
            } else {
                " (unfinished file)"
            }
        )?;
    }
    let stats = replay.stats();
    if outcome.not_restored > ERRORS_SHOWN {
        writeln!(
            err,
            "vigil replay: {} more records not replayed",
            outcome.not_restored - ERRORS_SHOWN
        )?;
    }
    writeln!(
        err,
        "vigil replay: {} files ({} unreadable), {} events evaluated, {} findings; {} recorded findings and enforcement records skipped",
        args.files.len(),
        outcome.unreadable,
        stats.evaluated,
        stats.findings,
        stats.skipped
    )?;
    Ok(outcome)
}
