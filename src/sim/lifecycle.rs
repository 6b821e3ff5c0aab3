//! The lifecycle task: carries out the timed steps of each new Item's first fetch of
//! transactions (initial update, then historical update; see `state::Phase`) when they fall
//! due. Operations on the state queue `Timer`s; `Sim::with_state` hands them here. The steps
//! themselves, and their webhooks, are `SimState::reach_phase`.

use super::state::Timer;
use super::Sim;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub(crate) async fn run(
    sim: Sim,
    mut rx: mpsc::UnboundedReceiver<Timer>,
    cancel: CancellationToken,
) {
    // Ordered by due time; the sequence number keeps equal times in arrival order.
    let mut due: BinaryHeap<Reverse<(std::time::Instant, u64)>> = BinaryHeap::new();
    let mut timers = std::collections::HashMap::new();
    let mut sequence = 0u64;
    loop {
        let next = due.peek().map(|Reverse((at, _))| *at);
        let sleep = async {
            match next {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = cancel.cancelled() => return,
            timer = rx.recv() => match timer {
                Some(timer) => {
                    sequence += 1;
                    due.push(Reverse((timer.due, sequence)));
                    timers.insert(sequence, timer);
                }
                None => return,
            },
            _ = sleep => {
                let Some(Reverse((_, id))) = due.pop() else { continue };
                if let Some(timer) = timers.remove(&id) {
                    sim.with_state(|s| s.reach_phase(&timer.item_id, timer.phase));
                }
            }
        }
    }
}
