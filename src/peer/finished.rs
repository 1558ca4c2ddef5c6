//! A finished visit, converted once into what the rest of btda needs: the queue's
//! [`VisitResult`] (observations for the peer bookkeeping, the scheduling outcome) and
//! the writer's [`VisitRow`]. Its times come from one clock reading (the start) plus the
//! durations the visit measured, so the observations and the row always agree.

use super::outcome::Outcome;
use super::visit::VisitReport;
use crate::book::VisitResult;
use crate::schedule::Reason;
use crate::store::VisitRow;
use crate::torrent::TorrentId;
use crate::wire::StateKind;

/// Which way the connection went (`visit.direction`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Direction {
    /// btda dialled the peer; the attempt number (1 = first contact) and why.
    Out {
        /// 1 for the first attempt at this peer, then 2, 3, …
        attempt: u32,
        /// Why the peer was due.
        reason: Reason,
    },
    /// The peer connected to btda.
    In,
}

/// One visit, ended.
#[derive(Debug)]
pub(super) struct FinishedVisit {
    /// What the visit found.
    pub report: VisitReport,
    /// The torrent it was for.
    pub torrent: TorrentId,
    /// Which way.
    pub direction: Direction,
    /// When it began, Unix ms (the visit's one clock reading).
    pub started_ms: i64,
}

impl FinishedVisit {
    /// When it ended, Unix ms.
    pub(super) fn end_ms(&self) -> i64 {
        self.started_ms + i64::from(self.report.duration_ms)
    }

    /// What the queue needs: the count at the first piece-state message and at the end
    /// as observations; one of 0 pieces for state `none`; none for state `invalid`.
    pub(super) fn result(&self) -> VisitResult {
        let r = &self.report;
        match (r.outcome, r.pieces) {
            (Outcome::Ok, Some(pieces)) => {
                let end_ms = self.end_ms();
                let client = r.peer_id.map(|id| {
                    let c = crate::wire::client::identify(&id);
                    (c.name, c.version)
                });
                let observations = match (r.state, r.first_state) {
                    (Some(StateKind::Invalid), _) => Vec::new(),
                    (_, Some((first, after_ms))) => vec![
                        ((self.started_ms + i64::from(after_ms)).min(end_ms), first),
                        (end_ms, pieces),
                    ],
                    _ => vec![(end_ms, pieces)],
                };
                VisitResult::Success {
                    observations,
                    with_state: r
                        .state
                        .is_some_and(|s| !matches!(s, StateKind::None | StateKind::Invalid)),
                    client,
                    client_v: r.extensions.as_ref().and_then(|e| e.client.clone()),
                    peer_id: r.peer_id,
                }
            }
            (Outcome::Myself, _) => VisitResult::Myself,
            (o, _) if o.is_local() => VisitResult::Retry,
            _ => VisitResult::Failure {
                connected: r.connect_ms.is_some(),
            },
        }
    }

    /// What the writer stores, for the peer's database id (None before its first
    /// observation).
    pub(super) fn row(&self, peer_id: Option<i64>) -> VisitRow {
        let r = &self.report;
        let (direction, attempt, reason) = match self.direction {
            Direction::Out { attempt, reason } => ("out", Some(attempt), reason),
            Direction::In => ("in", None, Reason::Incoming),
        };
        VisitRow {
            peer_id,
            torrent_id: self.torrent.db_id(),
            started_at: self.started_ms.div_euclid(1000),
            attempt,
            direction,
            outcome: r.outcome.as_str(),
            connect_ms: r.connect_ms,
            handshake_ms: r.handshake_ms,
            duration_ms: Some(r.duration_ms),
            pieces: r.pieces,
            first_pieces: r.first_state.map(|(p, _)| p),
            first_state_ms: r.first_state.map(|(_, ms)| ms),
            state: r.state.map(StateKind::as_str),
            messages: Some(r.messages),
            max_gap_ms: r.max_gap_ms,
            invalid_messages: Some(r.invalid),
            encryption: r.crypto.as_db(),
            fallback: r.fallback,
            transport: r.transport,
            via: Some(r.via),
            reason: Some(reason.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(outcome: Outcome) -> VisitReport {
        VisitReport::bare(outcome)
    }

    fn visit(report: VisitReport) -> FinishedVisit {
        FinishedVisit {
            report,
            torrent: TorrentId::new(2),
            direction: Direction::Out {
                attempt: 3,
                reason: Reason::Predicted,
            },
            started_ms: 1_000_000,
        }
    }

    #[test]
    fn observations_and_row_share_one_clock() {
        let f = visit(VisitReport {
            outcome: Outcome::Ok,
            duration_ms: 1_500,
            pieces: Some(9),
            first_state: Some((4, 200)),
            state: Some(StateKind::Bitfield),
            ..report(Outcome::Ok)
        });
        let VisitResult::Success { observations, .. } = f.result() else {
            panic!("a success");
        };
        assert_eq!(observations, [(1_000_200, 4), (1_001_500, 9)]);
        let row = f.row(Some(7));
        assert_eq!(
            (row.torrent_id, row.started_at, row.attempt, row.direction),
            (3, 1_000, Some(3), "out")
        );
        assert_eq!(row.reason, Some("predicted"));
        assert_eq!((row.first_pieces, row.pieces), (Some(4), Some(9)));
    }

    #[test]
    fn invalid_state_gives_no_observation_and_failures_none() {
        let f = visit(VisitReport {
            outcome: Outcome::Ok,
            pieces: Some(0),
            state: Some(StateKind::Invalid),
            ..report(Outcome::Ok)
        });
        assert!(
            matches!(f.result(), VisitResult::Success { observations, .. } if observations.is_empty())
        );
        let refused = visit(report(Outcome::Refused));
        assert_eq!(refused.result(), VisitResult::Failure { connected: false });
        assert_eq!(refused.row(None).outcome, "refused");
        // The connection was made, the handshake timed out: a live peer.
        let timed_out = visit(VisitReport {
            connect_ms: Some(12),
            ..report(Outcome::HandshakeTimeout)
        });
        assert_eq!(timed_out.result(), VisitResult::Failure { connected: true });
    }
}
