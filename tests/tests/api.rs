//! The gRPC API on its unix socket: a known exec must reach a tonic client and a Python
//! grpcio client (compiled from the proto by grpcio-tools) with its exact binary and args,
//! through their filters; grpcurl must list the service through reflection. The Python venv
//! is made by `cargo xtask setup` (`<cache>/py`).

use std::{
    ffi::OsStr,
    os::unix::fs::{FileTypeExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use vigil::{
    api::{client, proto},
    config::Config,
};
use vigil_tests::{
    EVENT_TIMEOUT, Harness, gate,
    pki::{ca, leaf},
    spawn::{TempDir, canonical_bytes, install_executable, next_line, run_to_end, spawn},
};

const TARGET_NAME: &str = "vigil-api-target";
const PROTO_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../proto");

/// The venv with grpcurl (`cargo xtask setup`).
fn venv() -> Option<PathBuf> {
    vigil_tests::binary::python_venv().filter(|venv| venv.join("bin/grpcurl").exists())
}

fn start(dir: &TempDir) -> Option<(Harness, PathBuf)> {
    let socket = dir.path().join("run/vigil.sock");
    let mut config = Config::default();
    config.api.socket = socket.clone();
    Harness::start(&config).map(|h| (h, socket))
}

/// Runs the target with `args` and returns its pid.
fn run_target(dir: &Path, args: &[&str]) -> (PathBuf, u32) {
    let installed = install_executable(Path::new("/bin/true"), dir, TARGET_NAME);
    let child = run_to_end(Command::new(&installed).args(args), EVENT_TIMEOUT);
    (installed, child.pid)
}

#[test]
fn tonic_client_receives_exact_exec_through_a_kind_filter() {
    let dir = TempDir::new("api-tonic");
    let Some((_agent, socket)) = start(&dir) else {
        return;
    };
    let meta = std::fs::metadata(&socket).expect("the API socket exists");
    assert!(
        meta.file_type().is_socket(),
        "{} is a socket",
        socket.display()
    );
    assert_eq!(meta.permissions().mode() & 0o7777, 0o600, "socket mode");

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime for the client");
    rt.block_on(async {
        let mut client = client::connect(&socket).await.expect("connect to the API");
        let health = client
            .get_health(proto::HealthRequest {})
            .await
            .expect("GetHealth")
            .into_inner();
        assert!(health.serving);
        let info = client
            .get_info(proto::InfoRequest {})
            .await
            .expect("GetInfo")
            .into_inner();
        assert_eq!(info.version, env!("CARGO_PKG_VERSION"));
        assert!(
            info.hooks.iter().any(|h| h.starts_with("process_exec")),
            "hooks: {:?}",
            info.hooks
        );
        let mut stream = client
            .get_events(proto::EventsRequest {
                allow: vec![proto::EventFilter {
                    kinds: vec!["exec".into()],
                    ..Default::default()
                }],
                deny: vec![],
            })
            .await
            .expect("GetEvents")
            .into_inner();
        let args = ["two words", "ünïcode ✓", ""];
        let (installed, pid) = run_target(dir.path(), &args);
        let binary = String::from_utf8(canonical_bytes(&installed)).expect("UTF-8 path");
        let event = tokio::time::timeout(EVENT_TIMEOUT, async {
            loop {
                let event = stream
                    .message()
                    .await
                    .expect("the stream")
                    .expect("the stream goes on");
                // The kind filter: nothing but exec reaches this client.
                assert_eq!(event.kind, "exec", "{event:?}");
                if event.process.as_ref().is_some_and(|p| p.pid == pid) {
                    return event;
                }
            }
        })
        .await
        .expect("the target's exec event within the timeout");
        let process = event.process.expect("process");
        assert_eq!(process.tgid, pid);
        assert_eq!(process.binary, binary);
        let mut argv = vec![installed.to_str().expect("UTF-8 path").to_owned()];
        argv.extend(args.iter().map(|a| (*a).to_owned()));
        assert_eq!(process.args, argv);
        assert_eq!(
            process.cwd,
            std::env::current_dir()
                .expect("cwd")
                .to_str()
                .expect("UTF-8")
        );
        match event.detail {
            Some(proto::event::Detail::Exec(exec)) => {
                assert_eq!(exec.filename, argv[0]);
            }
            other => panic!("an exec detail, not {other:?}"),
        }
    });
}

const PY_CLIENT: &str = r#"
import json, sys
sys.path.insert(0, sys.argv[1])
import grpc
from vigil.v1 import sensor_pb2, sensor_pb2_grpc
# As for grpcurl: an :authority that is no socket path (HTTP/2 refuses one).
channel = grpc.insecure_channel("unix:" + sys.argv[2], options=[("grpc.default_authority", "localhost")])
stub = sensor_pb2_grpc.SensorStub(channel)
request = sensor_pb2.EventsRequest(
    allow=[sensor_pb2.EventFilter(kinds=["exec"], binary_regex=sys.argv[3])],
    deny=[sensor_pb2.EventFilter(kinds=["loss"])])
call = stub.GetEvents(request, timeout=30)
call.initial_metadata()
print("ready", flush=True)
for event in call:
    print(json.dumps({"kind": event.kind, "pid": event.process.pid,
        "binary": event.process.binary, "args": list(event.process.args),
        "detail": event.WhichOneof("detail"), "filename": event.exec.filename}), flush=True)
    break
"#;

#[test]
fn python_grpcio_client_and_grpcurl_reflection() {
    let dir = TempDir::new("api-python");
    let Some((_agent, socket)) = start(&dir) else {
        return;
    };
    let Some(venv) = venv() else {
        gate::skip("no Python venv with grpcio and grpcurl: run `cargo xtask setup`");
        return;
    };
    let python = venv.join("bin/python");
    let out = dir.path().join("py");
    std::fs::create_dir_all(&out).expect("mkdir");
    let status = Command::new(&python)
        .args(["-m", "grpc_tools.protoc", "-I", PROTO_DIR])
        .arg(format!("--python_out={}", out.display()))
        .arg(format!("--grpc_python_out={}", out.display()))
        .arg(format!("{PROTO_DIR}/vigil/v1/sensor.proto"))
        .status()
        .expect("run grpc_tools.protoc");
    assert!(status.success(), "grpc_tools.protoc: {status}");

    // grpcurl sends the socket path as :authority, which HTTP/2 servers refuse: name a host.
    let listed = Command::new(venv.join("bin/grpcurl"))
        .args(["-plaintext", "-unix", "-authority", "localhost"])
        .arg(&socket)
        .arg("list")
        .output()
        .expect("run grpcurl");
    let listed_text = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.status.success(), "grpcurl list: {listed:?}");
    assert!(
        listed_text.lines().any(|l| l == "vigil.v1.Sensor"),
        "grpcurl list: {listed_text}"
    );

    let mut client = spawn(
        Command::new(&python)
            .args(["-c", PY_CLIENT])
            .arg(&out)
            .arg(&socket)
            .arg(format!("/{TARGET_NAME}$"))
            .stdout(Stdio::piped()),
    );
    let lines = client.stdout_lines();
    assert_eq!(
        next_line(&lines, EVENT_TIMEOUT, "the client's ready line"),
        "ready"
    );
    // Runs first: the binary filter must skip it.
    run_to_end(&mut Command::new("/bin/true"), EVENT_TIMEOUT);
    let (installed, pid) = run_target(dir.path(), &["from python", "x"]);
    let line = next_line(
        &lines,
        EVENT_TIMEOUT,
        "the exec event from the Python client",
    );
    let event: serde_json::Value = serde_json::from_str(&line).expect("JSON from the client");
    let binary = String::from_utf8(canonical_bytes(&installed)).expect("UTF-8 path");
    let program = installed.to_str().expect("UTF-8 path");
    assert_eq!(
        event,
        serde_json::json!({"kind": "exec", "pid": pid, "binary": binary,
            "args": [program, "from python", "x"], "detail": "exec", "filename": program})
    );
    let status = client.wait(EVENT_TIMEOUT);
    assert!(status.success(), "the Python client: {status}");
}

#[test]
fn vigil_events_prints_one_line_per_filtered_event() {
    let Some(vigil) = vigil_tests::binary::vigil_binary() else {
        return;
    };
    let dir = TempDir::new("api-cli");
    let Some((_agent, socket)) = start(&dir) else {
        return;
    };
    let mut events = spawn(
        Command::new(&vigil)
            .arg("events")
            .arg("--socket")
            .arg(&socket)
            .args(["--kind", "exec", "--binary"])
            .arg(format!("/{TARGET_NAME}$"))
            .stdout(Stdio::piped()),
    );
    let lines = events.stdout_lines();
    // The command says nothing when its stream is open: run the target until a line comes
    // (each run is a new process; the first one reported must be exact).
    for attempt in 0..20 {
        let argument = format!("attempt {attempt}");
        let (installed, pid) = run_target(dir.path(), &[argument.as_str()]);
        let Ok(line) = lines.recv_timeout(std::time::Duration::from_millis(500)) else {
            continue;
        };
        let program = installed.to_str().expect("UTF-8 path");
        let binary = String::from_utf8(canonical_bytes(&installed)).expect("UTF-8 path");
        let (time, rest) = line.split_once(' ').expect("time first");
        assert!(time.ends_with('Z'), "{line}");
        // This run, or an earlier one whose event came late: either way, exact.
        let expected = format!("exec        pid={pid} {binary} {program} {argument}");
        if rest == expected {
            return;
        }
        assert!(
            rest.starts_with("exec        pid=")
                && rest.contains(&format!(" {binary} {program} attempt ")),
            "{line}"
        );
        let late = rest.rsplit(' ').next().expect("attempt number");
        assert!(late.parse::<u32>().is_ok_and(|n| n < attempt), "{line}");
        return;
    }
    panic!("`vigil events` printed nothing for 20 runs of the target");
}

/// Runs `program` with `args` as uid and gid 65534 (nobody), without supplementary groups.
fn as_nobody(program: &Path, args: &[&OsStr]) -> std::process::Output {
    Command::new("setpriv")
        .args([
            "--reuid",
            "65534",
            "--regid",
            "65534",
            "--clear-groups",
            "--",
        ])
        .arg(program)
        .args(args)
        .output()
        .expect("run setpriv (util-linux)")
}

#[test]
fn the_unix_socket_serves_root_and_refuses_another_user() {
    let dir = TempDir::new("api-perm");
    let Some((_agent, socket)) = start(&dir) else {
        return;
    };
    let Some(vigil) = vigil_tests::binary::vigil_binary() else {
        return;
    };
    // Others may enter the directories: only the socket's own mode can refuse them.
    for d in [dir.path(), socket.parent().expect("the socket's directory")] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).expect("chmod 755");
    }

    // What nobody can do: see the socket, and run vigil.
    let seen = as_nobody(
        Path::new("/usr/bin/stat"),
        &[OsStr::new("-c"), OsStr::new("%a %u %F"), socket.as_os_str()],
    );
    assert!(seen.status.success(), "{seen:?}");
    assert_eq!(String::from_utf8_lossy(&seen.stdout).trim(), "600 0 socket");
    let version = as_nobody(&vigil, &[OsStr::new("--version")]);
    assert!(version.status.success(), "{version:?}");

    // Refused by the kernel at connect(2), before any byte of gRPC.
    let status = [
        OsStr::new("status"),
        OsStr::new("--json"),
        OsStr::new("--socket"),
        socket.as_os_str(),
    ];
    let refused = as_nobody(&vigil, &status);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{refused:?}");
    assert!(
        stderr.contains(&format!("no agent answers on {}", socket.display()))
            && stderr.contains("Permission denied (os error 13)"),
        "{stderr}"
    );

    // Root is served.
    let served = vigil_tests::binary::run(
        &vigil,
        &[
            "status",
            "--json",
            "--socket",
            socket.to_str().expect("UTF-8 path"),
        ],
    );
    let report: serde_json::Value = serde_json::from_str(served.ok()).expect("JSON");
    assert_eq!(report["health"]["serving"], true, "{report}");
}

