//! Command line: `vigil run | probe | status | bench | policy | config | events | contain |
//! enforcement | collect | inspect | replay | capture`.

use std::{
    io::{BufWriter, Write},
    path::PathBuf,
    process::ExitCode,
};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use vigil::{
    bench,
    bpf::probe,
    clock::BootClock,
    config::{Config, DEFAULT_TOML},
    export::{Exporter, JsonLines, file::RotatingFile, json::JsonRenderer},
    forensics::command as forensics,
    node::node_name,
    runtime::Agent,
};

#[derive(Parser)]
#[command(
    name = "vigil",
    version,
    about = "eBPF runtime workload security sensor"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Load the sensors and stream events as JSON lines (needs root or CAP_BPF+CAP_PERFMON).
    Run {
        /// Config file (TOML); the embedded default when absent.
        #[arg(long)]
        config: Option<PathBuf>,
        /// `stdout` or a file to append to; overrides `output.target`.
        #[arg(long)]
        output: Option<String>,
    },
    /// Report which hooks this kernel allows and which Vigil uses.
    Probe {
        #[arg(long)]
        json: bool,
    },
    /// Measure Vigil's cost on an event storm.
    Bench {
        #[command(subcommand)]
        storm: bench::Storm,
    },
    /// Policy helpers: check policy files, run behaviour cases.
    Policy {
        #[command(subcommand)]
        action: PolicyAction,
    },
    /// Configuration helpers.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Incident response: kill-on-exec, connect deny, isolate, freeze, kill, through the
    /// running agent's API (each action is an event); --direct: on the pinned maps, no agent.
    Contain(vigil::enforce::command::ContainArgs),
    /// Stream events from a running agent's gRPC API: one line per event (or JSON).
    Events {
        /// The agent's API socket (`api.socket`).
        #[arg(long, default_value = "/run/vigil/vigil.sock")]
        socket: PathBuf,
        /// Only these kinds (exec, exit, fork, connect, dns, file, finding...); repeatable.
        #[arg(long = "kind")]
        kinds: Vec<String>,
        /// Only processes whose binary path matches this regular expression.
        #[arg(long)]
        binary: Option<String>,
        /// One JSON object per line (the API's message) instead of a readable line.
        #[arg(long)]
        json: bool,
    },
    /// A running agent's state through its API: uptime, event rate, drops by cause, caches,
    /// exporters, policies in force, enforcement.
    Status {
        /// The agent's API socket (`api.socket`).
        #[arg(long, default_value = "/run/vigil/vigil.sock")]
        socket: PathBuf,
        /// One JSON object (`health`, `info`, `enforcement`: the API's messages).
        #[arg(long)]
        json: bool,
    },
    /// A reference collector: receive the agents' forwarded records (`[forward.collector]`),
    /// acknowledge them, and write each once as a JSON line.
    Collect {
        /// Address to listen on; plaintext only on loopback unless --insecure.
        #[arg(long, default_value = "127.0.0.1:50052")]
        listen: std::net::SocketAddr,
        /// The JSON-lines file to append to (created 0600).
        #[arg(long)]
        out: PathBuf,
        /// PEM certificate chain and key of this collector: serve TLS.
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// Require client certificates signed by this CA (mutual TLS).
        #[arg(long, requires = "tls_cert")]
        tls_client_ca: Option<PathBuf>,
        /// Allow plaintext on a non-loopback address.
        #[arg(long)]
        insecure: bool,
    },
    /// Read a capture file (.vcap): a summary with any damage named, or `--tree`, the process
    /// tree with each process's activity. Exit status 3: the file is damaged (what was
    /// intact is shown).
    Inspect(forensics::inspect::InspectArgs),
    /// Run policies over capture files offline (the default pack, or --policy DIR): the
    /// findings that live evaluation would have made. Exit status 3: a file is damaged (its
    /// intact frames are replayed); 1: a file could not be read at all.
    Replay(forensics::replay::ReplayArgs),
    /// Capture files from a running agent: `record` its event stream, `dump` its flight
    /// recorder.
    Capture(forensics::CaptureArgs),
    /// Enforcement in force: list it, clear it, read the kernel's action records.
    Enforcement(vigil::enforce::command::EnforcementArgs),
    /// The in-guest suite of `cargo xtask test-kernels`: loads every program, triggers and
    /// checks captures and enforcement, one `vigil-selftest {json}` line per check. It
    /// changes cgroups and pins programs: for throw-away guests.
    #[command(hide = true)]
    Selftest {
        /// Trigger mode (the suite's child): connect to this address and exit 0 (connected),
        /// 10 (EPERM) or 11.
        #[arg(long)]
        connect: Option<std::net::SocketAddr>,
        /// With --connect: join this cgroup v2 directory first.
        #[arg(long, requires = "connect")]
        cgroup: Option<PathBuf>,
        /// Trigger mode: end this process from several threads as named, with the status
        /// `vigil::selftest::ThreadsExit::status` gives.
        #[arg(long, value_enum, conflicts_with = "connect")]
        threads_exit: Option<vigil::selftest::ThreadsExit>,
    },
}

