//! Forwarding through the spool, with real processes: the `vigil` binary as the agent (so
//! that it can be killed with SIGKILL) and `vigil collect` as the collector, or a Python OTLP
//! receiver built on the official `opentelemetry-proto` package.
//!
//! Every exec of a marker binary makes one finding (a policy in a private directory); the
//! findings are what is forwarded, and each carries its phase and index in its argv.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use serde_json::Value;
use vigil_tests::{
    binary::vigil_binary,
    collect,
    daemon::{Daemon, free_port, json_lines, wait_until},
    gate,
    pki::{ca, leaf},
    scrape::{metrics_until, value},
    spawn::{TempDir, canonical_bytes, install_executable},
};

const MARKER: &str = "vigil-fwd-marker";
const RULE: &str = "forward-test-marker";
const NODE: &str = "vigil-forward-test-node";
const PER_PHASE: usize = 150;
const DELIVERY: Duration = Duration::from_secs(60);

struct Setup {
    vigil: PathBuf,
    dir: TempDir,
    marker: PathBuf,
}

fn setup(label: &str) -> Option<Setup> {
    if !gate::privileged() {
        gate::skip("forwarding tests start the agent, which needs root");
        return None;
    }
    let vigil = vigil_binary()?;
    let dir = TempDir::new(label);
    let marker = install_executable(Path::new("/bin/true"), dir.path(), MARKER);
    std::fs::create_dir_all(dir.path().join("policies")).expect("policy dir");
    std::fs::write(
        dir.path().join("policies/marker.yaml"),
        format!(
            "rules:\n  - name: {RULE}\n    description: The forwarding test's marker ran.\n    \
             severity: high\n    tags: [T1059]\n    match:\n      kind: exec\n      \
             process.binary: {{suffix: /{MARKER}}}\n"
        ),
    )
    .expect("policy file");
    Some(Setup { vigil, dir, marker })
}

impl Setup {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The agent's config: only this test's rule, no API socket, the given destination.
    fn config(&self, destination: &str) -> PathBuf {
        let path = self.path("agent.toml");
        std::fs::write(
            &path,
            format!(
                "node_name = \"{NODE}\"\n\
                 [policy]\ndefault_pack = false\ndirectory = \"{}\"\n\
                 [api]\nenabled = false\n\
                 [forward]\nspool_dir = \"{}\"\nfsync_interval_ms = 200\n\
                 {destination}\n",
                self.path("policies").display(),
                self.path("spool").display(),
            ),
        )
        .expect("config");
        path
    }

    fn collector_tls(&self, port: u16) -> Daemon {
        let d = self.dir.path();
        let (cert, key, ca) = (
            d.join("collector.pem"),
            d.join("collector.key"),
            d.join("ca.pem"),
        );
        collect::start(
            &self.vigil,
            port,
            &self.path("collected.jsonl"),
            &self.path("collector.log"),
            &[
                "--tls-cert".as_ref(),
                cert.as_os_str(),
                "--tls-key".as_ref(),
                key.as_os_str(),
                "--tls-client-ca".as_ref(),
                ca.as_os_str(),
            ],
        )
    }

    /// Starts the agent and waits until its hooks are attached and its forwarder runs.
    fn agent(&self, config: &Path, starts: usize) -> Daemon {
        let mut agent = Daemon::start(
            Command::new(&self.vigil)
                .arg("run")
                .arg("--config")
                .arg(config)
                .arg("--output")
                .arg(self.path("agent.jsonl")),
            &self.path("agent.log"),
        );
        agent.wait_for_log("Forwarding through the spool.", starts, DELIVERY);
        agent
    }

    fn collector(&self, port: u16) -> Daemon {
        collect::start(
            &self.vigil,
            port,
            &self.path("collected.jsonl"),
            &self.path("collector.log"),
            &[],
        )
    }

    /// Runs the marker `PER_PHASE` times with argv `[marker, "<phase>-<i>"]`.
    fn storm(&self, phase: &str) {
        for i in 0..PER_PHASE {
            let status = Command::new(&self.marker)
                .arg(format!("{phase}-{i:04}"))
                .status()
                .expect("run the marker");
            assert!(status.success());
        }
    }