#[test]
fn tcp_is_mutual_tls_only() {
    use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};
    let dir = TempDir::new("api-tls");
    let d = dir.path();
    ca(d, "ca");
    ca(d, "other-ca");
    leaf(
        d,
        "ca",
        "server",
        "subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth\n",
    );
    leaf(d, "ca", "client", "extendedKeyUsage=clientAuth\n");
    leaf(d, "other-ca", "stranger", "extendedKeyUsage=clientAuth\n");
    let mut config = Config::default();
    config.api.socket = d.join("vigil.sock");
    config.api.tcp_address = "127.0.0.1:0".into();
    config.api.tls_cert = d.join("server.pem");
    config.api.tls_key = d.join("server.key");
    config.api.tls_client_ca = d.join("ca.pem");
    let Some(agent) = Harness::start(&config) else {
        return;
    };
    let addr = agent.api_tcp_addr().expect("the TCP address is bound");
    let read = |name: &str| std::fs::read(d.join(name)).expect("read a PEM");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime for the client");
    rt.block_on(async {
        let health = |identity: Option<Identity>| {
            let mut tls = ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(read("ca.pem")))
                .domain_name("localhost");
            if let Some(identity) = identity {
                tls = tls.identity(identity);
            }
            async move {
                let channel = Endpoint::from_shared(format!("https://localhost:{}", addr.port()))
                    .expect("endpoint")
                    .tls_config(tls)
                    .expect("client TLS")
                    .connect_timeout(EVENT_TIMEOUT)
                    .timeout(EVENT_TIMEOUT)
                    .connect()
                    .await
                    .map_err(|e| format!("connect: {e:?}"))?;
                let health = proto::sensor_client::SensorClient::new(channel.clone())
                    .get_health(proto::HealthRequest {})
                    .await
                    .map(|r| r.into_inner())
                    .map_err(|e| format!("GetHealth: {e:?}"))?;
                // Containment is not served over TCP unless `api.tcp_response` says so.
                let containment = proto::response_client::ResponseClient::new(channel)
                    .list_actions(proto::ListActionsRequest {})
                    .await
                    .map(|_| tonic::Code::Ok)
                    .unwrap_or_else(|status| status.code());
                Ok::<_, String>((health, containment))
            }
        };
        let ok = health(Some(Identity::from_pem(
            read("client.pem"),
            read("client.key"),
        )))
        .await
        .expect("a client with a certificate from the CA is served");
        assert!(ok.0.serving);
        assert_eq!(ok.1, tonic::Code::Unimplemented, "no containment over TCP");
        let refused = health(None).await;
        assert!(refused.is_err(), "no client certificate: {refused:?}");
        let refused = health(Some(Identity::from_pem(
            read("stranger.pem"),
            read("stranger.key"),
        )))
        .await;
        assert!(
            refused.is_err(),
            "a certificate from another CA: {refused:?}"
        );
    });
}
