//! The Kubernetes manifests (`deploy/kubernetes/`): every overlay rendered with `kubectl
//! kustomize`, every object validated against the OpenAPI schemas of a current Kubernetes
//! release (PyPI `kubernetes-validate`, strict), what the agent needs asserted on the objects,
//! the shipped config and policies checked by the agent itself, and the committed plain
//! manifest compared with the rendered base.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail, ensure};
use serde_json::Value;

use super::{Checks, Context, capabilities};
use crate::cmd;

pub const DIR: &str = "deploy/kubernetes";
/// The rendered base, for `kubectl apply -f`.
pub const PLAIN: &str = "deploy/kubernetes/vigil.yaml";
const OVERLAYS: [&str; 3] = ["base", "overlays/privileged", "overlays/metrics"];
/// The Kubernetes release whose schemas the objects must satisfy.
pub const KUBERNETES_VERSION: &str = "1.37.0";
const METRICS_PORT: u64 = 9464;

/// `kubectl kustomize deploy/kubernetes/<overlay>`.
pub fn render(ctx: &Context, overlay: &str) -> Result<String> {
    cmd::output(
        Command::new(&ctx.tools.kubectl)
            .arg("kustomize")
            .arg(Path::new(DIR).join(overlay)),
    )
}

/// Copies the default pack into the base and writes the rendered base to [`PLAIN`].
pub fn write(ctx: &Context) -> Result<()> {
    for (name, text) in default_policies()? {
        let path = Path::new(DIR).join("base/policies").join(&name);
        fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    let rendered = render(ctx, "base")?;
    fs::write(PLAIN, rendered).with_context(|| format!("writing {PLAIN}"))?;
    println!("deploy: wrote {PLAIN} and the base's policies");
    Ok(())
}

/// The `.yaml` files of policies/default, by name.
fn default_policies() -> Result<Vec<(String, String)>> {
    let mut files = Vec::new();
    for entry in fs::read_dir("policies/default").context("listing policies/default")? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let name = path
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            files.push((name, fs::read_to_string(&path)?));
        }
    }
    files.sort();
    Ok(files)
}

pub fn check(ctx: &Context, checks: &mut Checks) {
    let mut rendered = Vec::new();
    for overlay in OVERLAYS {
        let result = render(ctx, overlay).and_then(|yaml| {
            let file = ctx
                .scratch
                .join(format!("{}.yaml", overlay.replace('/', "-")));
            fs::write(&file, &yaml)?;
            let objects = to_json(ctx, &file)?;
            Ok((overlay, file, yaml, objects))
        });
        match result {
            Ok(r) => rendered.push(r),
            Err(e) => checks.fail(&format!("kustomize renders {overlay}"), &e),
        }
    }
    for (overlay, file, _, objects) in &rendered {
        checks.run(
            &format!("{overlay}: every object passes kubernetes-validate --strict"),
            || validate(ctx, file, objects),
        );
        checks.run(
            &format!("{overlay}: namespaced objects are in `vigil`"),
            || namespaced(objects),
        );
        checks.run(&format!("{overlay}: DaemonSet runs on every node with the host's PIDs, probes, node name and resources"), || {
            daemonset_shape(find(objects, "DaemonSet", "vigil")?)
        });
        checks.run(&format!("{overlay}: the agent's host mounts"), || {
            mounts(find(objects, "DaemonSet", "vigil")?)
        });
        checks.run(
            &format!(
                "{overlay}: the config the ConfigMap ships is valid and its paths are mounted"
            ),
            || config(ctx, objects),
        );
        checks.run(&format!("{overlay}: the policies the ConfigMap ships pass `vigil policy check` and equal policies/default"), || {
            policies(ctx, objects)
        });
    }
    for (overlay, _, yaml, objects) in &rendered {
        let security =
            find(objects, "DaemonSet", "vigil").map(|ds| container(ds)["securityContext"].clone());
        match *overlay {
            "base" => {
                checks.run(
                    "base: least privilege: explicit capabilities, nothing else",
                    || least_privilege(&security?),
                );
                checks.run(&format!("{PLAIN} is the rendered base"), || {
                    let committed = fs::read_to_string(PLAIN).with_context(|| format!("reading {PLAIN}"))?;
                    ensure!(
                        committed == *yaml,
                        "{PLAIN} differs from `kubectl kustomize {DIR}/base`: run `cargo xtask deploy --write`"
                    );
                    Ok(())
                });
            }
            "overlays/privileged" => {
                checks.run("privileged overlay: a privileged container", || {
                    let security = security?;
                    ensure!(
                        security["privileged"] == true,
                        "privileged is {}",
                        security["privileged"]
                    );
                    Ok(())
                })
            }
            _ => checks.run(
                "metrics overlay: a headless Service and a ServiceMonitor that finds it",
                || metrics(objects),
            ),
        }
    }
    if let Some((_, file, _, objects)) = rendered.first() {
        checks.run(
            "kubernetes-validate rejects a broken DaemonSet (the validator really checks)",
            || rejects_broken(ctx, file, objects),
        );
    }
}

