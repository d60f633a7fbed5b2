//! Writing a dump as a capture file, on the dump writer's thread: the events become the API's
//! messages, so that any reader of the format (`vigil replay`, `vigil inspect`) reads them
//! without the node they came from.

use std::{
    collections::{BTreeMap, HashSet},
    path::{Path, PathBuf},
};

use super::Dump;
use crate::clock::BootClock;

#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    #[error("creating the dump directory {path}")]
    Dir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Capture(#[from] super::capture::CaptureError),
}

/// What a dump became.
#[derive(Clone, Debug, Default)]
pub struct Written {
    pub path: PathBuf,
    pub events: u64,
    /// Distinct processes (tgid and start time) among the events.
    pub processes: u64,
    /// The file's size.
    pub bytes: u64,
    /// Events by kind.
    pub kinds: BTreeMap<String, u64>,
    /// The scope as the header names it (`tree:PID`...).
    pub scope: String,
}

pub struct DumpWriter {
    pub dir: PathBuf,
    pub node: String,
    pub clock: BootClock,
}

impl DumpWriter {
    /// Writes `dump` to a new file in the dump directory.
    pub fn write(&self, dump: &Dump) -> Result<Written, DumpError> {
        std::fs::create_dir_all(&self.dir).map_err(|source| DumpError::Dir {
            path: self.dir.clone(),
            source,
        })?;
        let path = self.dir.join(file_name(&self.node, &self.clock, dump));
        let bytes = write_capture(&path, &self.node, &self.clock, dump)?;
        let mut kinds = BTreeMap::new();
        let mut processes = HashSet::new();
        for event in &dump.events {
            *kinds.entry(event.detail.kind().to_owned()).or_default() += 1;
            if let Some(process) = event.process.as_deref() {
                processes.insert(process.key);
            }
        }
        Ok(Written {
            path,
            events: dump.events.len() as u64,
            processes: processes.len() as u64,
            bytes,
            kinds,
            scope: dump.request.scope.describe(),
        })
    }
}

/// `vigil-<node>-<trigger time>-<reason>-<id>.vcap`, with unsafe characters replaced.
fn file_name(node: &str, clock: &BootClock, dump: &Dump) -> String {
    let time = clock
        .rfc3339(dump.trigger_ns)
        .replace([':', '.'], "")
        .replace('-', "");
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .take(64)
            .collect()
    };
    format!(
        "vigil-{}-{}-{}-{}.vcap",
        clean(node),
        time,
        clean(&dump.request.reason),
        dump.request.id
    )
}

/// Writes the file; returns its size.
fn write_capture(
    path: &Path,
    node: &str,
    clock: &BootClock,
    dump: &Dump,
) -> Result<u64, DumpError> {
    let mut header = super::capture::header(node);
    let request = &dump.request;
    header.metadata.extend([
        ("trigger".to_owned(), request.reason.clone()),
        ("trigger_time".to_owned(), clock.rfc3339(dump.trigger_ns)),
        (
            "pre_trigger_s".to_owned(),
            (request.pre_ns / 1_000_000_000).to_string(),
        ),
        (
            "post_trigger_s".to_owned(),
            (request.post_ns / 1_000_000_000).to_string(),
        ),
        ("scope".to_owned(), request.scope.describe()),
    ]);
    header.metadata.extend(request.metadata.iter().cloned());
    let mut writer = super::capture::CaptureWriter::create(path, &header)?;
    for event in &dump.events {
        writer.write(&crate::api::convert::event(event, node, clock))?;
    }
    writer.finish()?;
    Ok(std::fs::metadata(path).map_or(0, |m| m.len()))
}
