//! A unix socket where a container runtime should be, that does something hostile to every
//! client: never answers, answers random bytes or HTTP/1, or hangs up at once. Served by a
//! thread of the test; stopped (and every held connection closed) when dropped.

use std::{
    io::Write as _,
    os::unix::net::{UnixListener, UnixStream},
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

/// What the socket does to each connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// Accepts, then never reads nor answers (held open until the socket is dropped).
    Silent,
    /// 4 KiB of random bytes, then hangs up.
    RandomBytes,
    /// An HTTP/1.1 response, then hangs up.
    Http1,
    /// Hangs up at once.
    Close,
}

pub struct HostileSocket {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    accepted: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl HostileSocket {
    /// Binds `path` and serves it with `behaviour` until dropped.
    pub fn start(path: &Path, behaviour: Behaviour) -> Self {
        let listener =
            UnixListener::bind(path).unwrap_or_else(|e| panic!("binding {}: {e}", path.display()));
        listener.set_nonblocking(true).expect("non-blocking accept");
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicUsize::new(0));
        let thread = {
            let (stop, accepted) = (stop.clone(), accepted.clone());
            std::thread::spawn(move || serve(&listener, behaviour, &stop, &accepted))
        };
        Self {
            path: path.to_owned(),
            stop,
            accepted,
            thread: Some(thread),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::Relaxed)
    }
}

fn serve(listener: &UnixListener, behaviour: Behaviour, stop: &AtomicBool, accepted: &AtomicUsize) {
    let mut held: Vec<UnixStream> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let Ok((mut stream, _)) = listener.accept() else {
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        accepted.fetch_add(1, Ordering::Relaxed);
        // The client's errors (a reset) are what is being tested, not this side's.
        let _ = match behaviour {
            Behaviour::Silent => {
                held.push(stream);
                continue;
            }
            Behaviour::RandomBytes => stream.write_all(&random_bytes(4096)),
            Behaviour::Http1 => stream.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 14\r\n\r\n<html></html>\n",
            ),
            Behaviour::Close => Ok(()),
        };
        let _ = stream.shutdown(std::net::Shutdown::Both);
    }
}

/// `n` bytes of xorshift noise (the same every run).
fn random_bytes(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()[0]
        })
        .collect()
}

impl Drop for HostileSocket {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}
