//! Files that cannot be read at all: the error names the file (and the versions).

use super::*;
use crate::forensics::capture::format::{MAGIC, PREAMBLE_LEN, VERSION};

fn open_error(path: &Path) -> CaptureError {
    CaptureReader::open(path).err().expect("not readable")
}

#[test]
fn an_empty_file_is_an_error_naming_it() {
    let path = temp_dir("empty").join("empty.vcap");
    std::fs::write(&path, b"").expect("write");
    let error = open_error(&path);
    assert!(matches!(error, CaptureError::Empty { .. }), "{error:?}");
    assert!(
        error.to_string().contains(&path.display().to_string()),
        "{error}"
    );
}

#[test]
fn a_missing_file_is_an_error_naming_it() {
    let path = temp_dir("missing").join("missing.vcap");
    let error = open_error(&path);
    assert!(
        error.to_string().contains(&path.display().to_string()),
        "{error}"
    );
}

#[test]
fn wrong_magic_is_an_error_naming_the_file() {
    let dir = temp_dir("magic");
    for (name, bytes) in [
        ("json.vcap", b"{\"kind\":\"exec\"}\n".to_vec()),
        ("gzip.vcap", vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]),
        ("short.vcap", b"V".to_vec()),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, bytes).expect("write");
        let error = open_error(&path);
        assert!(
            matches!(error, CaptureError::NotACapture { .. }),
            "{error:?}"
        );
        let message = error.to_string();
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains("not a Vigil capture file"), "{message}");
    }
}

#[test]
fn a_preamble_cut_short_is_an_error() {
    let path = temp_dir("short").join("a.vcap");
    std::fs::write(&path, &MAGIC[..5]).expect("write");
    assert!(matches!(
        open_error(&path),
        CaptureError::Truncated { len: 5, .. }
    ));
    std::fs::write(&path, MAGIC).expect("write");
    let error = open_error(&path);
    assert!(
        matches!(error, CaptureError::Truncated { len: 8, .. }),
        "{error:?}"
    );
}

#[test]
fn a_future_version_is_an_error_naming_both_versions() {
    let dir = temp_dir("version");
    let path = dir.join("a.vcap");
    write(&path, &events(3), 10);
    let mut bytes = std::fs::read(&path).expect("read");
    let future = VERSION + 1;
    bytes[8..10].copy_from_slice(&future.to_le_bytes());
    std::fs::write(&path, &bytes).expect("write");
    let error = open_error(&path);
    assert!(
        matches!(error, CaptureError::UnsupportedVersion { found, .. } if found == future),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains(&format!("version {future}")), "{message}");
    assert!(
        message.contains(&format!("versions 1 to {VERSION}")),
        "{message}"
    );
    assert!(message.contains(&path.display().to_string()), "{message}");

    bytes[8..10].copy_from_slice(&0u16.to_le_bytes());
    std::fs::write(&path, &bytes).expect("write");
    assert!(matches!(
        open_error(&path),
        CaptureError::UnsupportedVersion { found: 0, .. }
    ));
    assert_eq!(PREAMBLE_LEN, 20);
}