/// The objects of a rendered file, through the venv's PyYAML (a dependency of
/// kubernetes-validate).
fn to_json(ctx: &Context, file: &Path) -> Result<Vec<Value>> {
    let script = "import json, sys, yaml\n\
                  docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]\n\
                  json.dump(docs, sys.stdout)";
    let out = cmd::output(
        Command::new(ctx.venv.join("bin/python"))
            .args(["-c", script])
            .arg(file),
    )?;
    serde_json::from_str(&out).context("the YAML-to-JSON helper printed no JSON array")
}

fn validate(ctx: &Context, file: &Path, objects: &[Value]) -> Result<()> {
    let out = Command::new(ctx.venv.join("bin/kubernetes-validate"))
        .args(["--strict", "-k", KUBERNETES_VERSION])
        .arg(file)
        .output()
        .context("running kubernetes-validate")?;
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(
        out.status.success(),
        "kubernetes-validate failed:\n{report}"
    );
    // Every object but the ServiceMonitor (a CRD the schemas do not have) must have passed.
    for object in objects {
        let kind = object["kind"].as_str().unwrap_or_default();
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        if kind == "ServiceMonitor" {
            ensure!(
                report.contains("Couldn't find schema for kind ServiceMonitor"),
                "{report}"
            );
            continue;
        }
        let passed = format!("passed for resource {}/{name}", kind.to_lowercase());
        ensure!(report.contains(&passed), "no `{passed}` in:\n{report}");
    }
    ensure!(
        !report.contains("ERROR") && !report.contains("FAIL"),
        "{report}"
    );
    Ok(())
}

/// A copy of the render with an unknown field and a wrong type in the DaemonSet must fail.
fn rejects_broken(ctx: &Context, file: &Path, objects: &[Value]) -> Result<()> {
    let mut broken = objects.to_vec();
    for object in &mut broken {
        if object["kind"] == "DaemonSet" {
            object["spec"]["template"]["spec"]["hostPID"] = Value::from("yes");
            object["spec"]["template"]["spec"]["hostPIDS"] = Value::from(true);
        }
    }
    let path = file.with_extension("broken.json");
    let docs: Vec<String> = broken.iter().map(Value::to_string).collect();
    // JSON is YAML: one document per object.
    fs::write(&path, docs.join("\n---\n"))?;
    let out = Command::new(ctx.venv.join("bin/kubernetes-validate"))
        .args(["--strict", "-k", KUBERNETES_VERSION])
        .arg(&path)
        .output()
        .context("running kubernetes-validate")?;
    let report =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    ensure!(
        !out.status.success(),
        "a DaemonSet with hostPID: \"yes\" passed:\n{report}"
    );
    ensure!(
        report.contains("hostPID"),
        "the failure does not name hostPID:\n{report}"
    );
    Ok(())
}

pub fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> Result<&'a Value> {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .with_context(|| format!("no {kind} named {name}"))
}

fn container(ds: &Value) -> &Value {
    &ds["spec"]["template"]["spec"]["containers"][0]
}

fn namespaced(objects: &[Value]) -> Result<()> {
    for object in objects {
        let kind = object["kind"].as_str().unwrap_or_default();
        if kind == "Namespace" {
            ensure!(
                object["metadata"]["name"] == "vigil",
                "namespace {}",
                object["metadata"]["name"]
            );
            continue;
        }
        ensure!(
            object["metadata"]["namespace"] == "vigil",
            "{kind} {} is in namespace {}",
            object["metadata"]["name"],
            object["metadata"]["namespace"]
        );
    }
    Ok(())
}

