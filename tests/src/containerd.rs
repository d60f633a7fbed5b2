//! A private containerd with its CRI plugin, started by the test itself: its own root, state,
//! sockets and images (built from busybox-static), nothing shared with a system containerd.
//!
//! Dropping it stops every pod it still has, stops containerd, ends what it left running
//! (shims, container processes: found by this instance's paths and pod cgroups), unmounts
//! what it left mounted and removes the cgroup folders of its pods in every hierarchy, even
//! when the test failed.

use std::{
    io::Write as _,
    os::unix::ffi::OsStrExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use tokio::runtime::Runtime;
use vigil::enrich::cri::{RuntimeClient, api, connect_channel};

use crate::{
    gate,
    image::{self, Image},
    spawn::TempDir,
};

/// The image the test containers run.
pub const TEST_IMAGE: &str = "localhost/testimg:1";
/// The sandbox ("pause") image this containerd is configured with.
pub const PAUSE_IMAGE: &str = "localhost/pause:local";
/// containerd's namespace for CRI objects.
const CRI_NAMESPACE: &str = "k8s.io";
const START_TIMEOUT: Duration = Duration::from_secs(20);
pub(crate) const CALL_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Containerd {
    dir: TempDir,
    socket: PathBuf,
    child: Option<Child>,
    pub(crate) rt: Runtime,
    pub(crate) client: RuntimeClient,
    pub test_image: Image,
    /// Cgroup parents of the pods created (relative to each hierarchy's root).
    pub(crate) cgroup_parents: std::cell::RefCell<Vec<String>>,
    /// Cgroup folders (relative) that did not exist before: removed if left empty.
    created_parents: Vec<String>,
}

impl Containerd {
    /// Starts containerd and imports the test images; `None` (after saying why) when this
    /// machine lacks what it needs; under `VIGIL_REQUIRE_BPF=1` that is a failure instead.
    pub fn start() -> Option<Self> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            gate::skip("a private containerd needs root");
            return None;
        }
        let missing: Vec<&str> = ["containerd", "ctr", "runc", "tar", "sha256sum"]
            .into_iter()
            .filter(|tool| find_in_path(tool).is_none())
            .collect();
        if !missing.is_empty() {
            gate::skip(&format!(
                "{} not installed (`cargo xtask setup` installs containerd and runc)",
                missing.join(", ")
            ));
            return None;
        }
        if !image::busybox_is_static() {
            gate::skip("no static busybox at /bin/busybox (Debian package busybox-static)");
            return None;
        }
        let created_parents = ["kubepods", "kubepods/besteffort"]
            .into_iter()
            .filter(|p| !cgroup_v2_dir(p).is_some_and(|d| d.exists()))
            .map(str::to_owned)
            .collect();
        // A short path: unix socket paths are limited to 108 bytes.
        let dir = TempDir::new_in(Path::new("/tmp"), "ctd");
        let socket = dir.path().join("containerd.sock");
        let config = dir.path().join("config.toml");
        std::fs::write(&config, private_config(dir.path())).expect("writing containerd config");
        let log = std::fs::File::create(dir.path().join("containerd.log")).expect("log file");
        let child = Command::new(find_in_path("containerd").expect("checked"))
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("starting containerd");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime for the CRI client");
        let client = rt.block_on(wait_for_cri(&socket));
        let mut containerd = Self {
            socket,
            child: Some(child),
            rt,
            client: client.unwrap_or_else(|| {
                let log = std::fs::read_to_string(dir.path().join("containerd.log"));
                panic!("containerd did not answer on its CRI socket: {log:?}")
            }),
            test_image: Image {
                reference: String::new(),
                id: String::new(),
                archive: PathBuf::new(),
            },
            cgroup_parents: Default::default(),
            created_parents,
            dir,
        };
        let images = containerd.dir.path().join("images");
        containerd.test_image = image::build(&images.join("test"), TEST_IMAGE, &["/bin/sh"]);
        let pause = image::build(
            &images.join("pause"),
            PAUSE_IMAGE,
            &["/bin/sleep", "100000"],
        );
        containerd.import(&pause);
        let test_image = containerd.test_image.clone();
        containerd.import(&test_image);
        Some(containerd)
    }

    /// The CRI socket, for the agent's `enrich.cri_socket`.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    #[track_caller]
    fn import(&self, image: &Image) {
        let out = Command::new("ctr")
            .arg("-a")
            .arg(&self.socket)
            .args(["-n", CRI_NAMESPACE, "image", "import"])
            .arg(&image.archive)
            .output()
            .expect("running ctr");
        assert!(
            out.status.success(),
            "ctr image import {}: {}",
            image.reference,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Stops and removes every pod sandbox (and so its containers).
    fn remove_all_pods(&mut self) {
        let mut client = self.client.clone();
        self.rt.block_on(async move {
            let listed = tokio::time::timeout(
                CALL_TIMEOUT,
                client.list_pod_sandbox(api::ListPodSandboxRequest::default()),
            )
            .await;
            let Ok(Ok(listed)) = listed else { return };
            for sandbox in listed.into_inner().items {
                let id = sandbox.id;
                let _ = tokio::time::timeout(
                    CALL_TIMEOUT,
                    client.stop_pod_sandbox(api::StopPodSandboxRequest {
                        pod_sandbox_id: id.clone(),
                    }),
                )
                .await;
                let _ = tokio::time::timeout(
                    CALL_TIMEOUT,
                    client.remove_pod_sandbox(api::RemovePodSandboxRequest { pod_sandbox_id: id }),
                )
                .await;
            }
        });
    }

    /// Ends processes this instance left: shims (named by its paths) and anything still in
    /// the cgroups of its pods. Each is signalled by pid, after checking what it is.
    fn kill_leftovers(&self) {
        let dir = self.dir.path().as_os_str().as_bytes().to_vec();
        let parents = self.cgroup_parents.borrow().clone();
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return;
        };
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<i32>().ok())
            else {
                continue;
            };
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            let cgroup = std::fs::read_to_string(entry.path().join("cgroup")).unwrap_or_default();
            let ours = cmdline.windows(dir.len()).any(|w| w == dir.as_slice())
                || parents
                    .iter()
                    .any(|p| cgroup.lines().any(|l| l.contains(p.as_str())));
            if ours && pid != std::process::id() as i32 {
                // SAFETY: kill(2) has no memory-safety preconditions.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }

    /// Unmounts what is still mounted under this instance's folder, deepest first.
    fn unmount_leftovers(&self) {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let dir = self.dir.path().to_string_lossy().into_owned();
        let mut points: Vec<&str> = mountinfo
            .lines()
            .filter_map(|l| l.split_whitespace().nth(4))
            .filter(|p| p.starts_with(&dir))
            .collect();
        points.sort_by_key(|p| std::cmp::Reverse(p.len()));
        for point in points {
            let Ok(path) = std::ffi::CString::new(point) else {
                continue;
            };
            // SAFETY: `path` is a valid NUL-terminated string that outlives the call.
            unsafe { libc::umount2(path.as_ptr(), libc::MNT_DETACH) };
        }
    }

    /// Removes the cgroup folders of this instance's pods in every hierarchy, and the
    /// parents it created if they are empty.
    fn remove_cgroups(&self) {
        let parents = self.cgroup_parents.borrow().clone();
        for root in cgroup_roots() {
            for parent in &parents {
                remove_tree(&root.join(parent.trim_start_matches('/')));
            }
            for created in self.created_parents.iter().rev() {
                let _ = std::fs::remove_dir(root.join(created));
            }
        }
    }

    fn stop_daemon(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(pid) = i32::try_from(child.id()) {
            // SAFETY: kill(2) has no memory-safety preconditions; the child is not reaped.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log =
                std::fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            let _ = writeln!(
                std::io::stderr(),
                "containerd log (end):\n{}",
                tail.join("\n")
            );
        }
        self.remove_all_pods();
        self.stop_daemon();
        self.kill_leftovers();
        // Killed processes leave their cgroups a moment later.
        std::thread::sleep(Duration::from_millis(100));
        self.unmount_leftovers();
        self.remove_cgroups();
    }
}

/// Waits for containerd's CRI to answer `Version`.
async fn wait_for_cri(socket: &Path) -> Option<RuntimeClient> {
    let deadline = Instant::now() + START_TIMEOUT;
    while Instant::now() < deadline {
        if socket.exists()
            && let Ok(channel) = connect_channel(socket, Duration::from_secs(2)).await
        {
            let mut client = RuntimeClient::new(channel);
            if client.version(api::VersionRequest::default()).await.is_ok() {
                return Some(client);
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

/// `containerd config default`, with everything private to `dir`, the sandbox image built
/// here, and what runc needs on this machine.
fn private_config(dir: &Path) -> String {
    let out = Command::new("containerd")
        .args(["config", "default"])
        .output()
        .expect("running containerd config default");
    assert!(out.status.success(), "containerd config default: {out:?}");
    let default = String::from_utf8(out.stdout).expect("config is text");
    let d = dir.display();
    let text = |value: String| format!("{value:?}");
    let cri = "plugins.\"io.containerd.grpc.v1.cri\"";
    let edits: [(String, &str, String); 9] = [
        (String::new(), "root", text(format!("{d}/root"))),
        (String::new(), "state", text(format!("{d}/state"))),
        (
            "grpc".into(),
            "address",
            text(format!("{d}/containerd.sock")),
        ),
        (
            "ttrpc".into(),
            "address",
            text(format!("{d}/containerd.sock.ttrpc")),
        ),
        (cri.into(), "sandbox_image", text(PAUSE_IMAGE.into())),
        // Without CAP_SYS_RESOURCE in this sandbox, runc cannot lower oom_score_adj.
        (cri.into(), "restrict_oom_score_adj", "true".into()),
        (format!("{cri}.cni"), "bin_dir", text("/usr/lib/cni".into())),
        (format!("{cri}.cni"), "conf_dir", text(format!("{d}/cni"))),
        (
            "plugins.\"io.containerd.internal.v1.opt\"".into(),
            "path",
            text(format!("{d}/opt")),
        ),
    ];
    let mut section = String::new();
    let mut done = 0;
    let mut config = String::new();
    for line in default.lines() {
        let trimmed = line.trim();
        if let Some(name) = trimmed.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_owned();
        }
        let key = trimmed.split_once('=').map(|(k, _)| k.trim());
        match edits
            .iter()
            .find(|(s, k, _)| *s == section && Some(*k) == key)
        {
            Some((_, key, value)) => {
                config.push_str(&format!("{key} = {value}\n"));
                done += 1;
            }
            None => {
                config.push_str(line);
                config.push('\n');
            }
        }
    }
    assert_eq!(
        done,
        edits.len(),
        "`containerd config default` lacks keys this test sets:\n{default}"
    );
    config
}

fn find_in_path(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path)
        .map(|dir| dir.join(tool))
        .find(|candidate| candidate.is_file())
}

/// The mount points of every cgroup hierarchy (v1 and v2).
fn cgroup_roots() -> Vec<PathBuf> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    mountinfo
        .lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let fstype = right.split_whitespace().next()?;
            matches!(fstype, "cgroup" | "cgroup2")
                .then(|| left.split_whitespace().nth(4).map(PathBuf::from))?
        })
        .collect()
}

/// The cgroup v2 folder of `relative`, when cgroup v2 is mounted.
fn cgroup_v2_dir(relative: &str) -> Option<PathBuf> {
    vigil::cgroup::CgroupFs::discover()
        .v2_root
        .map(|root| root.join(relative))
}

/// Removes a cgroup folder and the folders under it, deepest first (cgroupfs folders go
/// with rmdir, never with their files).
fn remove_tree(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                remove_tree(&entry.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}
