//! The BTF wire format: header, type records and strings, read with bounds checks.

use std::{collections::HashMap, ops::Range};

use super::{BTF_MAGIC, BTF_VERSION, BtfError, HEADER_LEN, TYPE_HEADER_LEN};

/// BTF type kinds, numbered as in `include/uapi/linux/btf.h`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Void,
    Int,
    Ptr,
    Array,
    Struct,
    Union,
    Enum,
    Fwd,
    Typedef,
    Volatile,
    Const,
    Restrict,
    Func,
    FuncProto,
    Var,
    Datasec,
    Float,
    DeclTag,
    TypeTag,
    Enum64,
}

impl Kind {
    /// `None` for 0 (void is implicit, never a record) and for kinds newer than this parser.
    pub(super) fn from_raw(raw: u32) -> Option<Self> {
        const KINDS: [Kind; 19] = [
            Kind::Int,
            Kind::Ptr,
            Kind::Array,
            Kind::Struct,
            Kind::Union,
            Kind::Enum,
            Kind::Fwd,
            Kind::Typedef,
            Kind::Volatile,
            Kind::Const,
            Kind::Restrict,
            Kind::Func,
            Kind::FuncProto,
            Kind::Var,
            Kind::Datasec,
            Kind::Float,
            Kind::DeclTag,
            Kind::TypeTag,
            Kind::Enum64,
        ];
        let index = usize::try_from(raw.checked_sub(1)?).ok()?;
        KINDS.get(index).copied()
    }

    /// Bytes of kind-specific data after the fixed record; a new kind must be added here
    /// before it can be parsed, hence no wildcard arm.
    pub(super) fn trailing_len(self, vlen: u32) -> usize {
        let vlen = vlen as usize;
        match self {
            Kind::Void
            | Kind::Ptr
            | Kind::Fwd
            | Kind::Typedef
            | Kind::Volatile
            | Kind::Const
            | Kind::Restrict
            | Kind::Func
            | Kind::Float
            | Kind::TypeTag => 0,
            Kind::Int | Kind::Var | Kind::DeclTag => 4,
            Kind::Array => 12,
            Kind::Enum | Kind::FuncProto => vlen * 8,
            Kind::Struct | Kind::Union | Kind::Datasec | Kind::Enum64 => vlen * 12,
        }
    }

    /// Kinds that only rename or qualify another type and are transparent for layout.
    pub(super) fn is_modifier(self) -> bool {
        matches!(
            self,
            Kind::Typedef | Kind::Const | Kind::Volatile | Kind::Restrict | Kind::TypeTag
        )
    }
}

/// One decoded type record.
pub(super) struct TypeRec {
    pub(super) kind: Kind,
    /// For structs and unions: member offsets carry a bitfield size in their top byte.
    pub(super) kind_flag: bool,
    pub(super) name_off: u32,
    /// The size for sized kinds, the referenced type id for modifiers and pointers.
    pub(super) size_or_type: u32,
    pub(super) detail: Detail,
}

impl TypeRec {
    const VOID: Self = Self {
        kind: Kind::Void,
        kind_flag: false,
        name_off: 0,
        size_or_type: 0,
        detail: Detail::None,
    };

    pub(super) fn member_count(&self) -> usize {
        match &self.detail {
            Detail::Members(range) => range.len(),
            Detail::None | Detail::Int { .. } | Detail::Params { .. } => 0,
        }
    }
}

/// The kind-specific data kept; everything else is skipped at parse time.
pub(super) enum Detail {
    None,
    /// INT encoding word, needed to recognise bitfields written without `kind_flag`.
    Int {
        encoding: u32,
    },
    /// Range into [`Btf::members`].
    Members(Range<usize>),
    /// A FUNC_PROTO's parameter count (the parameters themselves are not kept).
    Params {
        count: u32,
    },
}

/// One struct/union member as stored; `offset` is decoded by [`Placement::of`].
pub(super) struct Member {
    pub(super) name_off: u32,
    pub(super) type_id: u32,
    pub(super) offset: u32,
}

