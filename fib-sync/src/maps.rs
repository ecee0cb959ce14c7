//! The map handles fib-sync uses: [`FibMaps`] (mmapped arrays, typed writes) plus read access that
//! `FibMaps` does not offer (iterating the LPM tries, reading next-hops and tx ports back), opened
//! from the same pins.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use aya::maps::lpm_trie::{Key, LpmTrie};
use aya::maps::{Array, DevMapHash, Map, MapData};
use fib_ebpf::FibMaps;
use fib_ebpf::abi::{DIR_ENTRY_TBL8, FibVal, NHG_MAX, NHG_MAX_BUCKETS, Nh, Nhg, PL_NO_ROUTE};
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
        })
    }

    /// Writes several nexthop groups with one BPF_MAP_UPDATE_BATCH (ids nothing points at yet): a
    /// failover that needs hundreds of new groups costs one syscall instead of hundreds.
    pub fn nhg_write_batch(&self, items: &[(u32, &[u32])]) -> Result<(), SyncError> {
        use std::os::fd::{AsFd, AsRawFd};
        const BPF_MAP_UPDATE_BATCH: libc::c_long = 26;
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
        let mut done = 0usize;
        while done < keys.len() {
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
            let mut attr = BatchAttr {
                in_batch: 0,
                out_batch: 0,
                keys: keys[done..].as_ptr() as u64,
                values: vals[done..].as_ptr() as u64,
                count: (keys.len() - done) as u32,
                map_fd: self.nhg.fd().as_fd().as_raw_fd() as u32,
                elem_flags: 0,
                flags: 0,
            };
            // SAFETY: attr points at live key/value arrays of `count` elements of the map's
            // key and value sizes; the kernel reads them and writes back `count`.
            let rc = unsafe {
                libc::syscall(
                    libc::SYS_bpf,
                    BPF_MAP_UPDATE_BATCH,
                    &mut attr as *mut BatchAttr,
                    size_of::<BatchAttr>() as u32,
                )
            };
            if rc != 0 {
                return Err(SyncError::Map(format!(
                    "nhg batch update: {}",
                    std::io::Error::last_os_error()
                )));
            }
            done += attr.count as usize;
            if attr.count == 0 {
                return Err(SyncError::Map("nhg batch update wrote nothing".into()));
            }
        }
        Ok(())
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

/// `IpNet` of an IPv4 network, for reports.
pub fn net4(n: Ipv4Net) -> IpNet {
    IpNet::V4(n)
}
