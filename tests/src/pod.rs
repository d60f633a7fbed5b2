//! Pods and containers created through the CRI API, as the kubelet creates them: a pod
//! sandbox under a kubelet-style cgroup parent with the kubelet's labels, then containers in
//! it. A [`Pod`] stops and removes its sandbox (and so its containers) when dropped.

use std::{
    collections::{BTreeMap, HashMap},
    fmt::Debug,
    future::Future,
    sync::atomic::{AtomicU32, Ordering},
    time::{SystemTime, UNIX_EPOCH},
};

use vigil::enrich::cri::api;

use crate::containerd::{CALL_TIMEOUT, Containerd};

/// What the kubelet would know of a pod.
#[derive(Clone, Debug)]
pub struct PodSpec {
    pub name: String,
    pub namespace: String,
    pub uid: String,
    /// The pod's own labels (the kubelet adds its `io.kubernetes.*` ones).
    pub labels: BTreeMap<String, String>,
}

impl PodSpec {
    /// A pod with a name and uid no other test uses, and labels `app=vigil-test` and
    /// `case=<case>`.
    pub fn unique(case: &str) -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let uid = format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            std::process::id(),
            n & 0xffff,
            (nanos >> 48) & 0xfff,
            (nanos >> 36) & 0xfff,
            nanos & 0xffff_ffff_ffff
        );
        Self {
            name: format!("{case}-{n}"),
            namespace: "vigil-test".into(),
            uid,
            labels: [("app", "vigil-test"), ("case", case)]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        }
    }

    /// The cgroup parent the kubelet gives a best-effort pod (cgroupfs driver).
    pub fn cgroup_parent(&self) -> String {
        format!("/kubepods/besteffort/pod{}", self.uid)
    }

    fn kubelet_labels(&self) -> HashMap<String, String> {
        [
            ("io.kubernetes.pod.name", &self.name),
            ("io.kubernetes.pod.namespace", &self.namespace),
            ("io.kubernetes.pod.uid", &self.uid),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.clone()))
        .collect()
    }
}

/// A running pod sandbox.
pub struct Pod<'a> {
    containerd: &'a Containerd,
    pub spec: PodSpec,
    /// The sandbox id (also the id of its pause container).
    pub id: String,
    config: api::PodSandboxConfig,
}

/// Host network and the pod's own pid and ipc namespaces: no CNI needed.
fn namespaces() -> api::NamespaceOption {
    api::NamespaceOption {
        network: api::NamespaceMode::Node as i32,
        pid: api::NamespaceMode::Container as i32,
        ipc: api::NamespaceMode::Pod as i32,
        ..Default::default()
    }
}

