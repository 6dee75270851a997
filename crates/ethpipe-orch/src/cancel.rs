//! Cooperative shutdown: a flag every long task can wait on.

use tokio::sync::watch;

/// Cloneable view of the shutdown flag.
#[derive(Clone)]
pub struct Cancel {
    receiver: watch::Receiver<bool>,
}

/// The side that requests shutdown.
pub struct CancelHandle {
    sender: watch::Sender<bool>,
}

impl Cancel {
    pub fn new() -> (CancelHandle, Cancel) {
        let (sender, receiver) = watch::channel(false);
        (CancelHandle { sender }, Cancel { receiver })
    }

    /// A flag that never fires.
    pub fn never() -> Cancel {
        let (handle, cancel) = Cancel::new();
        // Keep the sender alive forever so `cancelled` never resolves.
        std::mem::forget(handle);
        cancel
    }

    pub fn is_cancelled(&self) -> bool {
        *self.receiver.borrow()
    }

    /// Resolves once shutdown is requested (never, if it never is).
    pub async fn cancelled(&self) {
        let mut receiver = self.receiver.clone();
        if receiver.wait_for(|cancelled| *cancelled).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

impl CancelHandle {
    pub fn cancel(&self) {
        let _ = self.sender.send(true);
    }
}
