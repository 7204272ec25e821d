//! A connection and its watchdog in one task, without the watchdog's cost on every wake.
//!
//! A `select!` over the connection and the watchdog's events (its timer, the gate's stop
//! signal, a revocation) polls every branch each time the task wakes, and the connection
//! wakes the task several times per request: about a thousand instructions per request
//! went to polling a timer that had not fired. Here the events get a waker of their own,
//! which marks them woken before waking the task, and they are polled only then.

use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Wake, Waker};

/// The events' waker: marks them woken, then wakes the task.
#[derive(Debug, Default)]
pub(crate) struct SideWake {
    woken: AtomicBool,
    /// The task's waker, kept (never taken out by a wake: then a wake between a poll
    /// that found the mark and the next one would leave nothing registered, and the
    /// watchdog asleep for good). Locked only by the events' wakes — the watchdog's
    /// tick, a stop, a revocation — and when the task's waker changes, never per request.
    task: Mutex<Option<Waker>>,
}

impl SideWake {
    fn task(&self) -> std::sync::MutexGuard<'_, Option<Waker>> {
        // Nothing panics while holding it; the waker inside is whole either way.
        self.task.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Wake for SideWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        if let Some(task) = &*self.task() {
            task.wake_by_ref();
        }
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
    // The task's waker as last stored in `wake`, to see without a lock when it changes.
    let mut task: Option<Waker> = None;
    wake.woken.store(true, Ordering::Relaxed);
    poll_fn(|cx| {
        if main.as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        let moved = !task.as_ref().is_some_and(|t| t.will_wake(cx.waker()));
        if moved {
            *wake.task() = Some(cx.waker().clone());
            task = Some(cx.waker().clone());
        }
        let woken = wake.woken.load(Ordering::Relaxed) && wake.woken.swap(false, Ordering::Acquire);
        if !(woken || moved) {
            return Poll::Pending;
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

    /// Counts the wakes of the task.
    struct Task(AtomicUsize);

    impl Wake for Task {
        fn wake(self: Arc<Self>) {
            self.wake_by_ref();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Every wake of the side wakes the task, whatever came before: a waker taken out by
    /// one wake (as `AtomicWaker::wake` does) and not registered again before the next
    /// poll would leave the watchdog asleep for good — no timeouts, no revocation.
    #[test]
    fn every_side_wake_reaches_the_task() {
        let wake = Arc::new(SideWake::default());
        let task = Arc::new(Task(AtomicUsize::new(0)));
        let waker = Waker::from(task.clone());
        let mut cx = Context::from_waker(&waker);
        let main = pin!(std::future::pending::<()>());
        let mut raced = pin!(race(&wake, main, std::future::pending::<()>()));
        assert!(raced.as_mut().poll(&mut cx).is_pending());
        for n in 1..=3 {
            wake.wake_by_ref();
            assert_eq!(task.0.load(Ordering::Relaxed), n);
        }
        // Polled after the wakes, and woken again.
        assert!(raced.as_mut().poll(&mut cx).is_pending());
        wake.wake_by_ref();
        assert_eq!(task.0.load(Ordering::Relaxed), 4);
    }

    #[tokio::test]
    async fn main_ending_ends_the_race() {
        let wake = Arc::new(SideWake::default());
        let main = pin!(tokio::time::sleep(Duration::from_millis(10)));
        let side = std::future::pending::<()>();
        assert_eq!(race(&wake, main, side).await, None);
    }
}
