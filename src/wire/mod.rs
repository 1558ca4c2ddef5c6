//! The peer wire protocol, sans-IO: every message is built and parsed from byte slices,
//! with no socket in sight, so it is tested with byte fixtures. The blocking drivers in
//! `crate::peer` own the sockets and timeouts.

pub mod client;
pub mod compact;
pub mod extended;
pub mod handshake;
pub mod holepunch;
mod message;
pub mod metadata;
pub mod mse;
mod pieces;

pub use handshake::Handshake;
pub use message::{Message, MessageDecoder, WireError};
pub use pieces::{PieceState, StateKind};