#[derive(Subcommand)]
enum PolicyAction {
    /// Check policy files (or directories of them): every error as `file:line:column: field:
    /// message`; exit status 1 when any.
    Check {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Check them together with the embedded default pack (rule names must not clash).
        #[arg(long)]
        with_default: bool,
    },
    /// Run behaviour cases (files or directories of them); exit status 1 when any fails.
    Test {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Print the embedded default pack.
    Default,
}

#[derive(Subcommand)]
enum ConfigAction {
    /// Print the embedded default configuration (every key, documented).
    Default,
    /// Parse and validate a config file.
    Check { file: PathBuf },
}

pub fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("VIGIL_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .init();
    match dispatch(Cli::parse()) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("vigil: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run { config, output } => run(config, output),
        Command::Probe { json } => {
            let report = probe::probe();
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report.render_text());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench { storm } => {
            let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            rt.block_on(bench::run(storm))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Policy { action } => policy_command(action),
        Command::Events {
            socket,
            kinds,
            binary,
            json,
        } => {
            let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            rt.block_on(events(socket, kinds, binary, json))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { socket, json } => {
            let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            let report = rt.block_on(vigil::api::status_cli::fetch(&socket))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report.render_text());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Contain(args) => {
            vigil::enforce::command::contain(args)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Inspect(args) => with_std(|out, err| forensics::inspect::run(&args, out, err)),
        Command::Replay(args) => with_std(|out, err| forensics::replay::run(&args, out, err)),
        Command::Capture(args) => capture(args),
        Command::Collect {
            listen,
            out,
            tls_cert,
            tls_key,
            tls_client_ca,
            insecure,
        } => {
            let options = vigil::forward::collect::CollectOptions {
                listen: Some(listen),
                out,
                tls_cert,
                tls_key,
                tls_client_ca,
                insecure,
            };
            let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            let (written, duplicates) = rt.block_on(collect(options))?;
            eprintln!("vigil collect: {written} records written, {duplicates} duplicates skipped");
            Ok(ExitCode::SUCCESS)
        }
        Command::Enforcement(args) => {
            vigil::enforce::command::enforcement(args)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Selftest {
            connect,
            cgroup,
            threads_exit,
        } => Ok(match (connect, threads_exit) {
            (_, Some(how)) => vigil::selftest::trigger_threads_exit(how),
            (Some(addr), None) => ExitCode::from(
                u8::try_from(vigil::selftest::trigger_connect(addr, cgroup.as_deref()))
                    .unwrap_or(1),
            ),
            (None, None) if vigil::selftest::run() => ExitCode::SUCCESS,
            (None, None) => ExitCode::FAILURE,
        }),
        Command::Config { action } => {
            match action {
                ConfigAction::Default => print!("{DEFAULT_TOML}"),
                ConfigAction::Check { file } => {
                    Config::load(Some(&file))?;
                    println!("{}: ok", file.display());
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Runs a command that writes to stdout and stderr; its exit status is its outcome's.
fn with_std(
    command: impl FnOnce(&mut dyn Write, &mut dyn Write) -> anyhow::Result<forensics::Outcome>,
) -> anyhow::Result<ExitCode> {
    let outcome = command(&mut std::io::stdout().lock(), &mut std::io::stderr().lock())?;
    Ok(ExitCode::from(outcome.exit_code()))
}

fn capture(args: forensics::CaptureArgs) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    match args.command {
        forensics::CaptureCommand::Dump(args) => {
            let reply = rt.block_on(forensics::dump::run(&args))?;
            forensics::dump::print(&reply, args.json, &mut std::io::stdout().lock())?;
        }
        forensics::CaptureCommand::Record(args) => {
            let recorded = rt.block_on(async {
                // Installed before connecting: a stop asked for meanwhile still finishes the
                // files cleanly.
                let mut signals = StopSignals::new()?;
                let stop = async move { signals.next().await };
                forensics::record::run(&args, stop, &mut std::io::stderr()).await
            })?;
            eprintln!(
                "vigil capture record: {}: {} events in {} files, {} lost by the stream",
                recorded.ended,
                recorded.events,
                recorded.files.len(),
                recorded.lost
            );
            for file in &recorded.files {
                println!("{}", file.display());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Serves until SIGINT or SIGTERM.
async fn collect(options: vigil::forward::collect::CollectOptions) -> anyhow::Result<(u64, u64)> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let shutdown = async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    };
    let (bound, _) = tokio::sync::oneshot::channel();
    Ok(vigil::forward::collect::serve(options, bound, shutdown).await?)
}

async fn events(
    socket: PathBuf,
    kinds: Vec<String>,
    binary: Option<String>,
    json: bool,
) -> anyhow::Result<()> {
    use vigil::api::{client, proto};
    let mut client = client::connect(&socket)
        .await
        .with_context(|| format!("connecting to the agent's API at {}", socket.display()))?;
    let request = proto::EventsRequest {
        allow: vec![proto::EventFilter {
            kinds,
            binary_regex: binary.unwrap_or_default(),
            ..Default::default()
        }],
        deny: vec![],
    };
    let mut stream = client
        .get_events(request)
        .await
        .context("starting the event stream")?
        .into_inner();
    let stdout = std::io::stdout();
    while let Some(event) = stream.message().await.context("reading the event stream")? {
        // A closed stdout (`| head`) ends the command quietly.
        if !forensics::write_event(&mut stdout.lock(), &event, json).unwrap_or(false) {
            break;
        }
    }
    Ok(())
}

fn policy_command(action: PolicyAction) -> anyhow::Result<ExitCode> {
    use vigil::policy::{PolicyError, cases, load};
    match action {
        PolicyAction::Check {
            paths,
            with_default,
        } => {
            let files = load::files(&paths)?;
            let mut sources = if with_default {
                load::default_sources()
            } else {
                Vec::new()
            };
            sources.extend(load::read(&files)?);
            match load::compile(&sources) {
                Ok(set) => {
                    println!(
                        "{} rules in {} files: ok",
                        set.rules().len(),
                        set.sources().len()
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(errors) => {
                    eprintln!("{errors}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        PolicyAction::Test { paths } => {
            let (mut passed, mut failed) = (0, 0);
            for file in cases::files(&paths)? {
                match cases::run_file(&file) {
                    Ok(report) => {
                        passed += report.passed;
                        failed += report.failures.len();
                        for failure in &report.failures {
                            eprintln!("{failure}");
                        }
                    }
                    Err(PolicyError::Check(errors)) => {
                        eprintln!("{errors}");
                        failed += 1;
                    }
                    Err(error) => return Err(error.into()),
                }
            }
            println!("{passed} passed, {failed} failed");
            Ok(if failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        PolicyAction::Default => {
            for (name, text) in vigil::policy::pack::DEFAULT_PACK {
                println!("# {name}\n{text}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn run(config: Option<PathBuf>, output: Option<String>) -> anyhow::Result<ExitCode> {
    let mut config = Config::load_trusted(config.as_deref())?;
    if let Some(output) = output {
        config.output.target = output;
    }
    let renderer = JsonRenderer::new(node_name(&config.node_name), BootClock::now());
    let exporter: Box<dyn Exporter> = if config.output.target == "stdout" {
        Box::new(JsonLines::new(renderer, BufWriter::new(std::io::stdout())))
    } else {
        // Not buffered: the exporter hands it each batch whole, and it rotates between lines.
        let file = RotatingFile::open(&config.output.target, config.output.rotation())
            .context("opening the output")?;
        Box::new(JsonLines::new(renderer, file))
    };
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(async move {
        // Installed before the (slow) load, so that a stop request during start-up is a clean
        // stop rather than the default action of the signal.
        let mut signals = StopSignals::new()?;
        let agent = Agent::start(&config, exporter).context("starting the sensor")?;
        let hooks: Vec<&str> = agent.attached().iter().map(|p| p.hook).collect();
        tracing::info!(?hooks, "Vigil is running.");
        signals.wait(&agent).await;
        tracing::info!("Shutting down: detaching programs and draining events.");
        let summary = agent.stop().await;
        let _ = std::io::stdout().flush();
        tracing::info!(events = summary.events, lost = summary.lost, "Stopped.");
        match summary.export_error {
            Some(error) => anyhow::bail!("writing events failed: {error}"),
            None => Ok(ExitCode::SUCCESS),
        }
    })
}

/// SIGINT and SIGTERM ask the agent to stop.
struct StopSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn new() -> anyhow::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
            int: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
        })
    }

    /// The next SIGINT or SIGTERM (also one received before this call).
    async fn next(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }

    /// Returns on SIGINT, SIGTERM (also one received during start-up), or when the pipeline
    /// stopped by itself.
    async fn wait(&mut self, agent: &Agent) {
        let mut check = tokio::time::interval(std::time::Duration::from_millis(200));
        loop {
            tokio::select! {
                _ = self.term.recv() => return,
                _ = self.int.recv() => return,
                _ = check.tick() => if agent.pipeline_finished() { return },
            }
        }
    }
}
