//! Byte offsets of kernel struct members, read from the running kernel's BTF.
//!
//! Rust eBPF programs get no CO-RE relocations, so a probe that reads `task->tgid` cannot
//! carry a compile-time offset: struct layouts change between kernel builds and configs. At
//! load time the agent parses the kernel's own type information (`/sys/kernel/btf/vmlinux`),
//! asks [`Btf::member_offset`] for the few members the probes read, and hands the numbers to
//! the kernel side before the programs load.
//!
//! Only what offset resolution needs is kept: every type record is decoded so that type ids
//! line up, struct and union members are stored, and the trailing data of every other kind
//! is skipped. A broken or hostile file must give an error, never a panic or a hang, so
//! every read is bounds-checked and every walk through the type graph is depth-limited.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// Where the running kernel exposes its own BTF.
pub const VMLINUX_BTF_PATH: &str = "/sys/kernel/btf/vmlinux";

const BTF_MAGIC: u16 = 0xEB9F;
const BTF_VERSION: u8 = 1;
/// Bytes of the version-1 header that we read; `hdr_len` may announce a longer header.
const HEADER_LEN: usize = 24;
/// The fixed part of every type record: `name_off`, `info`, `size`/`type`.
const TYPE_HEADER_LEN: usize = 12;
/// Limit for typedef/qualifier chains and for anonymous-member nesting. Real kernels need a
/// handful of levels; a cycle in a hostile file must end in an error, not a hang or a stack
/// overflow.
const MAX_DEPTH: u32 = 32;

/// Why BTF could not be read or an offset could not be resolved.
///
/// Callers treat [`BtfError::StructNotFound`] and [`BtfError::MemberNotFound`] as "this
/// kernel lacks the field" (some members are optional), and everything else as a broken file.
#[derive(Debug, thiserror::Error)]
pub enum BtfError {
    /// The file could not be read (absent without CONFIG_DEBUG_INFO_BTF).
    #[error("failed to read BTF from {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A read ran past the end of the blob or of a section.
    #[error("BTF is truncated: {what} at byte {offset} runs past the end")]
    Truncated { what: &'static str, offset: usize },
    /// The first two bytes are 0xeB9F in neither byte order: this is not BTF.
    #[error("not BTF: magic is {found:#06x}, expected 0xeb9f")]
    BadMagic { found: u16 },
    /// Only version 1 exists; a newer one may change record layouts.
    #[error("unsupported BTF version {version}, only version 1 is understood")]
    UnsupportedVersion { version: u8 },
    /// The header claims to be shorter than the version-1 fields it must hold.
    #[error("BTF header length {hdr_len} is shorter than the 24-byte version-1 header")]
    BadHeaderLength { hdr_len: u32 },
    /// A type record has a kind this parser does not know, so its length is unknown and
    /// nothing after it can be located.
    #[error("BTF type id {type_id} has unknown kind {kind}")]
    UnknownKind { kind: u32, type_id: u32 },
    /// A record refers to a type id past the end of the type section.
    #[error("BTF refers to type id {type_id}, which does not exist")]
    BadTypeId { type_id: u32 },
    /// A name offset is out of range, unterminated, or (for struct names) not UTF-8.
    #[error("BTF string at offset {offset} is out of range, unterminated or not UTF-8")]
    BadString { offset: u32 },
    /// A typedef/qualifier chain or anonymous nesting is deeper than any real kernel's.
    #[error("BTF type chain or nesting is deeper than {max} levels at type id {type_id}", max = MAX_DEPTH)]
    TooDeep { type_id: u32 },
    /// No struct of this name (or only an empty declaration of it).
    #[error("struct {name} not found in BTF")]
    StructNotFound { name: String },
    /// One segment of the member path does not exist in the struct it was looked up in.
    #[error("member `{member}` not found in struct {strukt}: no `{segment}`")]
    MemberNotFound {
        strukt: String,
        member: String,
        segment: String,
    },
    /// The path continues past a member that is not a struct or union (a pointer, say, which
    /// would need a load in the probe rather than an offset).
    #[error("cannot walk `{member}` in struct {strukt}: `{segment}` is not a struct or union")]
    NotAggregate {
        strukt: String,
        member: String,
        segment: String,
    },
    /// A bitfield has no byte address, so no offset a probe could read at.
    #[error("member `{member}` of struct {strukt} is a bitfield and has no byte offset")]
    Bitfield { strukt: String, member: String },
    /// A non-bitfield member that claims to start inside a byte: a malformed file.
    #[error("member `{member}` of struct {strukt} starts at bit {bit_offset}, not on a byte")]
    Unaligned {
        strukt: String,
        member: String,
        bit_offset: u64,
    },
    /// No `btf_trace_<name>` typedef to a function prototype: the kernel has no such
    /// tracepoint, or the file is not a kernel's BTF.
    #[error("tracepoint {name} not found in BTF (no btf_trace_{name} prototype)")]
    TracepointNotFound { name: String },
    /// The summed offset does not fit the `u32` the probes take.
    #[error("offset of `{member}` in struct {strukt} does not fit in 32 bits")]
    OffsetOverflow { strukt: String, member: String },
}

/// Parsed BTF: the type records and string section of one blob, plus a struct-name index.
pub struct Btf {
    /// Indexed by type id; entry 0 stands for `void` so ids need no adjustment.
    types: Vec<TypeRec>,
    /// Members of every struct and union, addressed by [`Detail::Members`] ranges.
    members: Vec<Member>,
    strings: Strings,
    /// Struct name to type id, built once because vmlinux holds over 100k types.
    structs: HashMap<String, u32>,
}

impl fmt::Debug for Btf {
    /// Counts only: the full tables are megabytes and useless in a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Btf")
            .field("types", &self.types.len().saturating_sub(1))
            .field("structs", &self.structs.len())
            .finish_non_exhaustive()
    }
}

