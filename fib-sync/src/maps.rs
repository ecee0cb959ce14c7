//! The map handles fib-sync uses: [`FibMaps`] (mmapped arrays, typed writes) plus read access that
//! `FibMaps` does not offer (iterating the LPM tries, reading next-hops and tx ports back), opened
//! from the same pins.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use aya::maps::lpm_trie::{Key, LpmTrie};
use aya::maps::{Array, DevMapHash, Map, MapData};
use fib_ebpf::FibMaps;
use fib_ebpf::abi::{
    DIR_ENTRY_TBL8, Fib6Key, FibVal, NHG_MAX, NHG_MAX_BUCKETS, Nh, Nhg, PL_NO_ROUTE,
};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::SyncError;

/// Every map of one pinned forwarder instance, open for reading and writing.
pub struct PinnedMaps {
    pub dir: PathBuf,
    pub fib: FibMaps,
    fib4: LpmTrie<MapData, [u8; 4], FibVal>,
    fib6: LpmTrie<MapData, [u8; 16], FibVal>,
    nh: Array<MapData, Nh>,
    tx_port: DevMapHash<MapData>,
    nhg: MapData,
    fib6_raw: MapData,
}

fn open_err(map: &'static str) -> impl FnOnce(aya::maps::MapError) -> SyncError {
    move |e| SyncError::Map(format!("pinned map {map}: {e}"))
}

impl PinnedMaps {
    /// Opens the maps pinned under `dir` (`/sys/fs/bpf/<instance>`), checking the ABI version.
    pub fn open(dir: &Path) -> Result<PinnedMaps, SyncError> {
        if !fib_ebpf::loader::check_pinned_abi(dir).map_err(|e| SyncError::Map(e.to_string()))? {
            return Err(SyncError::Map(format!(
                "no forwarder maps are pinned in {} (load the forwarder first)",
                dir.display()
            )));
        }
        let fib = FibMaps::open_pinned(dir).map_err(|e| SyncError::Map(e.to_string()))?;
        let md = |name: &'static str| MapData::from_pin(dir.join(name)).map_err(open_err(name));
        Ok(PinnedMaps {
            dir: dir.to_path_buf(),
            fib,
            fib4: LpmTrie::try_from(Map::LpmTrie(md("fib4")?)).map_err(open_err("fib4"))?,
            fib6: LpmTrie::try_from(Map::LpmTrie(md("fib6")?)).map_err(open_err("fib6"))?,
            nh: Array::try_from(Map::Array(md("nh")?)).map_err(open_err("nh"))?,
            tx_port: DevMapHash::try_from(Map::DevMapHash(md("tx_port")?))
                .map_err(open_err("tx_port"))?,
            nhg: md("nhg")?,
            fib6_raw: md("fib6")?,
        })
    }

    /// Writes several nexthop groups with one BPF_MAP_UPDATE_BATCH (ids nothing points at yet): a
    /// failover that needs hundreds of new groups costs one syscall instead of hundreds.
    pub fn nhg_write_batch(&self, items: &[(u32, &[u32])]) -> Result<(), SyncError> {
        let mut keys: Vec<u32> = Vec::with_capacity(items.len());
        let mut vals: Vec<Nhg> = Vec::with_capacity(items.len());
        for &(id, table) in items {
            if id >= NHG_MAX || table.is_empty() || table.len() > NHG_MAX_BUCKETS {
                return Err(SyncError::Map(format!(
                    "nexthop group {id} with {} buckets",
                    table.len()
                )));
            }
            let mut g = Nhg {
                n_buckets: table.len() as u32,
                _pad: 0,
                bucket: [0; NHG_MAX_BUCKETS],
            };
            g.bucket[..table.len()].copy_from_slice(table);
            keys.push(id);
            vals.push(g);
        }
        update_batch(self.nhg.fd().as_fd(), &keys, &vals)
            .map_err(|e| SyncError::Map(format!("nhg batch update: {e}")))
    }

