//! uTP (BEP 29), btda's own and sans-IO like the DHT: the packet codec, one
//! connection's state machine, and the blocking driver that owns the UDP socket and
//! hands workers a [`crate::peer::stream::Transport`]. Not yet used by runs: choosing
//! uTP for a visit, sharing the DHT's port and hole punching are the rest of issue 25.

pub mod conn;
pub mod packet;
pub mod socket;

pub use conn::{Connection, Settings, State};
pub use packet::{Packet, PacketError, PacketType, looks_like_utp};
pub use socket::{Datagram, KrpcPort, UtpCloser, UtpSocket, UtpStream};