impl Containerd {
    /// Runs a pod sandbox for `spec`, with the pause image this containerd was given.
    #[track_caller]
    pub fn run_pod(&self, spec: PodSpec) -> Pod<'_> {
        let log_directory = self.dir().join("logs").join(&spec.uid);
        std::fs::create_dir_all(&log_directory).expect("pod log folder");
        let mut labels = spec.kubelet_labels();
        labels.extend(spec.labels.clone());
        let config = api::PodSandboxConfig {
            metadata: Some(api::PodSandboxMetadata {
                name: spec.name.clone(),
                uid: spec.uid.clone(),
                namespace: spec.namespace.clone(),
                attempt: 0,
            }),
            log_directory: log_directory.display().to_string(),
            labels,
            linux: Some(api::LinuxPodSandboxConfig {
                cgroup_parent: spec.cgroup_parent(),
                security_context: Some(api::LinuxSandboxSecurityContext {
                    namespace_options: Some(namespaces()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        self.cgroup_parents.borrow_mut().push(spec.cgroup_parent());
        let mut client = self.client.clone();
        let request = api::RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: String::new(),
        };
        let id = self
            .call("RunPodSandbox", client.run_pod_sandbox(request))
            .into_inner()
            .pod_sandbox_id;
        Pod {
            containerd: self,
            spec,
            id,
            config,
        }
    }

    /// Runs one CRI call to completion, within [`CALL_TIMEOUT`].
    #[track_caller]
    pub(crate) fn call<R, E: Debug>(
        &self,
        what: &str,
        call: impl Future<Output = Result<R, E>>,
    ) -> R {
        match self
            .rt
            .block_on(async { tokio::time::timeout(CALL_TIMEOUT, call).await })
        {
            Ok(Ok(response)) => response,
            Ok(Err(error)) => panic!("CRI {what} failed: {error:?}"),
            Err(_) => panic!("CRI {what} took more than {CALL_TIMEOUT:?}"),
        }
    }
}

impl Pod<'_> {
    /// Creates and starts a container of the test image running `command`, with the
    /// kubelet's labels plus `labels`; returns its id.
    #[track_caller]
    pub fn start_container(&self, name: &str, command: &[&str], labels: &[(&str, &str)]) -> String {
        let mut all = self.spec.kubelet_labels();
        all.insert("io.kubernetes.container.name".into(), name.into());
        all.extend(
            labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        let config = api::ContainerConfig {
            metadata: Some(api::ContainerMetadata {
                name: name.into(),
                attempt: 0,
            }),
            image: Some(api::ImageSpec {
                image: self.containerd.test_image.reference.clone(),
                ..Default::default()
            }),
            command: command.iter().map(|&c| c.to_owned()).collect(),
            labels: all,
            log_path: format!("{name}.log"),
            linux: Some(api::LinuxContainerConfig {
                security_context: Some(api::LinuxContainerSecurityContext {
                    namespace_options: Some(namespaces()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut client = self.containerd.client.clone();
        let created = self.containerd.call(
            "CreateContainer",
            client.create_container(api::CreateContainerRequest {
                pod_sandbox_id: self.id.clone(),
                config: Some(config),
                sandbox_config: Some(self.config.clone()),
            }),
        );
        let id = created.into_inner().container_id;
        self.containerd.call(
            "StartContainer",
            client.start_container(api::StartContainerRequest {
                container_id: id.clone(),
            }),
        );
        id
    }

    /// The host pid of the first process of container `id`, from the runtime's verbose
    /// `ContainerStatus` (its `info` JSON), as the kubelet's tools read it.
    #[track_caller]
    pub fn container_pid(&self, id: &str) -> u32 {
        let mut client = self.containerd.client.clone();
        let status = self
            .containerd
            .call(
                "ContainerStatus",
                client.container_status(api::ContainerStatusRequest {
                    container_id: id.into(),
                    verbose: true,
                }),
            )
            .into_inner();
        let info = status
            .info
            .get("info")
            .unwrap_or_else(|| panic!("no verbose info for container {id}: {status:?}"));
        let value: serde_json::Value = serde_json::from_str(info).expect("the info is JSON");
        value["pid"]
            .as_u64()
            .and_then(|pid| u32::try_from(pid).ok())
            .filter(|&pid| pid > 0)
            .unwrap_or_else(|| panic!("no pid in the info of container {id}: {info}"))
    }

    /// Runs `cmd` in the container `id` (`ExecSync`) and returns its exit code and stdout.
    #[track_caller]
    pub fn exec_sync(&self, id: &str, cmd: &[&str]) -> (i32, String) {
        let mut client = self.containerd.client.clone();
        let response = self
            .containerd
            .call(
                "ExecSync",
                client.exec_sync(api::ExecSyncRequest {
                    container_id: id.into(),
                    cmd: cmd.iter().map(|&c| c.to_owned()).collect(),
                    timeout: 10,
                }),
            )
            .into_inner();
        (
            response.exit_code,
            String::from_utf8_lossy(&response.stdout).into_owned(),
        )
    }
}

impl Drop for Pod<'_> {
    fn drop(&mut self) {
        let mut client = self.containerd.client.clone();
        let id = self.id.clone();
        let _ = self.containerd.rt.block_on(async move {
            let stop = client.stop_pod_sandbox(api::StopPodSandboxRequest {
                pod_sandbox_id: id.clone(),
            });
            let _ = tokio::time::timeout(CALL_TIMEOUT, stop).await;
            let remove =
                client.remove_pod_sandbox(api::RemovePodSandboxRequest { pod_sandbox_id: id });
            tokio::time::timeout(CALL_TIMEOUT, remove).await
        });
    }
}
