//! A private current-thread tokio runtime driven by its own thread, so that a sync
//! [`Runtime`](super::Runtime) can use an async client (the docker runtime's bollard, the
//! kubernetes runtime's kube-rs).
//!
//! A call spawns its future on the private runtime and waits for the answer on a std channel,
//! so the caller may be any thread, including `spawn_blocking` threads of another tokio
//! runtime (calling from inside an async task works but blocks that task's worker, like any
//! blocking call). Dropping the [`Bridge`] ends the thread and every task still on it.

use std::future::Future;
use std::sync::mpsc;
use std::time::Duration;

/// Why a bridged call gave no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Stalled {
    /// No answer within the limit.
    Timeout(Duration),
    /// The runtime's thread is gone.
    Stopped,
}

/// The private runtime (see the module documentation).
pub(crate) struct Bridge {
    handle: tokio::runtime::Handle,
    /// Dropping it ends the runtime's thread.
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl std::fmt::Debug for Bridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bridge").finish_non_exhaustive()
    }
}

impl Bridge {
    /// Starts the runtime on a thread called `thread_name`.
    pub(crate) fn start(thread_name: &str) -> std::io::Result<Bridge> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let handle = rt.handle().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name(thread_name.into())
            .spawn(move || {
                // Returns when the sender is dropped; dropping `rt` then aborts the tasks.
                let _ = rt.block_on(stopped);
            })?;
        Ok(Bridge {
            handle,
            _stop: stop,
        })
    }

    /// Runs `f` with the runtime entered (for constructors that spawn tasks, such as
    /// `kube::Client::new`).
    #[cfg_attr(not(feature = "kubernetes"), allow(dead_code))]
    pub(crate) fn enter<T>(&self, f: impl FnOnce() -> T) -> T {
        let _guard = self.handle.enter();
        f()
    }

    /// Spawns a background task (a timer) on the runtime; it ends at the latest with the
    /// [`Bridge`].
    #[cfg_attr(not(feature = "docker"), allow(dead_code))]
    pub(crate) fn spawn<F>(&self, fut: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle.spawn(fut)
    }

    /// Runs `fut` on the runtime and waits for its output, at most `limit` (the future is
    /// dropped when the limit passes).
    pub(crate) fn call<T, F>(&self, limit: Duration, fut: F) -> Result<T, Stalled>
    where
        T: Send + 'static,
        F: Future<Output = T> + Send + 'static,
    {
        let (tx, rx) = mpsc::sync_channel(1);
        self.handle.spawn(async move {
            let _ = tx.send(tokio::time::timeout(limit, fut).await);
        });
        match rx.recv_timeout(limit + Duration::from_secs(5)) {
            Ok(Ok(out)) => Ok(out),
            Ok(Err(_)) | Err(mpsc::RecvTimeoutError::Timeout) => Err(Stalled::Timeout(limit)),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(Stalled::Stopped),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_answers_and_times_out() {
        let b = Bridge::start("bridge-test").expect("start");
        assert_eq!(b.call(Duration::from_secs(5), async { 7 }), Ok(7));
        let slow = b.call(Duration::from_millis(50), async {
            tokio::time::sleep(Duration::from_secs(10)).await;
        });
        assert_eq!(slow, Err(Stalled::Timeout(Duration::from_millis(50))));
    }
}
