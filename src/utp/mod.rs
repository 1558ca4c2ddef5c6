//! uTP (BEP 29), btda's own and sans-IO like the DHT: the packet codec here; the
//! connection state machine and its blocking driver (a [`crate::peer::stream::Transport`]
//! for visits) come next (issue 25).

pub mod conn;
pub mod packet;

pub use conn::{Connection, Settings, State};
pub use packet::{Packet, PacketError, PacketType, looks_like_utp};
