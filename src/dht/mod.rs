//! The Mainline DHT (BEP 5): KRPC messages and the routing table (sans-IO); the node
//! that runs them over UDP follows.

pub mod bloom;
pub mod krpc;
pub mod node;
mod routing;
pub mod service;