fn daemonset_shape(ds: &Value) -> Result<()> {
    let pod = &ds["spec"]["template"]["spec"];
    ensure!(pod["hostPID"] == true, "hostPID is {}", pod["hostPID"]);
    ensure!(
        pod["hostNetwork"].is_null(),
        "the agent needs no host network"
    );
    let tolerates_all = pod["tolerations"].as_array().is_some_and(|t| {
        t.iter()
            .any(|t| t["operator"] == "Exists" && t["key"].is_null() && t["effect"].is_null())
    });
    ensure!(
        tolerates_all,
        "no toleration of every taint: {}",
        pod["tolerations"]
    );
    ensure!(
        pod["automountServiceAccountToken"] == false,
        "a service account token is mounted"
    );
    let c = container(ds);
    ensure!(
        c["args"] == serde_json::json!(["run", "--config", "/etc/vigil/vigil.toml"]),
        "args {}",
        c["args"]
    );
    let port = c["ports"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["name"] == "metrics"))
        .context("no port named metrics")?;
    ensure!(
        port["containerPort"] == METRICS_PORT,
        "metrics port {}",
        port["containerPort"]
    );
    for (probe, path) in [
        ("livenessProbe", "/healthz"),
        ("readinessProbe", "/readyz"),
        ("startupProbe", "/readyz"),
    ] {
        let get = &c[probe]["httpGet"];
        ensure!(
            get["path"] == path && get["port"] == "metrics",
            "{probe}: {get}"
        );
    }
    let node = c["env"]
        .as_array()
        .and_then(|e| e.iter().find(|e| e["name"] == "VIGIL_NODE_NAME"))
        .context("no VIGIL_NODE_NAME")?;
    ensure!(
        node["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName",
        "VIGIL_NODE_NAME is not the downward API's spec.nodeName: {node}"
    );
    let r = &c["resources"];
    for (what, value) in [
        ("requests.cpu", &r["requests"]["cpu"]),
        ("requests.memory", &r["requests"]["memory"]),
        ("limits.memory", &r["limits"]["memory"]),
    ] {
        ensure!(value.is_string(), "no resources.{what}");
    }
    Ok(())
}

/// The mount at `path`: its volume, and whether it is read-only.
fn mount<'a>(ds: &'a Value, path: &str) -> Result<(&'a Value, bool)> {
    let m = container(ds)["volumeMounts"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["mountPath"] == path))
        .with_context(|| format!("nothing is mounted at {path}"))?;
    let volume = ds["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .and_then(|v| v.iter().find(|v| v["name"] == m["name"]))
        .with_context(|| format!("no volume {}", m["name"]))?;
    Ok((volume, m["readOnly"] == true))
}

/// The DaemonSet's host mounts, each at the same path in the container: (path, read-only).
/// The image check runs the container with these too.
pub const HOST_MOUNTS: [(&str, bool); 7] = [
    ("/sys/kernel/btf", true),
    ("/sys/kernel/tracing", true),
    ("/sys/fs/cgroup", false),
    ("/sys/fs/bpf", false),
    ("/run/containerd/containerd.sock", false),
    ("/run/vigil", false),
    ("/var/lib/vigil", false),
];

fn mounts(ds: &Value) -> Result<()> {
    for (path, read_only) in HOST_MOUNTS {
        let host_path = path;
        let (volume, ro) = mount(ds, path)?;
        ensure!(
            volume["hostPath"]["path"] == host_path,
            "{path}: volume {volume}"
        );
        ensure!(
            ro == read_only,
            "{path}: readOnly is {ro}, wanted {read_only}"
        );
    }
    for (path, map) in [
        ("/etc/vigil/vigil.toml", "vigil-config"),
        ("/etc/vigil/policies", "vigil-policies"),
    ] {
        let (volume, ro) = mount(ds, path)?;
        ensure!(volume["configMap"]["name"] == map && ro, "{path}: {volume}");
    }
    Ok(())
}

fn least_privilege(security: &Value) -> Result<()> {
    ensure!(
        security["privileged"] == false,
        "privileged is {}",
        security["privileged"]
    );
    ensure!(
        security["allowPrivilegeEscalation"] == false,
        "privilege escalation allowed"
    );
    ensure!(
        security["readOnlyRootFilesystem"] == true,
        "writable root file system"
    );
    ensure!(
        security["capabilities"]["drop"] == serde_json::json!(["ALL"]),
        "drop is {}",
        security["capabilities"]["drop"]
    );
    let added: Vec<String> = security["capabilities"]["add"]
        .as_array()
        .context("no capabilities.add")?
        .iter()
        .filter_map(|c| c.as_str().map(|c| format!("CAP_{c}")))
        .collect();
    ensure!(
        added == capabilities::NEEDED,
        "capabilities.add is {added:?}, the agent needs {:?}",
        capabilities::NEEDED
    );
    Ok(())
}