impl Btf {
    /// Reads and parses a BTF file, normally [`VMLINUX_BTF_PATH`].
    pub fn from_file(path: &Path) -> Result<Self, BtfError> {
        let data = std::fs::read(path).map_err(|source| BtfError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&data)
    }

    /// Parses a raw BTF blob in either byte order (the magic tells which).
    pub fn parse(data: &[u8]) -> Result<Self, BtfError> {
        let header = Header::parse(data)?;
        let type_section =
            header.section(data, header.type_off, header.type_len, "type section")?;
        let str_section = header.section(data, header.str_off, header.str_len, "string section")?;
        let strings = Strings(str_section.data.to_vec());
        let (types, members) = parse_types(type_section)?;
        let structs = index_structs(&types, &strings)?;
        Ok(Self {
            types,
            members,
            strings,
            structs,
        })
    }

    /// Byte offset of `member` inside `struct strukt`.
    ///
    /// `member` may be a dotted path (`"d_name.name"`, `"f_path.dentry"`) that walks into
    /// nested struct/union members, through typedefs and qualifiers, and adds up their
    /// offsets. It cannot walk through a pointer: that needs a load in the probe. Members of
    /// anonymous structs/unions are found as if they were direct members, as in C, but a
    /// named direct member always wins over a same-named one inside an anonymous aggregate.
    pub fn member_offset(&self, strukt: &str, member: &str) -> Result<u32, BtfError> {
        let path = MemberPath { strukt, member };
        let mut type_id = self.struct_id(strukt)?;
        let mut bits: u64 = 0;
        let mut previous = strukt;
        for segment in member.split('.') {
            let aggregate = self
                .aggregate_of(type_id)?
                .ok_or_else(|| path.not_aggregate(previous))?;
            let found = self
                .find_member(aggregate, segment.as_bytes())?
                .ok_or_else(|| path.not_found(segment))?;
            self.check_addressable(&found, &path)?;
            bits = bits.saturating_add(found.bit_offset);
            type_id = found.type_id;
            previous = segment;
        }
        u32::try_from(bits / 8).map_err(|_| path.overflow())
    }

