//! Thin `bpf(2)` map element calls on raw fds, for maps whose typed aya wrappers do not fit (values
//! larger than aya's typed arrays expect, per-CPU sums, fds shared between handles), and `mmap` of
//! mmapable arrays.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::ptr::NonNull;

const BPF_MAP_LOOKUP_ELEM: libc::c_long = 1;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_MAP_DELETE_ELEM: libc::c_long = 3;
const BPF_MAP_GET_NEXT_KEY: libc::c_long = 4;
const BPF_MAP_UPDATE_BATCH: libc::c_long = 26;
const BPF_MAP_DELETE_BATCH: libc::c_long = 27;

pub const BPF_ANY: u64 = 0;

/// The `map_elem` member of `union bpf_attr`.
#[repr(C, align(8))]
#[derive(Default)]
struct MapElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

fn map_elem(
    cmd: libc::c_long,
    fd: BorrowedFd<'_>,
    key: *const u8,
    value: *const u8,
    flags: u64,
) -> io::Result<()> {
    let attr = MapElemAttr {
        map_fd: fd.as_raw_fd() as u32,
        _pad: 0,
        key: key as u64,
        value: value as u64,
        flags,
    };
    // SAFETY: `attr` is a valid bpf_attr prefix for the map element commands; key/value point to
    // buffers of the map's key/value size, which the callers guarantee.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            &attr as *const MapElemAttr,
            std::mem::size_of::<MapElemAttr>() as u32,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// `BPF_MAP_UPDATE_ELEM`. `key`/`value` must be exactly the map's key and value sizes.
pub fn update(fd: BorrowedFd<'_>, key: &[u8], value: &[u8], flags: u64) -> io::Result<()> {
    map_elem(BPF_MAP_UPDATE_ELEM, fd, key.as_ptr(), value.as_ptr(), flags)
}

/// `BPF_MAP_DELETE_ELEM`.
pub fn delete(fd: BorrowedFd<'_>, key: &[u8]) -> io::Result<()> {
    map_elem(BPF_MAP_DELETE_ELEM, fd, key.as_ptr(), std::ptr::null(), 0)
}

/// `BPF_MAP_LOOKUP_ELEM` into `value` (per-CPU maps: value size rounded to 8 × possible CPUs).
pub fn lookup(fd: BorrowedFd<'_>, key: &[u8], value: &mut [u8]) -> io::Result<()> {
    map_elem(BPF_MAP_LOOKUP_ELEM, fd, key.as_ptr(), value.as_mut_ptr(), 0)
}

/// `BPF_MAP_GET_NEXT_KEY`: the key after `key` (the first key with `None`) into `next`; Ok(false)
/// at the end.
pub fn next_key(fd: BorrowedFd<'_>, key: Option<&[u8]>, next: &mut [u8]) -> io::Result<bool> {
    let k = key.map_or(std::ptr::null(), |k| k.as_ptr());
    // for this command the `value` field of the attribute is `next_key`
    match map_elem(BPF_MAP_GET_NEXT_KEY, fd, k, next.as_mut_ptr(), 0) {
        Ok(()) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

/// The `batch` member of `union bpf_attr`.
#[repr(C, align(8))]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

/// Whether an error means "this map type has no batch operations" (older kernels, map types
/// without `map_update_batch`), so the caller falls back to one call per element.
pub fn batch_unsupported(e: &io::Error) -> bool {
    // ENOTSUPP (524) is the kernel-internal code bpf(2) returns for missing map ops.
    matches!(
        e.raw_os_error(),
        Some(libc::EINVAL | libc::EOPNOTSUPP | 524)
    )
}

fn batch(
    cmd: libc::c_long,
    fd: BorrowedFd<'_>,
    keys: &[u8],
    values: Option<&[u8]>,
    count: usize,
) -> io::Result<()> {
    let mut done = 0usize;
    let (ksz, vsz) = (
        keys.len() / count.max(1),
        values.map_or(0, |v| v.len() / count.max(1)),
    );
    while done < count {
        let mut attr = BatchAttr {
            in_batch: 0,
            out_batch: 0,
            keys: keys[done * ksz..].as_ptr() as u64,
            values: values.map_or(0, |v| v[done * vsz..].as_ptr() as u64),
            count: (count - done) as u32,
            map_fd: fd.as_raw_fd() as u32,
            elem_flags: 0,
            flags: 0,
        };
        // SAFETY: attr points at `count - done` keys (and values) of the map's key (and value)
        // size, which the callers guarantee; the kernel reads them and writes back `count`.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                cmd,
                &mut attr as *mut BatchAttr,
                std::mem::size_of::<BatchAttr>() as u32,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        if attr.count == 0 {
            return Err(io::Error::other("batch operation processed no element"));
        }
        done += attr.count as usize;
    }
    Ok(())
}

/// `BPF_MAP_UPDATE_BATCH` of `count` elements: `keys` and `values` are `count` packed keys and
/// values of exactly the map's sizes. Stops at the first element the kernel refuses.
pub fn update_batch(
    fd: BorrowedFd<'_>,
    keys: &[u8],
    values: &[u8],
    count: usize,
) -> io::Result<()> {
    batch(BPF_MAP_UPDATE_BATCH, fd, keys, Some(values), count)
}

/// `BPF_MAP_DELETE_BATCH` of `count` packed keys.
pub fn delete_batch(fd: BorrowedFd<'_>, keys: &[u8], count: usize) -> io::Result<()> {
    batch(BPF_MAP_DELETE_BATCH, fd, keys, None, count)
}

/// Bytes of a plain-old-data value, for the calls above.
pub fn bytes_of<T: aya::Pod>(v: &T) -> &[u8] {
    // SAFETY: T is Pod (repr(C), no padding holes with undefined content that matter to the kernel).
    unsafe { std::slice::from_raw_parts(v as *const T as *const u8, std::mem::size_of::<T>()) }
}

/// A shared read/write mapping of a `BPF_F_MMAPABLE` array, unmapped on drop.
pub struct Mmap {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain shared memory; all accesses through it are atomics or raw reads.
unsafe impl Send for Mmap {}
unsafe impl Sync for Mmap {}

impl Mmap {
    pub fn new(fd: BorrowedFd<'_>, len: usize) -> io::Result<Mmap> {
        // SAFETY: mapping a valid fd MAP_SHARED; the kernel checks the length against the map.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Mmap {
            ptr: NonNull::new(p as *mut u8)
                .ok_or_else(|| io::Error::other("mmap returned NULL"))?,
            len,
        })
    }

    /// The u32 at byte offset `off` as an atomic. Panics when out of range or misaligned.
    pub fn u32_at(&self, off: usize) -> &std::sync::atomic::AtomicU32 {
        assert!(
            off.is_multiple_of(4) && off + 4 <= self.len,
            "mmap u32 offset {off} out of range"
        );
        // SAFETY: in bounds and aligned (mmap is page aligned); AtomicU32 has u32's layout.
        unsafe { &*(self.ptr.as_ptr().add(off) as *const std::sync::atomic::AtomicU32) }
    }

    /// The u16 at byte offset `off` as an atomic. Panics when out of range or misaligned.
    pub fn u16_at(&self, off: usize) -> &std::sync::atomic::AtomicU16 {
        assert!(
            off.is_multiple_of(2) && off + 2 <= self.len,
            "mmap u16 offset {off} out of range"
        );
        // SAFETY: in bounds and aligned (mmap is page aligned); AtomicU16 has u16's layout.
        unsafe { &*(self.ptr.as_ptr().add(off) as *const std::sync::atomic::AtomicU16) }
    }

    /// The `n` u16s from byte offset `off` as atomics. Panics when out of range or misaligned.
    pub fn u16_slice(&self, off: usize, n: usize) -> &[std::sync::atomic::AtomicU16] {
        assert!(
            off.is_multiple_of(2) && off + 2 * n <= self.len,
            "mmap u16 range {off}+{n} out of range"
        );
        // SAFETY: in bounds and aligned (mmap is page aligned); AtomicU16 has u16's layout.
        unsafe {
            std::slice::from_raw_parts(
                self.ptr.as_ptr().add(off) as *const std::sync::atomic::AtomicU16,
                n,
            )
        }
    }

    /// The u64 at byte offset `off` as an atomic.
    pub fn u64_at(&self, off: usize) -> &std::sync::atomic::AtomicU64 {
        assert!(
            off.is_multiple_of(8) && off + 8 <= self.len,
            "mmap u64 offset {off} out of range"
        );
        // SAFETY: as above.
        unsafe { &*(self.ptr.as_ptr().add(off) as *const std::sync::atomic::AtomicU64) }
    }
}

impl Mmap {
    /// Copies `src` into the mapping at byte offset `off`. Only for regions no BPF program reads
    /// concurrently (the classifier's inactive slot). Panics when out of range.
    pub fn write(&self, off: usize, src: &[u8]) {
        assert!(
            off.checked_add(src.len()).is_some_and(|e| e <= self.len),
            "mmap write {off}+{} out of range",
            src.len()
        );
        // SAFETY: in bounds (checked above); the source is a distinct Rust slice.
        unsafe {
            std::ptr::copy_nonoverlapping(src.as_ptr(), self.ptr.as_ptr().add(off), src.len())
        }
    }

    /// Copies bytes at `off` out of the mapping. Panics when out of range.
    pub fn read(&self, off: usize, dst: &mut [u8]) {
        assert!(
            off.checked_add(dst.len()).is_some_and(|e| e <= self.len),
            "mmap read {off}+{} out of range",
            dst.len()
        );
        // SAFETY: in bounds (checked above).
        unsafe {
            std::ptr::copy_nonoverlapping(self.ptr.as_ptr().add(off), dst.as_mut_ptr(), dst.len())
        }
    }
}

/// Bytes of a slice of plain-old-data values (u32, u64, arrays of them, ABI structs).
pub fn slice_bytes<T: Copy>(s: &[T]) -> &[u8] {
    // SAFETY: T is Copy plain data without padding in every use here (u32, u64, [u32; N], repr(C)
    // ABI structs with explicit padding); the byte view covers exactly the slice.
    unsafe { std::slice::from_raw_parts(s.as_ptr() as *const u8, std::mem::size_of_val(s)) }
}

impl Drop for Mmap {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what `new` mapped.
        unsafe {
            libc::munmap(self.ptr.as_ptr() as *mut libc::c_void, self.len);
        }
    }
}
