//! Cooperative stopping: a flag every long task can wait on, with the reason
//! (shutdown, a run's timeout) so the ledger can say why a run stopped.

use tokio::sync::watch;

/// Cloneable view of the stop flag.
#[derive(Clone)]
pub struct Cancel {
    receiver: watch::Receiver<Option<String>>,
}

/// The side that asks to stop.
pub struct CancelHandle {
    sender: watch::Sender<Option<String>>,
}

impl Cancel {
    pub fn new() -> (CancelHandle, Cancel) {
        let (sender, receiver) = watch::channel(None);
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
        self.receiver.borrow().is_some()
    }

    pub fn reason(&self) -> Option<String> {
        self.receiver.borrow().clone()
    }

    /// Resolves once stopping is requested (never, if it never is).
    pub async fn cancelled(&self) {
        let mut receiver = self.receiver.clone();
        if receiver.wait_for(Option::is_some).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// A child flag that fires when this one does, or when its own handle asks.
    pub fn child(&self) -> (CancelHandle, Cancel) {
        let (handle, child) = Cancel::new();
        let parent = self.clone();
        let sender = handle.sender.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = parent.cancelled() => { let _ = sender.send(parent.reason()); }
                () = sender.closed() => {}
            }
        });
        (handle, child)
    }
}

impl CancelHandle {
    pub fn cancel(&self, reason: impl Into<String>) {
        let _ = self.sender.send(Some(reason.into()));
    }
}
