//! Where the raw `mark_victim` program finds the victim's figures and its parent: byte offsets
//! in the kernel's `task_struct`, `signal_struct` and `mm_struct`, read from the kernel's BTF
//! (`/sys/kernel/btf/vmlinux`) and handed to the program as [`OomTaskLayout`].
//!
//! Why a reader of our own, where the house prefers a crate (measured on this kernel's 5.5 MB
//! BTF, release build, issue 10):
//! - aya parses the BTF too (about 25 ms per load), but keeps its types private;
//! - `btfparse` (Apache-2.0) always builds a model of every type: 260 ms per load, which alone
//!   would make a traced run miss its budget (at most 2x an untraced one, about 70 ms);
//! - `btf-rs` is fast on a mapped file (about 8 ms) and well kept, but LGPL-2.1-or-later, which
//!   memspike (MIT OR Apache-2.0, one static binary) does not take on.
//!
//! So this reads only what it needs, in one pass over the type section (the format: the
//! kernel's `Documentation/bpf/btf.rst`) with every read bounds-checked, in about 2.5 ms. Anything unexpected (another layout of the RSS counters, a
//! tracepoint with other arguments) is an error that names it, and the classic tracepoint is
//! used instead.

use memspike_common::OomTaskLayout;

const MAGIC: u16 = 0xeb9f;

// Type kinds (btf.rst, "Type Encoding").
const KIND_INT: u32 = 1;
const KIND_PTR: u32 = 2;
const KIND_ARRAY: u32 = 3;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_ENUM: u32 = 6;
const KIND_TYPEDEF: u32 = 8;
const KIND_VOLATILE: u32 = 9;
const KIND_CONST: u32 = 10;
const KIND_RESTRICT: u32 = 11;
const KIND_FUNC_PROTO: u32 = 13;
const KIND_VAR: u32 = 14;
const KIND_DATASEC: u32 = 15;
const KIND_DECL_TAG: u32 = 17;
const KIND_TYPE_TAG: u32 = 18;
const KIND_ENUM64: u32 = 19;

/// The kernel's BTF, indexed by type id.
struct Btf<'a> {
    types: &'a [u8],
    strings: &'a [u8],
    /// Byte offset of each type in `types`; index = type id - 1.
    offsets: Vec<u32>,
}

/// One type's common header.
#[derive(Debug, Clone, Copy)]
struct Type {
    name_off: u32,
    kind: u32,
    vlen: u32,
    kind_flag: bool,
    /// Size, or the type referred to (by kind).
    size_or_type: u32,
    /// Offset of the kind-specific data in the type section.
    data: usize,
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

impl<'a> Btf<'a> {
    fn parse(data: &'a [u8]) -> Result<Btf<'a>, String> {
        let bad = || "not a little-endian BTF blob".to_owned();
        let magic = data.get(0..2).ok_or_else(bad)?;
        if u16::from_le_bytes([magic[0], magic[1]]) != MAGIC {
            return Err(bad());
        }
        let field = |at| u32_at(data, at).ok_or_else(bad);
        let hdr_len = field(4)? as usize;
        let (type_off, type_len) = (field(8)? as usize, field(12)? as usize);
        let (str_off, str_len) = (field(16)? as usize, field(20)? as usize);
        let section = |off: usize, len: usize| {
            data.get(hdr_len + off..hdr_len + off + len)
                .ok_or_else(|| "BTF section past the end of the blob".to_owned())
        };
        let mut btf = Btf {
            types: section(type_off, type_len)?,
            strings: section(str_off, str_len)?,
            offsets: Vec::new(),
        };
        let mut at = 0;
        while at < btf.types.len() {
            btf.offsets.push(at as u32);
            let t = btf.at(at).ok_or("BTF type section cut short")?;
            at = t.data + btf.extra_len(&t)?;
        }
        Ok(btf)
    }

    fn at(&self, at: usize) -> Option<Type> {
        let info = u32_at(self.types, at + 4)?;
        Some(Type {
            name_off: u32_at(self.types, at)?,
            kind: (info >> 24) & 0x1f,
            vlen: info & 0xffff,
            kind_flag: info >> 31 == 1,
            size_or_type: u32_at(self.types, at + 8)?,
            data: at + 12,
        })
    }

    /// The length of the data after a type's header.
    fn extra_len(&self, t: &Type) -> Result<usize, String> {
        let n = t.vlen as usize;
        Ok(match t.kind {
            KIND_INT | KIND_VAR | KIND_DECL_TAG => 4,
            KIND_ARRAY => 12,
            KIND_STRUCT | KIND_UNION | KIND_DATASEC | KIND_ENUM64 => 12 * n,
            KIND_ENUM | KIND_FUNC_PROTO => 8 * n,
            0 | 7 | KIND_PTR | KIND_TYPEDEF..=KIND_RESTRICT | 12 | 16 | KIND_TYPE_TAG => 0,
            kind => return Err(format!("BTF type kind {kind} is unknown")),
        })
    }

    fn get(&self, id: u32) -> Option<Type> {
        let at = *self.offsets.get((id as usize).checked_sub(1)?)?;
        self.at(at as usize)
    }

    fn name(&self, t: &Type) -> &'a [u8] {
        let rest = self.strings.get(t.name_off as usize..).unwrap_or(&[]);
        &rest[..rest.iter().position(|&b| b == 0).unwrap_or(rest.len())]
    }