    /// A second descriptor of the IPv6 trie, for a writer thread that must not borrow `self`.
    pub fn fib6_writer(&self) -> Result<Trie6Writer, SyncError> {
        let fd = self
            .fib6_raw
            .fd()
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| SyncError::Map(format!("fib6: dup: {e}")))?;
        Ok(Trie6Writer { fd })
    }

    /// Reads next-hop `id`.
    pub fn nh_read(&self, id: u32) -> Result<Nh, SyncError> {
        self.nh.get(&id, 0).map_err(open_err("nh"))
    }

    /// Redirect targets present in `tx_port`.
    pub fn tx_ports(&self) -> Result<Vec<u32>, SyncError> {
        self.tx_port
            .keys()
            .collect::<Result<Vec<u32>, _>>()
            .map_err(open_err("tx_port"))
    }

    /// Every prefix of the IPv4 trie with its path-list id.
    pub fn fib4_entries(&self) -> Result<Vec<(Ipv4Net, u32)>, SyncError> {
        let mut v = Vec::new();
        for kv in self.fib4.iter() {
            let (k, val) = kv.map_err(open_err("fib4"))?;
            let net = Ipv4Net::new(Ipv4Addr::from(k.data()), k.prefix_len() as u8)
                .map_err(|e| SyncError::Map(format!("fib4 key: {e}")))?;
            v.push((net, val.pl_id));
        }
        Ok(v)
    }

    /// Every prefix of the IPv6 trie with its path-list id.
    pub fn fib6_entries(&self) -> Result<Vec<(Ipv6Net, u32)>, SyncError> {
        let mut v = Vec::new();
        for kv in self.fib6.iter() {
            let (k, val) = kv.map_err(open_err("fib6"))?;
            let net = Ipv6Net::new(Ipv6Addr::from(k.data()), k.prefix_len() as u8)
                .map_err(|e| SyncError::Map(format!("fib6 key: {e}")))?;
            v.push((net, val.pl_id));
        }
        Ok(v)
    }

    /// The path-list id the dataplane answers for `addr` (DIR-24-8 for IPv4 unless `lpm4`, the trie
    /// for IPv6), [`PL_NO_ROUTE`] when nothing matches.
    pub fn lookup(&self, addr: IpAddr, lpm4: bool) -> u32 {
        match addr {
            IpAddr::V4(a) if !lpm4 => {
                let a = u32::from(a);
                let e = self.fib.dir24_load(a >> 8);
                if e & DIR_ENTRY_TBL8 != 0 {
                    self.fib.dir8_load(e & !DIR_ENTRY_TBL8, (a & 0xff) as u8)
                } else {
                    e
                }
            }
            IpAddr::V4(a) => self
                .fib4
                .get(&Key::new(32, a.octets()), 0)
                .map(|v| v.pl_id)
                .unwrap_or(PL_NO_ROUTE),
            IpAddr::V6(a) => self
                .fib6
                .get(&Key::new(128, a.octets()), 0)
                .map(|v| v.pl_id)
                .unwrap_or(PL_NO_ROUTE),
        }
    }
}

/// The IPv6 trie through its own descriptor: sorted batches of inserts and deletes, one
/// `BPF_MAP_*_BATCH` syscall each (the kernel walks its lock-protected trie per element either way;
/// the batch saves the syscall per prefix, about half of the per-prefix cost measured here).
pub struct Trie6Writer {
    fd: OwnedFd,
}

impl Trie6Writer {
    /// Inserts or replaces `items` (address, length, value).
    pub fn insert(&self, items: &[(u128, u8, FibVal)]) -> Result<(), SyncError> {
        let keys: Vec<Fib6Key> = items.iter().map(|&(a, l, _)| key6(a, l)).collect();
        let vals: Vec<FibVal> = items.iter().map(|x| x.2).collect();
        update_batch(self.fd.as_fd(), &keys, &vals)
            .map_err(|e| SyncError::Map(format!("fib6 batch update: {e}")))
    }
}

fn key6(addr: u128, len: u8) -> Fib6Key {
    Fib6Key {
        prefixlen: len.min(128).into(),
        addr: addr.to_be_bytes(),
    }
}

const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_MAP_UPDATE_BATCH: libc::c_long = 26;

/// `BPF_MAP_UPDATE_BATCH` of `keys` and `vals`, repeated until the kernel has taken every element;
/// one call per element where the kernel has no batch op.
fn update_batch<K, V>(fd: BorrowedFd<'_>, keys: &[K], vals: &[V]) -> std::io::Result<()> {
    // union bpf_attr, batch variant: in_batch, out_batch, keys, values, count, map_fd,
    // elem_flags, flags.
    #[repr(C)]
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
    let mut done = 0usize;
    while done < keys.len() {
        let mut attr = BatchAttr {
            in_batch: 0,
            out_batch: 0,
            keys: keys[done..].as_ptr() as u64,
            values: vals[done..].as_ptr() as u64,
            count: (keys.len() - done) as u32,
            map_fd: fd.as_raw_fd() as u32,
            elem_flags: 0,
            flags: 0,
        };
        // SAFETY: attr points at live key (and value) arrays of `count` elements of the map's
        // key and value sizes (the callers pass the ABI types); the kernel reads them and writes
        // back `count`.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_MAP_UPDATE_BATCH,
                &mut attr as *mut BatchAttr,
                size_of::<BatchAttr>() as u32,
            )
        };
        if rc != 0 {
            let e = std::io::Error::last_os_error();
            // ENOTSUPP (524) / EINVAL: no batch op for this map type on this kernel.
            if done == 0 && matches!(e.raw_os_error(), Some(libc::EINVAL | 524)) {
                return update_each(fd, keys, vals);
            }
            return Err(e);
        }
        if attr.count == 0 {
            return Err(std::io::Error::other(
                "batch operation processed no element",
            ));
        }
        done += attr.count as usize;
    }
    Ok(())
}

/// The per-element fallback of [`update_batch`].
fn update_each<K, V>(fd: BorrowedFd<'_>, keys: &[K], vals: &[V]) -> std::io::Result<()> {
    #[repr(C)]
    struct ElemAttr {
        map_fd: u32,
        _pad: u32,
        key: u64,
        value: u64,
        flags: u64,
    }
    for (i, k) in keys.iter().enumerate() {
        let attr = ElemAttr {
            map_fd: fd.as_raw_fd() as u32,
            _pad: 0,
            key: k as *const K as u64,
            value: &vals[i] as *const V as u64,
            flags: 0,
        };
        // SAFETY: as above, one element.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_MAP_UPDATE_ELEM,
                &attr as *const ElemAttr,
                size_of::<ElemAttr>() as u32,
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// `IpNet` of an IPv4 network, for reports.
pub fn net4(n: Ipv4Net) -> IpNet {
    IpNet::V4(n)
}