/// The string section: NUL-terminated names addressed by byte offset.
pub(super) struct Strings(pub(super) Vec<u8>);

impl Strings {
    pub(super) fn bytes_at(&self, offset: u32) -> Result<&[u8], BtfError> {
        let tail = self
            .0
            .get(offset as usize..)
            .ok_or(BtfError::BadString { offset })?;
        let len = tail
            .iter()
            .position(|&b| b == 0)
            .ok_or(BtfError::BadString { offset })?;
        tail.get(..len).ok_or(BtfError::BadString { offset })
    }

    pub(super) fn str_at(&self, offset: u32) -> Result<&str, BtfError> {
        std::str::from_utf8(self.bytes_at(offset)?).map_err(|_| BtfError::BadString { offset })
    }
}

/// Bounds-checked, byte-order-aware view of the blob or one of its sections.
#[derive(Clone, Copy)]
pub(super) struct Reader<'a> {
    pub(super) data: &'a [u8],
    pub(super) big_endian: bool,
    /// Where `data` starts in the blob, so errors report absolute offsets.
    pub(super) base: usize,
}

impl Reader<'_> {
    pub(super) fn u32_at(&self, pos: usize, what: &'static str) -> Result<u32, BtfError> {
        let bytes = self
            .data
            .get(pos..)
            .and_then(|tail| tail.first_chunk::<4>())
            .ok_or(BtfError::Truncated {
                what,
                offset: self.base.saturating_add(pos),
            })?;
        Ok(if self.big_endian {
            u32::from_be_bytes(*bytes)
        } else {
            u32::from_le_bytes(*bytes)
        })
    }
}

/// The version-1 header; section offsets count from the end of the header.
pub(super) struct Header {
    pub(super) big_endian: bool,
    pub(super) hdr_len: u32,
    pub(super) type_off: u32,
    pub(super) type_len: u32,
    pub(super) str_off: u32,
    pub(super) str_len: u32,
}

impl Header {
    pub(super) fn parse(data: &[u8]) -> Result<Self, BtfError> {
        let big_endian = byte_order(data)?;
        let version = *data.get(2).ok_or(BtfError::Truncated {
            what: "header",
            offset: 2,
        })?;
        if version != BTF_VERSION {
            return Err(BtfError::UnsupportedVersion { version });
        }
        let r = Reader {
            data,
            big_endian,
            base: 0,
        };
        let hdr_len = r.u32_at(4, "header length")?;
        if (hdr_len as usize) < HEADER_LEN {
            return Err(BtfError::BadHeaderLength { hdr_len });
        }
        Ok(Self {
            big_endian,
            hdr_len,
            type_off: r.u32_at(8, "type section offset")?,
            type_len: r.u32_at(12, "type section length")?,
            str_off: r.u32_at(16, "string section offset")?,
            str_len: r.u32_at(20, "string section length")?,
        })
    }

    pub(super) fn section<'a>(
        &self,
        data: &'a [u8],
        off: u32,
        len: u32,
        what: &'static str,
    ) -> Result<Reader<'a>, BtfError> {
        let start = (self.hdr_len as usize).saturating_add(off as usize);
        let end = start.saturating_add(len as usize);
        let bytes = data.get(start..end).ok_or(BtfError::Truncated {
            what,
            offset: start,
        })?;
        Ok(Reader {
            data: bytes,
            big_endian: self.big_endian,
            base: start,
        })
    }
}

/// The magic is written in the producer's byte order, so it tells us how to read the rest.
pub(super) fn byte_order(data: &[u8]) -> Result<bool, BtfError> {
    let magic = data.first_chunk::<2>().ok_or(BtfError::Truncated {
        what: "magic",
        offset: 0,
    })?;
    if u16::from_le_bytes(*magic) == BTF_MAGIC {
        Ok(false)
    } else if u16::from_be_bytes(*magic) == BTF_MAGIC {
        Ok(true)
    } else {
        Err(BtfError::BadMagic {
            found: u16::from_le_bytes(*magic),
        })
    }
}