    /// Waits until the agent's own output holds the findings of `phase`: they have been
    /// handed to the forwarder.
    fn wait_exported(&self, phase: &str) {
        let output = self.path("agent.jsonl");
        wait_until(
            DELIVERY,
            &format!("findings of {phase} in the agent output"),
            || {
                json_lines(&output)
                    .iter()
                    .filter(|e| e["kind"] == "finding" && e["finding"]["rule"] == RULE)
                    .filter(|e| arg_phase(&e["process"]["args"]).as_deref() == Some(phase))
                    .count()
                    >= PER_PHASE
            },
        );
    }
}

/// The phase of a marker's argv (`["…/marker", "p1-0007"]` -> `p1`).
fn arg_phase(args: &Value) -> Option<String> {
    let arg = args.get(1)?.as_str()?;
    Some(arg.split('-').next()?.to_owned())
}

/// The marker args of the collected findings, with how often each was written.
fn collected_args(out: &Path) -> BTreeMap<String, usize> {
    let mut args = BTreeMap::new();
    for record in json_lines(out) {
        let event = &record["event"];
        if event["kind"] == "finding"
            && let Some(arg) = event["process"]["args"].get(1).and_then(Value::as_str)
        {
            *args.entry(arg.to_owned()).or_default() += 1;
        }
    }
    args
}

fn wait_collected(out: &Path, phases: &[&str]) {
    wait_until(DELIVERY, &format!("{phases:?} at the collector"), || {
        let args = collected_args(out);
        phases
            .iter()
            .all(|phase| (0..PER_PHASE).all(|i| args.contains_key(&format!("{phase}-{i:04}"))))
    });
}

#[test]
fn collector_outages_and_an_agent_crash_lose_nothing_and_duplicate_nothing() {
    let Some(setup) = setup("forward-outage") else {
        return;
    };
    let port = free_port();
    let metrics: std::net::SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let config = setup.config(&format!(
        "[telemetry]\nmetrics_address = \"{metrics}\"\nloss_report_interval_ms = 200\n\
         [forward.collector]\nendpoint = \"http://127.0.0.1:{port}\"\n"
    ));
    let out = setup.path("collected.jsonl");
    let lag = "vigil_forward_lag_records{destination=\"collector\"}";
    let connected = "vigil_forward_connected{destination=\"collector\"}";

    let collector = setup.collector(port);
    let agent = setup.agent(&config, 1);
    setup.storm("p1");
    wait_collected(&out, &["p1"]);

    // The collector crashes; findings wait in the spool.
    collector.kill();
    setup.storm("p2");
    setup.wait_exported("p2");
    // The metrics show the outage: disconnected, with the phase's findings waiting.
    metrics_until(metrics, DELIVERY, |body| {
        value(body, connected) == Some(0)
            && value(body, lag).is_some_and(|n| n >= PER_PHASE as u64)
            && value(body, "vigil_forward_spool_bytes").is_some_and(|n| n > 0)
    });
    let collector = setup.collector(port);
    wait_collected(&out, &["p1", "p2"]);

    // The collector goes again, and then the agent crashes with undelivered records.
    collector.kill();
    setup.storm("p3");
    setup.wait_exported("p3");
    // The writer appends within milliseconds of the export; leave it a margin.
    std::thread::sleep(Duration::from_millis(500));
    agent.kill();
    let spooled: u64 = std::fs::read_dir(setup.path("spool"))
        .expect("the spool")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".seg"))
        .map(|e| e.metadata().map_or(0, |m| m.len()))
        .sum();
    assert!(spooled > 0, "the undelivered findings are on disk");

    let agent = setup.agent(&config, 2);
    setup.storm("p4");
    setup.wait_exported("p4");
    let collector = setup.collector(port);
    wait_collected(&out, &["p1", "p2", "p3", "p4"]);
    metrics_until(metrics, DELIVERY, |body| {
        value(body, connected) == Some(1) && value(body, lag) == Some(0)
    });
    agent.interrupt(DELIVERY);
    collector.interrupt(DELIVERY);

    // Every marker exec arrived exactly once.
    let args = collected_args(&out);
    for phase in ["p1", "p2", "p3", "p4"] {
        for i in 0..PER_PHASE {
            let arg = format!("{phase}-{i:04}");
            assert_eq!(args.get(&arg), Some(&1), "{arg} written once");
        }
    }
    // One stream across the agent's restart, numbered 1, 2, 3... with no gap and no repeat,
    // in file order, and no loss record.
    let count = collect::assert_one_stream_in_order(&out);
    let records = json_lines(&out);
    assert!(records.iter().all(|r| r["node"] == NODE));
    let log = std::fs::read_to_string(setup.path("collector.log")).unwrap_or_default();
    eprintln!(
        "{count} records in order; collector runs: {:?}",
        log.lines()
            .filter(|l| l.contains("records written"))
            .collect::<Vec<_>>()
    );
}