    /// The first type of `kind` named `name`.
    fn named(&self, kind: u32, name: &str) -> Option<(u32, Type)> {
        (1..=self.offsets.len() as u32).find_map(|id| {
            let t = self.get(id)?;
            (t.kind == kind && self.name(&t) == name.as_bytes()).then_some((id, t))
        })
    }

    /// The type `id` refers to through typedefs and qualifiers.
    fn resolve(&self, mut id: u32) -> Option<Type> {
        for _ in 0..32 {
            let t = self.get(id)?;
            match t.kind {
                KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG => {
                    id = t.size_or_type
                }
                _ => return Some(t),
            }
        }
        None
    }

    /// The byte offset and type id of member `name` of the struct or union `t`, looking
    /// inside its anonymous members too.
    fn member(&self, t: &Type, name: &str) -> Option<(u32, u32)> {
        if t.kind != KIND_STRUCT && t.kind != KIND_UNION {
            return None;
        }
        for i in 0..t.vlen as usize {
            let at = t.data + 12 * i;
            let name_off = u32_at(self.types, at)?;
            let type_id = u32_at(self.types, at + 4)?;
            let offset = u32_at(self.types, at + 8)?;
            let bits = if t.kind_flag {
                offset & 0xff_ffff
            } else {
                offset
            };
            if bits % 8 != 0 {
                continue;
            }
            let field = Type { name_off, ..*t };
            let own = self.name(&field);
            if own == name.as_bytes() {
                return Some((bits / 8, type_id));
            }
            if own.is_empty()
                && let Some(inner) = self.resolve(type_id)
                && let Some((off, id)) = self.member(&inner, name)
            {
                return Some((bits / 8 + off, id));
            }
        }
        None
    }

