//! Shutdown as a value every task can wait on: a `watch` channel that turns `true` on the first
//! SIGTERM. A leaf: it imports nothing of the crate.

use tokio::sync::watch;

/// Resolves once `rx` holds `true` (or its sender is gone).
pub(crate) async fn until_true(rx: &mut watch::Receiver<bool>) {
    loop {
        if *rx.borrow_and_update() {
            return;
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}
