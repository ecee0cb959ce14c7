//! What the RIB benchmarks share (a directory module, so cargo does not take it for a bench target).

use std::net::Ipv4Addr;

use ribd::config::{Loaded, Neighbor};
use ribd::inbound::Inbound;
use ribd::rib::Rib;
use ribd::rib::decision::{PeerInfo, PeerKind};

/// Registers the configured eBGP peer `nb` in `rib` and builds its inbound state with its import
/// chain from `loaded`, as the daemon does for a configured peer.
pub fn inbound_for(rib: &mut Rib, loaded: &Loaded, nb: &Neighbor) -> Inbound {
    let id = rib
        .add_peer(PeerInfo {
            name: nb.name.clone(),
            addr: nb.address,
            router_id: Ipv4Addr::new(10, 0, 0, 2),
            remote_as: nb.remote_as,
            local_as: nb.local_as,
            kind: PeerKind::Ebgp,
            confed: false,
        })
        .expect("a free peer slot");
    let import = ribd::import::ImportCtx {
        local_as: nb.local_as,
        peer_as: nb.remote_as,
        peer_addr: nb.address,
        local_addr: nb.local_address,
        router_id: loaded.config.router_id,
        ebgp: true,
        allowas_in: nb.allowas_in,
        policy: nb
            .import
            .as_ref()
            .map(|n| loaded.policies.chain(n).expect("policy chain")),
    };
    Inbound::new(id, import)
}