    /// How many arguments the kernel passes to programs on tracepoint `name` (what a
    /// `tp_btf` or raw tracepoint program may read), from the prototype of its
    /// `btf_trace_<name>` typedef, less the leading `void *` every such prototype has.
    /// Tracepoints gain arguments across kernel versions (`sched_process_exit` got
    /// `group_dead`), and reading past the last is refused at load.
    pub fn tracepoint_args(&self, name: &str) -> Result<u32, BtfError> {
        let typedef = format!("btf_trace_{name}");
        let not_found = || BtfError::TracepointNotFound {
            name: name.to_owned(),
        };
        for rec in &self.types {
            if rec.kind != Kind::Typedef
                || rec.name_off == 0
                || self.strings.bytes_at(rec.name_off)? != typedef.as_bytes()
            {
                continue;
            }
            let (_, pointer) = self.skip_modifiers(rec.size_or_type)?;
            if pointer.kind != Kind::Ptr {
                return Err(not_found());
            }
            let (_, proto) = self.skip_modifiers(pointer.size_or_type)?;
            return match proto.detail {
                Detail::Params { count } if proto.kind == Kind::FuncProto => {
                    Ok(count.saturating_sub(1))
                }
                _ => Err(not_found()),
            };
        }
        Err(not_found())
    }

    fn struct_id(&self, name: &str) -> Result<u32, BtfError> {
        self.structs
            .get(name)
            .copied()
            .ok_or_else(|| BtfError::StructNotFound {
                name: name.to_owned(),
            })
    }

    fn type_rec(&self, type_id: u32) -> Result<&TypeRec, BtfError> {
        self.types
            .get(type_id as usize)
            .ok_or(BtfError::BadTypeId { type_id })
    }

    fn members_of(&self, rec: &TypeRec) -> &[Member] {
        match &rec.detail {
            Detail::Members(range) => self.members.get(range.clone()).unwrap_or_default(),
            Detail::None | Detail::Int { .. } | Detail::Params { .. } => &[],
        }
    }

    /// Follows typedefs and qualifiers to the type they stand for, because a member typed
    /// `const struct qstr` or `atomic_t` is walked exactly like the type underneath.
    fn skip_modifiers(&self, mut type_id: u32) -> Result<(u32, &TypeRec), BtfError> {
        for _ in 0..MAX_DEPTH {
            let rec = self.type_rec(type_id)?;
            if !rec.kind.is_modifier() {
                return Ok((type_id, rec));
            }
            type_id = rec.size_or_type;
        }
        Err(BtfError::TooDeep { type_id })
    }

    /// The struct or union that `type_id` names, if it names one.
    fn aggregate_of(&self, type_id: u32) -> Result<Option<u32>, BtfError> {
        let (id, rec) = self.skip_modifiers(type_id)?;
        Ok(matches!(rec.kind, Kind::Struct | Kind::Union).then_some(id))
    }

    /// Looks `name` up in aggregate `type_id`; an empty name never matches, since anonymous
    /// members have empty names.
    fn find_member(&self, type_id: u32, name: &[u8]) -> Result<Option<Found>, BtfError> {
        if name.is_empty() {
            return Ok(None);
        }
        self.find_member_at(type_id, name, 0)
    }

    /// Searches the direct members first, so a named member wins, then descends into
    /// anonymous struct/union members, whose members C places in the parent's namespace.
    fn find_member_at(
        &self,
        type_id: u32,
        name: &[u8],
        depth: u32,
    ) -> Result<Option<Found>, BtfError> {
        let rec = self.type_rec(type_id)?;
        let members = self.members_of(rec);
        for member in members {
            if self.strings.bytes_at(member.name_off)? == name {
                return Ok(Some(Found::direct(rec, member)));
            }
        }
        self.find_in_anonymous(rec, members, name, depth)
    }

