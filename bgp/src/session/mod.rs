//! The tokio driver: one task per peer performing the FSM's outputs over TCP.

pub mod listener;
pub mod socket;
