//! The consumers a worker process runs (`plaidhook worker`, `plaidhook all`).
//!
//! Each consumer is a `broker::consumer::run` over one queue with its own handler; they share
//! the application's broker connection and stop, after finishing in-flight messages, when the
//! shutdown token is cancelled.

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::app::AppState;

/// Starts every consumer on `tasks`.
pub fn spawn_consumers(state: &AppState, tasks: &TaskTracker, shutdown: &CancellationToken) {
    crate::sync::worker::spawn(state, tasks, shutdown);
    tasks.spawn(crate::items::consumer::run(state.clone(), shutdown.clone()));
}
