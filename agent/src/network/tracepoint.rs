//! The `sock:inet_sock_set_state` tracepoint's record layout, checked against the kernel's
//! format file before the program that reads it at fixed offsets is attached.

use vigil_common::network::format::FIELDS;

/// Tracefs-relative path of the format file.
pub const FORMAT: &str = "events/sock/inet_sock_set_state/format";

/// Whether every field the kernel program reads is where it expects it, in `text` (the format
/// file); the first field that is not, and where it is, otherwise.
pub fn check_format(text: &str) -> Result<(), String> {
    for (name, offset) in FIELDS {
        let found = text.lines().find_map(|line| field_offset(line, name));
        if found != Some(offset) {
            return Err(match found {
                Some(at) => format!("field `{name}` is at offset {at}, not {offset}"),
                None => format!("field `{name}` is missing"),
            });
        }
    }
    Ok(())
}

/// The offset of `name` if `line` declares it (`field:__u8 saddr[4];\toffset:32;...`).
fn field_offset(line: &str, name: &str) -> Option<usize> {
    let mut parts = line.trim().split(';');
    let declaration = parts.next()?.strip_prefix("field:")?;
    let field = declaration.rsplit([' ', '*']).next()?.split('[').next()?;
    if field != name {
        return None;
    }
    parts
        .find_map(|p| p.trim().strip_prefix("offset:"))
        .and_then(|n| n.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINUX_6_18: &str = "name: inet_sock_set_state\nID: 2287\nformat:\n\
        \tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\
        \tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\n\
        \tfield:const void * skaddr;\toffset:8;\tsize:8;\tsigned:0;\n\
        \tfield:int oldstate;\toffset:16;\tsize:4;\tsigned:1;\n\
        \tfield:int newstate;\toffset:20;\tsize:4;\tsigned:1;\n\
        \tfield:__u16 sport;\toffset:24;\tsize:2;\tsigned:0;\n\
        \tfield:__u16 dport;\toffset:26;\tsize:2;\tsigned:0;\n\
        \tfield:__u16 family;\toffset:28;\tsize:2;\tsigned:0;\n\
        \tfield:__u16 protocol;\toffset:30;\tsize:2;\tsigned:0;\n\
        \tfield:__u8 saddr[4];\toffset:32;\tsize:4;\tsigned:0;\n\
        \tfield:__u8 daddr[4];\toffset:36;\tsize:4;\tsigned:0;\n\
        \tfield:__u8 saddr_v6[16];\toffset:40;\tsize:16;\tsigned:0;\n\
        \tfield:__u8 daddr_v6[16];\toffset:56;\tsize:16;\tsigned:0;\n";

    #[test]
    fn the_layout_of_this_kernel_matches() {
        assert_eq!(check_format(LINUX_6_18), Ok(()));
    }

    #[test]
    fn a_moved_or_missing_field_is_named() {
        let moved = LINUX_6_18.replace("offset:26;", "offset:28;");
        assert_eq!(
            check_format(&moved),
            Err("field `dport` is at offset 28, not 26".into())
        );
        let missing = LINUX_6_18.replace("protocol;", "proto;");
        assert_eq!(
            check_format(&missing),
            Err("field `protocol` is missing".into())
        );
        assert!(check_format("").is_err());
    }
}
