//! A connection and its watchdog in one task, without the watchdog's cost on every wake.
//!
//! A `select!` over the connection and the watchdog's events (its timer, the gate's stop
//! signal, a revocation) polls every branch each time the task wakes, and the connection
//! wakes the task several times per request: about a thousand instructions per request
//! went to polling a timer that had not fired. Here the events get a waker of their own,
//! which marks them woken before waking the task, and they are polled only then.

use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use atomic_waker::AtomicWaker;

/// The events' waker: marks them woken, then wakes the task.
#[derive(Debug, Default)]
pub(crate) struct SideWake {
    woken: AtomicBool,
    task: AtomicWaker,
}

impl Wake for SideWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.task.wake();
    }
}

/// Polls `main` on every wake and `side` only on its first poll and after one of its own
/// wakers fired. `None` when `main` ended first, else what `side` gave.
pub(crate) async fn race<S: Future>(
    wake: &Arc<SideWake>,
    mut main: Pin<&mut impl Future>,
    side: S,
) -> Option<S::Output> {
    let mut side = pin!(side);
    let side_waker = Waker::from(wake.clone());
    // The task's waker as last registered. `AtomicWaker::wake` takes it, so it is
    // registered again after every side wake, and whenever the task's waker changes.
    let mut task: Option<Waker> = None;
    wake.woken.store(true, Ordering::Relaxed);
    poll_fn(|cx| {
        if main.as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        let moved = !task.as_ref().is_some_and(|t| t.will_wake(cx.waker()));
        let woken = wake.woken.load(Ordering::Relaxed) && wake.woken.swap(false, Ordering::Acquire);
        if !(woken || moved) {
            return Poll::Pending;
        }
        wake.task.register(cx.waker());
        if moved {
            task = Some(cx.waker().clone());
        }
        side.as_mut()
            .poll(&mut Context::from_waker(&side_waker))
            .map(Some)
    })
    .await
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    use super::*;

    /// A future that counts its polls and never ends.
    struct Counted<'a>(&'a AtomicUsize);

    impl Future for Counted<'_> {
        type Output = ();
        fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
            self.0.fetch_add(1, Ordering::Relaxed);
            Poll::Pending
        }
    }

    /// In a spawned task, as each connection is: a task's waker stays the same from poll
    /// to poll (`block_on`'s need not, and then the side is polled on every wake).
    #[tokio::test]
    async fn the_side_is_polled_only_when_its_own_waker_fired() {
        let (main_polls, side_polls) = tokio::spawn(async {
            let wake = Arc::new(SideWake::default());
            let (main_polls, side_polls) = (AtomicUsize::new(0), AtomicUsize::new(0));
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
            let main = pin!(async {
                // Each message wakes the task, not the side.
                while rx.recv().await.is_some() {
                    main_polls.fetch_add(1, Ordering::Relaxed);
                }
            });
            let side = async {
                let mut polls = pin!(Counted(&side_polls));
                tokio::select! {
                    biased;
                    () = polls.as_mut() => unreachable!(),
                    () = tokio::time::sleep(Duration::from_millis(200)) => 7,
                }
            };
            let sender = tokio::spawn(async move {
                for _ in 0..100 {
                    tx.send(()).unwrap();
                    tokio::task::yield_now().await;
                }
                tx
            });
            assert_eq!(race(&wake, main, side).await, Some(7));
            drop(sender.await.unwrap());
            let polls = |n: &AtomicUsize| n.load(Ordering::Relaxed);
            (polls(&main_polls), polls(&side_polls))
        })
        .await
        .unwrap();
        assert_eq!(main_polls, 100);
        // The first poll, and the timer's wake.
        assert_eq!(side_polls, 2);
    }

    #[tokio::test]
    async fn main_ending_ends_the_race() {
        let wake = Arc::new(SideWake::default());
        let main = pin!(tokio::time::sleep(Duration::from_millis(10)));
        let side = std::future::pending::<()>();
        assert_eq!(race(&wake, main, side).await, None);
    }
}