#[test]
fn mutual_tls_refuses_an_agent_of_another_ca_and_its_findings_wait_in_the_spool() {
    let Some(setup) = setup("forward-mtls") else {
        return;
    };
    let d = setup.dir.path();
    ca(d, "ca");
    ca(d, "rogue-ca");
    leaf(
        d,
        "ca",
        "collector",
        "subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth\n",
    );
    leaf(d, "ca", "agent", "extendedKeyUsage=clientAuth\n");
    leaf(d, "rogue-ca", "intruder", "extendedKeyUsage=clientAuth\n");
    let port = free_port();
    let destination = |client: &str| {
        format!(
            "[forward.collector]\nendpoint = \"https://127.0.0.1:{port}\"\n\
             tls_server_name = \"localhost\"\ntls_ca = \"{ca}\"\n\
             tls_cert = \"{cert}\"\ntls_key = \"{key}\"\n",
            ca = d.join("ca.pem").display(),
            cert = d.join(format!("{client}.pem")).display(),
            key = d.join(format!("{client}.key")).display(),
        )
    };
    let out = setup.path("collected.jsonl");
    let collector = setup.collector_tls(port);

    // A certificate from another CA: the handshake fails, nothing is stored, the finding waits.
    let config = setup.config(&destination("intruder"));
    let mut agent = setup.agent(&config, 1);
    setup.storm("p1");
    setup.wait_exported("p1");
    agent.wait_for_log("Forwarding destination unavailable", 1, DELIVERY);
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        json_lines(&out).is_empty(),
        "nothing from a client of another CA"
    );
    agent.interrupt(DELIVERY);

    // The right certificate: what waited in the spool arrives, and what follows.
    let config = setup.config(&destination("agent"));
    let agent = setup.agent(&config, 2);
    setup.storm("p2");
    wait_collected(&out, &["p1", "p2"]);
    agent.interrupt(DELIVERY);
    collector.interrupt(DELIVERY);
    let args = collected_args(&out);
    assert!(args.values().all(|&n| n == 1), "each once: {args:?}");
    assert_eq!(args.len(), 2 * PER_PHASE);
}

/// The OTLP receiver: the official Python definitions and grpcio; writes each export
/// request as one JSON line (protobuf's JSON mapping) and prints `ready <port>`.
const PY_OTLP_RECEIVER: &str = r#"
import sys, grpc
from concurrent import futures
from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc

out = open(sys.argv[1], "a")

class Logs(logs_service_pb2_grpc.LogsServiceServicer):
    def Export(self, request, context):
        out.write(json_format.MessageToJson(request, indent=None) + "\n")
        out.flush()
        return logs_service_pb2.ExportLogsServiceResponse()

server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
logs_service_pb2_grpc.add_LogsServiceServicer_to_server(Logs(), server)
port = server.add_insecure_port("127.0.0.1:0")
server.start()
print("ready", port, flush=True)
server.wait_for_termination()
"#;