    fn find_in_anonymous(
        &self,
        parent: &TypeRec,
        members: &[Member],
        name: &[u8],
        depth: u32,
    ) -> Result<Option<Found>, BtfError> {
        for member in members {
            if !self.strings.bytes_at(member.name_off)?.is_empty() {
                continue;
            }
            let Some(inner) = self.aggregate_of(member.type_id)? else {
                continue;
            };
            if depth >= MAX_DEPTH {
                return Err(BtfError::TooDeep { type_id: inner });
            }
            if let Some(found) = self.find_member_at(inner, name, depth + 1)? {
                let outer = Placement::of(parent, member);
                return Ok(Some(found.shifted_by(outer.bit_offset)));
            }
        }
        Ok(None)
    }

    /// A probe reads whole bytes, so a bitfield or a member starting mid-byte has no usable
    /// offset.
    fn check_addressable(&self, found: &Found, path: &MemberPath<'_>) -> Result<(), BtfError> {
        if found.bitfield_size != 0 || self.is_int_bitfield(found.type_id)? {
            return Err(path.bitfield());
        }
        if !found.bit_offset.is_multiple_of(8) {
            return Err(path.unaligned(found.bit_offset));
        }
        Ok(())
    }

    /// Without `kind_flag`, BTF encodes a bitfield as a member whose int type is narrower
    /// than its storage or starts at a bit offset inside it.
    fn is_int_bitfield(&self, type_id: u32) -> Result<bool, BtfError> {
        let (_, rec) = self.skip_modifiers(type_id)?;
        let Detail::Int { encoding } = rec.detail else {
            return Ok(false);
        };
        let nr_bits = u64::from(encoding & 0xff);
        let bit_offset = (encoding >> 16) & 0xff;
        Ok(bit_offset != 0 || nr_bits != u64::from(rec.size_or_type) * 8)
    }
}

/// The request being resolved, kept together so every error names the struct and the full
/// path the caller asked for.
struct MemberPath<'a> {
    strukt: &'a str,
    member: &'a str,
}

impl MemberPath<'_> {
    fn not_found(&self, segment: &str) -> BtfError {
        BtfError::MemberNotFound {
            strukt: self.strukt.to_owned(),
            member: self.member.to_owned(),
            segment: segment.to_owned(),
        }
    }

    fn not_aggregate(&self, segment: &str) -> BtfError {
        BtfError::NotAggregate {
            strukt: self.strukt.to_owned(),
            member: self.member.to_owned(),
            segment: segment.to_owned(),
        }
    }

    fn bitfield(&self) -> BtfError {
        BtfError::Bitfield {
            strukt: self.strukt.to_owned(),
            member: self.member.to_owned(),
        }
    }

    fn unaligned(&self, bit_offset: u64) -> BtfError {
        BtfError::Unaligned {
            strukt: self.strukt.to_owned(),
            member: self.member.to_owned(),
            bit_offset,
        }
    }

    fn overflow(&self) -> BtfError {
        BtfError::OffsetOverflow {
            strukt: self.strukt.to_owned(),
            member: self.member.to_owned(),
        }
    }
}

/// A member found by name: where it starts relative to the aggregate searched, and its type.
struct Found {
    bit_offset: u64,
    bitfield_size: u32,
    type_id: u32,
}

impl Found {
    fn direct(parent: &TypeRec, member: &Member) -> Self {
        let placement = Placement::of(parent, member);
        Self {
            bit_offset: u64::from(placement.bit_offset),
            bitfield_size: placement.bitfield_size,
            type_id: member.type_id,
        }
    }

    /// Re-bases a member found inside an anonymous aggregate onto the aggregate's parent.
    fn shifted_by(self, bits: u32) -> Self {
        Self {
            bit_offset: self.bit_offset.saturating_add(u64::from(bits)),
            ..self
        }
    }
}

/// A member's decoded `offset` word, whose layout depends on the parent's `kind_flag`.
struct Placement {
    bit_offset: u32,
    bitfield_size: u32,
}

impl Placement {
    fn of(parent: &TypeRec, member: &Member) -> Self {
        if parent.kind_flag {
            Self {
                bit_offset: member.offset & 0x00ff_ffff,
                bitfield_size: member.offset >> 24,
            }
        } else {
            Self {
                bit_offset: member.offset,
                bitfield_size: 0,
            }
        }
    }
}

mod format;

use format::*;

#[cfg(test)]
mod tests;