/// The ConfigMap `name`'s files.
fn config_map<'a>(objects: &'a [Value], name: &str) -> Result<&'a serde_json::Map<String, Value>> {
    find(objects, "ConfigMap", name)?["data"]
        .as_object()
        .with_context(|| format!("ConfigMap {name} has no data"))
}

fn config(ctx: &Context, objects: &[Value]) -> Result<()> {
    let text = config_map(objects, "vigil-config")?
        .get("vigil.toml")
        .and_then(Value::as_str)
        .context("vigil-config has no vigil.toml")?;
    let file = ctx.scratch.join("k8s-vigil.toml");
    fs::write(&file, text)?;
    cmd::output(
        Command::new(&ctx.vigil)
            .args(["config", "check"])
            .arg(&file),
    )?;
    let ds = find(objects, "DaemonSet", "vigil")?;
    let mounted: Vec<String> = container(ds)["volumeMounts"]
        .as_array()
        .map(|m| {
            m.iter()
                .filter_map(|m| m["mountPath"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    for (key, path) in super::config_paths(text) {
        ensure!(
            mounted.iter().any(|m| Path::new(&path).starts_with(m)),
            "{key} = {path} is on the container's own file system (mounts: {mounted:?})"
        );
    }
    ensure!(
        text.contains(&format!("metrics_address = \"0.0.0.0:{METRICS_PORT}\"")),
        "metrics_address is not on port {METRICS_PORT}"
    );
    Ok(())
}

fn policies(ctx: &Context, objects: &[Value]) -> Result<()> {
    let data = config_map(objects, "vigil-policies")?;
    let dir: PathBuf = ctx.scratch.join("k8s-policies");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir)?;
    let shipped = default_policies()?;
    ensure!(
        data.len() == shipped.len(),
        "{} policy files, policies/default has {}",
        data.len(),
        shipped.len()
    );
    for (name, text) in &shipped {
        let in_map = data
            .get(name)
            .and_then(Value::as_str)
            .with_context(|| format!("{name} is missing"))?;
        ensure!(
            in_map == text,
            "{name} differs from policies/default/{name}: run `cargo xtask deploy --write`"
        );
        fs::write(dir.join(name), in_map)?;
    }
    cmd::output(Command::new(&ctx.vigil).args(["policy", "check"]).arg(&dir))?;
    Ok(())
}

fn metrics(objects: &[Value]) -> Result<()> {
    let service = find(objects, "Service", "vigil-metrics")?;
    ensure!(service["spec"]["clusterIP"] == "None", "not headless");
    let ds = find(objects, "DaemonSet", "vigil")?;
    let pod_labels = &ds["spec"]["template"]["metadata"]["labels"];
    for (key, value) in service["spec"]["selector"]
        .as_object()
        .context("no selector")?
    {
        ensure!(
            pod_labels[key] == *value,
            "the Service selects {key}={value}, pods have {}",
            pod_labels[key]
        );
    }
    let port = &service["spec"]["ports"][0];
    ensure!(
        port["name"] == "metrics" && port["targetPort"] == "metrics",
        "port {port}"
    );
    let monitor = find(objects, "ServiceMonitor", "vigil")?;
    for (key, value) in monitor["spec"]["selector"]["matchLabels"]
        .as_object()
        .context("no matchLabels")?
    {
        ensure!(
            service["metadata"]["labels"][key] == *value,
            "the ServiceMonitor selects {key}={value}"
        );
    }
    ensure!(
        monitor["spec"]["namespaceSelector"]["matchNames"] == serde_json::json!(["vigil"]),
        "namespaceSelector"
    );
    let endpoint = &monitor["spec"]["endpoints"][0];
    ensure!(
        endpoint["port"] == "metrics" && endpoint["path"] == "/metrics",
        "endpoint {endpoint}"
    );
    if monitor["apiVersion"] != "monitoring.coreos.com/v1" {
        bail!("ServiceMonitor apiVersion {}", monitor["apiVersion"]);
    }
    Ok(())
}