/// An OTLP attribute value as JSON: strings, ints (a string in protobuf's JSON) and arrays.
fn otlp_value(value: &Value) -> Value {
    if let Some(s) = value.get("stringValue") {
        return s.clone();
    }
    if let Some(i) = value.get("intValue") {
        return Value::from(i.as_str().and_then(|s| s.parse::<i64>().ok()).unwrap_or(-1));
    }
    if let Some(array) = value.get("arrayValue") {
        return Value::Array(
            array["values"]
                .as_array()
                .map(|v| v.iter().map(otlp_value).collect())
                .unwrap_or_default(),
        );
    }
    value.clone()
}

fn attributes(list: &Value) -> BTreeMap<String, Value> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|kv| Some((kv["key"].as_str()?.to_owned(), otlp_value(&kv["value"]))))
        .collect()
}

#[test]
fn otlp_receiver_gets_findings_with_semantic_convention_attributes() {
    let Some(setup) = setup("forward-otlp") else {
        return;
    };
    let Some(python) = vigil_tests::binary::python_venv().map(|v| v.join("bin/python")) else {
        gate::skip("the Python venv with opentelemetry-proto is missing: run `cargo xtask setup`");
        return;
    };
    let received = setup.path("otlp.jsonl");
    let mut receiver = vigil_tests::spawn::spawn(
        Command::new(&python)
            .args(["-c", PY_OTLP_RECEIVER])
            .arg(&received)
            .stdout(std::process::Stdio::piped()),
    );
    let lines = receiver.stdout_lines();
    let ready = vigil_tests::spawn::next_line(&lines, DELIVERY, "the receiver's ready line");
    let port: u16 = ready
        .strip_prefix("ready ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("ready line: {ready}"));
    let config = setup.config(&format!(
        "[forward.otlp]\nendpoint = \"http://127.0.0.1:{port}\"\n"
    ));
    let agent = setup.agent(&config, 1);
    let mut marker = vigil_tests::spawn::spawn(Command::new(&setup.marker).arg("otlp-0001"));
    assert!(marker.wait(DELIVERY).success());
    let binary = String::from_utf8(canonical_bytes(&setup.marker)).expect("UTF-8 path");

    let mut found = None;
    wait_until(DELIVERY, "the finding at the OTLP receiver", || {
        for request in json_lines(&received) {
            for resource_logs in request["resourceLogs"].as_array().into_iter().flatten() {
                let resource = attributes(&resource_logs["resource"]["attributes"]);
                for scope in resource_logs["scopeLogs"].as_array().into_iter().flatten() {
                    for log in scope["logRecords"].as_array().into_iter().flatten() {
                        let attrs = attributes(&log["attributes"]);
                        if attrs.get("vigil.rule.name") == Some(&Value::from(RULE))
                            && resource.get("process.pid") == Some(&Value::from(marker.pid))
                        {
                            found = Some((resource.clone(), attrs, log.clone()));
                        }
                    }
                }
            }
        }
        found.is_some()
    });
    agent.interrupt(DELIVERY);
    let (resource, attrs, log) = found.expect("found");
    assert_eq!(resource["host.name"], NODE);
    assert_eq!(resource["process.executable.path"], binary.as_str());
    assert_eq!(resource["process.executable.name"], MARKER);
    assert_eq!(
        resource["process.command_args"],
        serde_json::json!([setup.marker.to_string_lossy(), "otlp-0001"])
    );
    assert_eq!(resource["process.user.id"], 0);
    assert_eq!(log["eventName"], "vigil.finding");
    assert_eq!(log["severityText"], "ERROR");
    assert_eq!(log["severityNumber"], "SEVERITY_NUMBER_ERROR");
    assert_eq!(attrs["vigil.rule.severity"], "high");
    assert_eq!(attrs["vigil.rule.tags"], serde_json::json!(["T1059"]));
    assert_eq!(attrs["vigil.event.kind"], "exec");
    let event: Value =
        serde_json::from_str(attrs["vigil.event"].as_str().expect("the event as JSON"))
            .expect("JSON");
    assert_eq!(event["kind"], "finding");
    assert!(log["timeUnixNano"].as_str().is_some_and(|t| t.len() >= 19));
}
