//! Exporters: where events leave the agent.

pub mod escape;
pub mod file;
pub mod json;
pub mod metrics_http;

use std::io::Write;

use crate::event::Event;

/// Receives every event the pipeline produces, a batch at a time.
pub trait Exporter: Send {
    /// Takes a batch. An error stops the agent (e.g. the output was closed).
    fn export(&mut self, events: &[Event]) -> std::io::Result<()>;
}

/// JSON lines to any writer (stdout, a file), flushed after each batch.
pub struct JsonLines<W: Write + Send> {
    renderer: json::JsonRenderer,
    writer: W,
    buf: Vec<u8>,
}

impl<W: Write + Send> JsonLines<W> {
    pub fn new(renderer: json::JsonRenderer, writer: W) -> Self {
        Self {
            renderer,
            writer,
            buf: Vec::with_capacity(64 * 1024),
        }
    }
}

impl<W: Write + Send> Exporter for JsonLines<W> {
    fn export(&mut self, events: &[Event]) -> std::io::Result<()> {
        self.buf.clear();
        for event in events {
            self.renderer.render(event, &mut self.buf);
        }
        self.writer.write_all(&self.buf)?;
        self.writer.flush()
    }
}

/// Hands batches to a channel: for tests and embedders that consume events in-process.
pub struct ChannelExporter(pub std::sync::mpsc::Sender<Vec<Event>>);

impl Exporter for ChannelExporter {
    fn export(&mut self, events: &[Event]) -> std::io::Result<()> {
        self.0
            .send(events.to_vec())
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "receiver gone"))
    }
}