    /// The value of the enumerator `name`.
    fn enumerator(&self, name: &str) -> Option<i64> {
        (1..=self.offsets.len() as u32).find_map(|id| {
            let t = self.get(id)?;
            let stride = match t.kind {
                KIND_ENUM => 8,
                KIND_ENUM64 => 12,
                _ => return None,
            };
            (0..t.vlen as usize).find_map(|i| {
                let at = t.data + stride * i;
                let e = Type {
                    name_off: u32_at(self.types, at)?,
                    ..t
                };
                if self.name(&e) != name.as_bytes() {
                    return None;
                }
                let lo = u32_at(self.types, at + 4)?;
                Some(match t.kind {
                    KIND_ENUM => i64::from(lo as i32),
                    _ => (i64::from(u32_at(self.types, at + 8)?) << 32) | i64::from(lo),
                })
            })
        })
    }
}

/// The layout for the raw `mark_victim` program on the kernel whose BTF is `data`, with
/// `page_size` bytes per page; why not, if the kernel's structures are not as expected.
pub fn from_btf(data: &[u8], page_size: u64) -> Result<OomTaskLayout, String> {
    let btf = Btf::parse(data)?;
    check_tracepoint(&btf)?;
    let strukt = |name: &str| {
        btf.named(KIND_STRUCT, name)
            .map(|(_, t)| t)
            .ok_or_else(|| format!("no struct {name} in the kernel's BTF"))
    };
    let member = |t: &Type, of: &str, name: &str| {
        btf.member(t, name)
            .ok_or_else(|| format!("no member {name} in struct {of}"))
    };
    let task = strukt("task_struct")?;
    let signal = strukt("signal_struct")?;
    let mm = strukt("mm_struct")?;
    let counter = strukt("percpu_counter")?;
    let (rss_stat, rss_type) = member(&mm, "mm_struct", "rss_stat")?;
    // 6.2 on: `struct percpu_counter rss_stat[NR_MM_COUNTERS]`, read as get_mm_counter does.
    let array = btf
        .resolve(rss_type)
        .filter(|t| t.kind == KIND_ARRAY)
        .ok_or("mm_struct.rss_stat is not an array of counters")?;
    let element = u32_at(btf.types, array.data).and_then(|id| btf.resolve(id));
    if element.map(|e| btf.name(&e)) != Some(b"percpu_counter".as_slice()) {
        return Err("mm_struct.rss_stat is not an array of struct percpu_counter".to_owned());
    }
    let (count, _) = member(&counter, "percpu_counter", "count")?;
    let rss = |name: &str| {
        let index = btf
            .enumerator(name)
            .and_then(|v| u32::try_from(v).ok())
            .ok_or_else(|| format!("no enumerator {name} in the kernel's BTF"))?;
        Ok::<u32, String>(rss_stat + index * counter.size_or_type + count)
    };
    if !page_size.is_power_of_two() || page_size < 1024 {
        return Err(format!("a page size of {page_size} bytes"));
    }
    Ok(OomTaskLayout {
        task_comm: member(&task, "task_struct", "comm")?.0,
        task_mm: member(&task, "task_struct", "mm")?.0,
        task_signal: member(&task, "task_struct", "signal")?.0,
        task_tgid: member(&task, "task_struct", "tgid")?.0,
        task_real_parent: member(&task, "task_struct", "real_parent")?.0,
        signal_oom_score_adj: member(&signal, "signal_struct", "oom_score_adj")?.0,
        mm_total_vm: member(&mm, "mm_struct", "total_vm")?.0,
        // atomic_long_t: its `counter` comes first.
        mm_pgtables_bytes: member(&mm, "mm_struct", "pgtables_bytes")?.0,
        mm_file_rss: rss("MM_FILEPAGES")?,
        mm_anon_rss: rss("MM_ANONPAGES")?,
        mm_shmem_rss: rss("MM_SHMEMPAGES")?,
        kb_shift: page_size.trailing_zeros() - 10,
    })
}

/// The raw tracepoint's arguments must be `(struct task_struct *, uid_t)` (Linux 6.8 on;
/// before, `mark_victim` took the pid alone).
fn check_tracepoint(btf: &Btf<'_>) -> Result<(), String> {
    let wrong = || "the mark_victim tracepoint does not take the victim's task_struct".to_owned();
    let (_, typedef) = btf
        .named(KIND_TYPEDEF, "btf_trace_mark_victim")
        .ok_or("no mark_victim tracepoint in the kernel's BTF")?;
    let proto = btf
        .resolve(typedef.size_or_type)
        .filter(|t| t.kind == KIND_PTR)
        .and_then(|p| btf.resolve(p.size_or_type))
        .filter(|t| t.kind == KIND_FUNC_PROTO && t.vlen == 3)
        .ok_or_else(wrong)?;
    // Parameter 0 is the tracepoint's data pointer; 1 the task.
    let task = u32_at(btf.types, proto.data + 8 + 4)
        .and_then(|id| btf.resolve(id))
        .filter(|t| t.kind == KIND_PTR)
        .and_then(|p| btf.resolve(p.size_or_type))
        .ok_or_else(wrong)?;
    if task.kind != KIND_STRUCT || btf.name(&task) != b"task_struct" {
        return Err(wrong());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A BTF blob built by hand: strings, then types in id order.
    struct Blob {
        types: Vec<u8>,
        strings: Vec<u8>,
    }

    impl Blob {
        fn new() -> Blob {
            Blob {
                types: Vec::new(),
                strings: vec![0],
            }
        }
        fn s(&mut self, name: &str) -> u32 {
            if name.is_empty() {
                return 0;
            }
            let off = self.strings.len() as u32;
            self.strings.extend_from_slice(name.as_bytes());
            self.strings.push(0);
            off
        }
        fn words(&mut self, w: &[u32]) {
            for x in w {
                self.types.extend_from_slice(&x.to_le_bytes());
            }
        }
        fn ty(&mut self, name: &str, kind: u32, vlen: u32, size_or_type: u32) {
            let n = self.s(name);
            self.words(&[n, (kind << 24) | vlen, size_or_type]);
        }
        fn strukt(&mut self, name: &str, size: u32, members: &[(&str, u32, u32)]) {
            self.ty(name, KIND_STRUCT, members.len() as u32, size);
            for (m, id, byte) in members {
                let n = self.s(m);
                self.words(&[n, *id, byte * 8]);
            }
        }
        fn bytes(&self) -> Vec<u8> {
            let mut b = Vec::new();
            b.extend_from_slice(&MAGIC.to_le_bytes());
            b.extend_from_slice(&[1, 0]);
            let hdr = 24u32;
            let tl = self.types.len() as u32;
            for w in [hdr, 0, tl, tl, self.strings.len() as u32] {
                b.extend_from_slice(&w.to_le_bytes());
            }
            b.extend_from_slice(&self.types);
            b.extend_from_slice(&self.strings);
            b
        }
    }

    /// The 6.18 shape, with made-up offsets: an anonymous struct inside mm_struct, typedefs on
    /// the way, an enum with the counters' indices.
    fn kernel_like(task_arg: &str) -> Vec<u8> {
        let mut b = Blob::new();
        b.ty("int", KIND_INT, 0, 4); // 1
        b.words(&[32]);
        b.ty("long", KIND_INT, 0, 8); // 2
        b.words(&[64]);
        b.ty("", KIND_PTR, 0, 0); // 3: void *
        b.strukt("percpu_counter", 40, &[("lock", 1, 0), ("count", 2, 8)]); // 4
        b.ty("", KIND_ARRAY, 0, 0); // 5: percpu_counter[4]
        b.words(&[4, 1, 4]);
        b.strukt(
            "", // 6: mm_struct's anonymous part
            600,
            &[
                ("total_vm", 2, 16),
                ("pgtables_bytes", 2, 40),
                ("rss_stat", 5, 400),
            ],
        );
        b.strukt("mm_struct", 640, &[("", 6, 0), ("cpu_bitmap", 2, 600)]); // 7
        b.ty("", KIND_PTR, 0, 7); // 8
        b.strukt("signal_struct", 900, &[("oom_score_adj", 1, 722)]); // 9
        b.ty("", KIND_PTR, 0, 9); // 10
        b.ty("", KIND_ARRAY, 0, 0); // 11: char[16]
        b.words(&[1, 1, 16]);
        b.strukt(
            task_arg, // 12
            3000,
            &[
                ("pid", 1, 1500),
                ("comm", 11, 1900),
                ("mm", 8, 1000),
                ("signal", 10, 2000),
                ("tgid", 1, 1504),
                ("real_parent", 13, 1400),
            ],
        );
        b.ty("", KIND_PTR, 0, 12); // 13
        b.ty("", KIND_FUNC_PROTO, 3, 0); // 14
        b.words(&[0, 3, 0, 13, 0, 1]);
        b.ty("", KIND_PTR, 0, 14); // 15
        b.ty("btf_trace_mark_victim", KIND_TYPEDEF, 0, 15); // 16
        b.ty("", KIND_ENUM, 4, 4); // 17
        for (name, v) in [
            ("MM_FILEPAGES", 0),
            ("MM_ANONPAGES", 1),
            ("MM_SWAPENTS", 2),
            ("MM_SHMEMPAGES", 3),
        ] {
            let n = b.s(name);
            b.words(&[n, v]);
        }
        b.bytes()
    }

    #[test]
    fn offsets_come_through_anonymous_members_and_the_counters_enum() {
        let l = from_btf(&kernel_like("task_struct"), 4096).expect("layout");
        assert_eq!(
            l,
            OomTaskLayout {
                task_comm: 1900,
                task_mm: 1000,
                task_signal: 2000,
                task_tgid: 1504,
                task_real_parent: 1400,
                signal_oom_score_adj: 722,
                mm_total_vm: 16,
                mm_pgtables_bytes: 40,
                mm_file_rss: 400 + 8,
                mm_anon_rss: 400 + 40 + 8,
                mm_shmem_rss: 400 + 3 * 40 + 8,
                kb_shift: 2,
            }
        );
    }

    #[test]
    fn another_tracepoint_or_blob_is_refused_with_its_reason() {
        let err = from_btf(&kernel_like("not_a_task"), 4096).expect_err("wrong argument");
        assert!(
            err.contains("does not take the victim's task_struct"),
            "{err}"
        );
        assert!(from_btf(b"\x9f\xeb", 4096).is_err());
        assert!(from_btf(b"not btf at all, not at all", 4096).is_err());
        let err = from_btf(&kernel_like("task_struct"), 100).expect_err("page size");
        assert!(err.contains("page size"), "{err}");
    }

    /// This machine's own kernel, where there is BTF: the offsets agree with its tracepoint.
    #[test]
    fn the_running_kernel_has_a_layout() {
        let Ok(data) = std::fs::read(crate::KERNEL_BTF) else {
            memspike_testkit::skip("the_running_kernel_has_a_layout", "no kernel BTF");
            return;
        };
        let layout = from_btf(&data, 4096).expect("this kernel's layout");
        assert_eq!(layout.kb_shift, 2);
        assert_ne!(layout.task_tgid, layout.task_comm);
        assert_ne!(layout.mm_anon_rss, layout.mm_file_rss);
    }
}
