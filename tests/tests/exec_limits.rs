//! The limits of what an exec event copies: at most `ARGS_MAX` arguments, `ARGV_MAX` bytes
//! of them and `FILENAME_MAX` bytes of the filename. Past a limit, what fits is exact and the
//! event says it was cut.

use std::{ffi::OsString, path::Path, process::Command};

use vigil::config::Config;
use vigil_common::process::{ARGS_MAX, ARGV_MAX, FILENAME_MAX};
use vigil_tests::{
    EVENT_TIMEOUT, Harness,
    json::render,
    select::{exec, find_exec},
    spawn::{TempDir, argv, bytes, install_executable, run_to_end},
};

const TARGET_NAME: &str = "vigil-exec-target";

#[test]
fn more_than_args_max_arguments_are_cut_to_the_first_ones() {
    let Some(mut agent) = Harness::start(&Config::default()) else {
        return;
    };
    let dir = TempDir::new("exec-many");
    let program = install_executable(Path::new("/bin/true"), dir.path(), TARGET_NAME);
    let args: Vec<OsString> = (1..=ARGS_MAX + 72)
        .map(|i| format!("arg-{i}").into())
        .collect();
    let child = run_to_end(Command::new(&program).args(&args), EVENT_TIMEOUT);

    let event = agent.collect_until("the exec event of the child", EVENT_TIMEOUT, |events| {
        find_exec(events, child.pid, child.since_ns)
    });
    let detail = exec(&event).expect("an exec event");
    let expected = argv(&program, &args);
    assert!(
        expected.concat().len() + expected.len() < ARGV_MAX,
        "cut by count, not size"
    );
    assert_eq!(detail.image.args.len(), ARGS_MAX);
    assert_eq!(detail.image.args, expected[..ARGS_MAX]);
    assert!(detail.image.args_truncated);
    assert!(!detail.args_unreadable);
    let process = event.process.as_deref().expect("resolved");
    assert!(process.args_truncated);
    assert_eq!(process.args, detail.image.args);
    let json = render(&event);
    assert_eq!(json["process"]["args_truncated"], true);
    assert_eq!(
        json["process"]["args"].as_array().map(Vec::len),
        Some(ARGS_MAX)
    );

    agent.stop();
}
#[test]
fn an_argv_area_over_argv_max_bytes_is_cut_at_that_byte() {
    let Some(mut agent) = Harness::start(&Config::default()) else {
        return;
    };
    let dir = TempDir::new("exec-long");
    let program = install_executable(Path::new("/bin/true"), dir.path(), TARGET_NAME);
    let long_x = "x".repeat(3000);
    let long_y = "y".repeat(3000);
    let args: Vec<OsString> = vec![long_x.clone().into(), long_y.clone().into()];
    let child = run_to_end(Command::new(&program).args(&args), EVENT_TIMEOUT);

    let event = agent.collect_until("the exec event of the child", EVENT_TIMEOUT, |events| {
        find_exec(events, child.pid, child.since_ns)
    });
    let detail = exec(&event).expect("an exec event");
    // The first ARGV_MAX bytes of "program\0xxx...\0yyy...\0": the last argument is cut.
    let kept_y = ARGV_MAX - (bytes(&program).len() + 1) - (long_x.len() + 1);
    assert!(kept_y > 0 && kept_y < long_y.len());
    let expected = vec![
        bytes(&program),
        long_x.into_bytes(),
        long_y.as_bytes()[..kept_y].to_vec(),
    ];
    assert_eq!(detail.image.args.len(), 3);
    assert_eq!(
        detail.image.args[..2],
        expected[..2],
        "the arguments before the cut are exact"
    );
    assert_eq!(
        detail.image.args[2].len(),
        kept_y,
        "the cut argument keeps what fit"
    );
    assert_eq!(detail.image.args, expected);
    assert!(detail.image.args_truncated);
    assert!(!detail.args_unreadable);
    assert!(event.process.as_deref().expect("resolved").args_truncated);

    agent.stop();
}
#[test]
fn a_filename_over_filename_max_bytes_is_cut_and_flagged() {
    let Some(mut agent) = Harness::start(&Config::default()) else {
        return;
    };
    let dir = TempDir::new("exec-deep");
    let mut deep = dir.path().to_owned();
    while bytes(&deep).len() <= FILENAME_MAX {
        deep.push("d".repeat(100));
    }
    std::fs::create_dir_all(&deep).expect("creating the nested directories");
    let installed = install_executable(Path::new("/bin/true"), &deep, TARGET_NAME);
    let child = run_to_end(&mut Command::new(&installed), EVENT_TIMEOUT);

    let event = agent.collect_until("the exec event of the child", EVENT_TIMEOUT, |events| {
        find_exec(events, child.pid, child.since_ns)
    });
    let detail = exec(&event).expect("an exec event");
    // The kernel string read keeps FILENAME_MAX - 1 bytes and the NUL.
    assert_eq!(detail.filename, bytes(&installed)[..FILENAME_MAX - 1]);
    assert!(detail.filename_truncated);
    // The binary's path is walked, not copied from the filename: it is whole.
    assert_eq!(detail.image.binary.path, bytes(&installed));
    assert!(!detail.image.binary.truncated);
    assert_eq!(
        detail.image.args,
        [bytes(&installed)],
        "argv is not cut by the filename limit"
    );
    assert_eq!(render(&event)["exec"]["filename_truncated"], true);

    agent.stop();
}
