//! bpffs: make sure `/sys/fs/bpf` is a BPF filesystem before anything is pinned there.

use std::ffi::CString;
use std::io;
use std::path::Path;

/// `BPF_FS_MAGIC` from linux/magic.h.
pub const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// Default bpffs mount point.
pub const BPFFS: &str = "/sys/fs/bpf";

/// True when `path` is on a BPF filesystem.
pub fn is_bpffs(path: &Path) -> io::Result<bool> {
    let c = CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `st` a writable statfs buffer.
    let rc = unsafe { libc::statfs(c.as_ptr(), &mut st) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st.f_type as i64 == BPF_FS_MAGIC)
}

/// Mounts bpffs at `/sys/fs/bpf` unless it is already there (idempotent).
pub fn ensure_bpffs() -> io::Result<()> {
    let path = Path::new(BPFFS);
    if path.exists() && is_bpffs(path)? {
        return Ok(());
    }
    std::fs::create_dir_all(path)?;
    let src = CString::new("bpffs").expect("static string");
    let target = CString::new(BPFFS).expect("static string");
    let fstype = CString::new("bpf").expect("static string");
    // SAFETY: all pointers are valid NUL-terminated strings; data is null.
    let rc = unsafe {
        libc::mount(
            src.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("mounting bpffs at {BPFFS} failed: {e} (needs CAP_SYS_ADMIN)"),
        ));
    }
    Ok(())
}