/// Decodes every record in order; a record's position in the section is its type id.
pub(super) fn parse_types(section: Reader<'_>) -> Result<(Vec<TypeRec>, Vec<Member>), BtfError> {
    // vmlinux averages a little over 30 bytes per record: one allocation in the common case.
    let mut types = Vec::with_capacity(section.data.len() / 32 + 1);
    types.push(TypeRec::VOID);
    let mut members = Vec::new();
    let mut pos = 0;
    for type_id in 1u32.. {
        if pos >= section.data.len() {
            break;
        }
        let (rec, next) = parse_type(section, pos, type_id, &mut members)?;
        types.push(rec);
        pos = next;
    }
    Ok((types, members))
}

/// Decodes the record at `pos`, appending struct/union members to `members`; returns the
/// record and the position of the next one.
pub(super) fn parse_type(
    section: Reader<'_>,
    pos: usize,
    type_id: u32,
    members: &mut Vec<Member>,
) -> Result<(TypeRec, usize), BtfError> {
    let name_off = section.u32_at(pos, "type name")?;
    let info = section.u32_at(pos + 4, "type info")?;
    let size_or_type = section.u32_at(pos + 8, "type size")?;
    let raw_kind = (info >> 24) & 0x1f;
    let kind = Kind::from_raw(raw_kind).ok_or(BtfError::UnknownKind {
        kind: raw_kind,
        type_id,
    })?;
    let vlen = info & 0xffff;
    let body = pos + TYPE_HEADER_LEN;
    let end = body.saturating_add(kind.trailing_len(vlen));
    if end > section.data.len() {
        return Err(BtfError::Truncated {
            what: "type data",
            offset: section.base.saturating_add(body),
        });
    }
    let detail = match kind {
        Kind::Struct | Kind::Union => Detail::Members(read_members(section, body, vlen, members)?),
        Kind::Int => Detail::Int {
            encoding: section.u32_at(body, "int encoding")?,
        },
        Kind::FuncProto => Detail::Params { count: vlen },
        _ => Detail::None,
    };
    let rec = TypeRec {
        kind,
        kind_flag: info >> 31 == 1,
        name_off,
        size_or_type,
        detail,
    };
    Ok((rec, end))
}

pub(super) fn read_members(
    section: Reader<'_>,
    pos: usize,
    vlen: u32,
    out: &mut Vec<Member>,
) -> Result<Range<usize>, BtfError> {
    let start = out.len();
    for i in 0..vlen as usize {
        let at = pos + i * 12;
        out.push(Member {
            name_off: section.u32_at(at, "member name")?,
            type_id: section.u32_at(at + 4, "member type")?,
            offset: section.u32_at(at + 8, "member offset")?,
        });
    }
    Ok(start..out.len())
}

/// Maps struct names to type ids. A name can occur more than once (an empty declaration
/// next to the definition, or duplicates the deduplicator kept); the first non-empty one
/// wins because an empty struct has no members to find.
pub(super) fn index_structs(
    types: &[TypeRec],
    strings: &Strings,
) -> Result<HashMap<String, u32>, BtfError> {
    let mut index: HashMap<String, u32> = HashMap::new();
    for (type_id, rec) in (0u32..).zip(types) {
        if rec.kind != Kind::Struct || rec.name_off == 0 {
            continue;
        }
        let name = strings.str_at(rec.name_off)?;
        match index.get_mut(name) {
            None if !name.is_empty() => {
                index.insert(name.to_owned(), type_id);
            }
            None => {}
            Some(current) => {
                let current_is_empty = types
                    .get(*current as usize)
                    .is_none_or(|c| c.member_count() == 0);
                if current_is_empty && rec.member_count() > 0 {
                    *current = type_id;
                }
            }
        }
    }
    Ok(index)
}
