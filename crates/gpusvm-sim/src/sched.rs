//! A deterministic scheduler for concurrent scenarios.
//!
//! Concurrent scenarios (a GPU write racing an `munmap`, a fault racing an invalidation, …) must
//! interleave *deterministically*: the same seed must always produce the same interleaving, so
//! that every failure reproduces. The code under test is ordinary synchronous Rust (including the
//! `no_std` core calling backend traits), so the simulator cannot use async tasks.
//!
//! # Design: real threads, one baton
//!
//! [`run_concurrent`] runs each task as a *simulated thread*: a real OS thread (spawned with
//! [`std::thread::scope`], so tasks may borrow), but a baton guarantees that exactly one of them
//! runs at any time. The baton is only handed over at *scheduling points* — [`yield_now`] and the
//! re-checks of [`wait_until`] — where the running thread asks the scheduler which thread runs
//! next. The scheduler draws that decision from a PRNG (SplitMix64) seeded with the run's seed.
//! Because only one thread runs between two scheduling points, and every decision depends only on
//! the PRNG and on the scheduler's own bookkeeping (never on time, thread ids or hash order), a
//! run is a pure function of its seed.
//!
//! The scheduler is a [`Mutex`]-protected state plus one [`Condvar`] per thread. The state holds
//! the PRNG, one status per thread (*runnable*, *waiting* inside [`wait_until`], or *done*) and
//! the index of the thread that holds the baton. Handing the baton over sets that index, wakes
//! the new holder's condition variable and blocks the caller on its own until the index names it
//! again. A thread-local holds, for simulated
//! threads only, a handle to the scheduler and the thread's index; everywhere else (the common,
//! single-threaded case) the scheduling points are a thread-local check and nothing more.
//!
//! # Scheduling decisions
//!
//! - **Start.** All threads are spawned and wait for the baton; the PRNG picks the first.
//! - **[`yield_now`].** The caller picks uniformly among the live threads, itself included
//!   (staying is allowed), and switches if the pick is another thread.
//! - **[`wait_until`].** The caller checks its condition; while it is false, the caller is
//!   *waiting* and passes the baton on. When it is picked again it re-checks.
//! - **End.** A finished (or panicked) thread is marked done and the PRNG picks the next holder
//!   among the live threads.
//!
//! # Progress, deadlock and livelock
//!
//! A waiting thread's condition can only become true once some thread has run code other than a
//! condition check. The scheduler therefore tracks, per waiting thread, whether it is *stale*:
//! whether it has already re-checked its condition, unsuccessfully, since the last such progress.
//! Every decision made by a runnable thread (and every thread that finishes, or leaves
//! [`wait_until`]) counts as progress and makes all waiters fresh again. Picks are drawn among the
//! threads that may be able to run — runnable threads and fresh waiters — so no waiter re-checks
//! twice without something having happened in between. If after a failed re-check there is no
//! such thread left, every live thread is waiting and a full round of re-checks made no progress:
//! that is a **deadlock**, and the thread that detects it panics with a message that names it
//! and lists where each thread waits. A global cap of [`STEP_LIMIT`] scheduling decisions per
//! run turns any remaining spin (a **livelock**) into a panic as well.
//!
//! # Panics
//!
//! Every simulated thread runs its task under [`catch_unwind`](std::panic::catch_unwind). The
//! first real panic *poisons* the run: from then on, any other thread that gets the baton at a
//! scheduling point (or at its start) unwinds with a private "sibling panicked" marker, which is
//! not reported as a failure. Unwinding threads keep the scheduling protocol, so destructors that
//! release simulated locks run one at a time as usual. Once all threads are done and joined,
//! [`run_concurrent`] resumes the first real panic on the caller's thread. Nothing in this
//! protocol can leave a thread blocked forever: the baton always passes to a live thread, and a
//! deadlock is turned into a panic.
//!
//! # Rules for code that runs in a simulation
//!
//! - Never hold a *real* lock ([`std::sync::Mutex`], …) across a scheduling point: another
//!   simulated thread blocking on it would block the whole run. Locks that must be held across
//!   scheduling points are [`SimMutex`] and [`SimRwLock`].
//! - Conditions passed to [`wait_until`] should be cheap checks of simulated state with no side
//!   effects other than, on success, taking what they waited for (as a lock's try-acquire does).
//! - Nested [`run_concurrent`] calls are not supported.

use std::cell::RefCell;
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::panic::{self, AssertUnwindSafe, Location};
use std::process;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, TryLockError};
use std::thread;

/// The maximum number of scheduling decisions in one [`run_concurrent`] call; exceeding it
/// panics with a "livelock" message.
pub const STEP_LIMIT: u64 = 50_000_000;

/// Runs each task as a simulated thread, interleaved deterministically by `seed`, and returns the
/// results in task order.
///
/// The tasks run on scoped threads, so they may borrow from the caller. Exactly one of them runs
/// at a time; control passes between them only at scheduling points ([`yield_now`],
/// [`wait_until`]). The same seed and the same tasks always produce the same interleaving.
///
/// # Panics
///
/// If a task panics, the other threads are stopped at their next scheduling point, all threads
/// are joined, and the first panic is resumed on the caller's thread. A deadlock or livelock
/// among the tasks panics the same way (see the [module documentation](self)). Panics if called
/// from inside a simulated thread: nested simulations are not supported.
pub fn run_concurrent<'a, R: Send>(
    seed: u64,
    tasks: Vec<Box<dyn FnOnce() -> R + Send + 'a>>,
) -> Vec<R> {
    run_with_step_limit(seed, STEP_LIMIT, tasks)
}

/// A scheduling point.
///
/// Inside [`run_concurrent`] with more than one live thread, this may switch to another
/// simulated thread; the caller resumes when the scheduler picks it again. Anywhere else it is a
/// no-op that costs one thread-local check.
///
/// # Panics
///
/// Inside a simulation whose run was poisoned by a panic in another thread, this unwinds (with a
/// marker that [`run_concurrent`] does not report); it panics with "livelock" if the run exceeds
/// [`STEP_LIMIT`] scheduling decisions.
#[inline]
pub fn yield_now() {
    if let Some(ctx) = current_context() {
        ctx.scheduler.yield_point(ctx.index);
    }
}

/// Whether the current thread is a simulated thread of a running [`run_concurrent`].
#[inline]
pub fn in_simulation() -> bool {
    CONTEXT.try_with(|c| c.borrow().is_some()).unwrap_or(false)
}

/// Blocks the calling simulated thread until `cond()` is true, yielding to other simulated
/// threads between checks. Returns at once, without a scheduling point, if `cond()` is already
/// true.
///
/// # Panics
///
/// - Outside a simulation, if `cond()` is false: single-threaded code can never be unblocked,
///   so this panics with a "would block forever outside a simulation" message instead of
///   hanging.
/// - Inside a simulation, with a message containing "deadlock", if every live simulated thread
///   is waiting in `wait_until` and a full round of re-checks made no progress.
/// - As [`yield_now`] does, for a poisoned run or a livelock.
#[track_caller]
pub fn wait_until(mut cond: impl FnMut() -> bool) {
    let Some(ctx) = current_context() else {
        if cond() {
            return;
        }
        panic!(
            "sched::wait_until at {}: the condition is false and would block forever outside a \
             simulation (no other simulated thread can ever make it true)",
            Location::caller()
        );
    };
    if cond() {
        return;
    }
    let _wait = WaitScope::enter(&ctx, Location::caller());
    loop {
        ctx.scheduler.wait_failed(ctx.index);
        if cond() {
            return;
        }
    }
}

/// Runs `tasks` like [`run_concurrent`], with a custom cap on scheduling decisions.
fn run_with_step_limit<'a, R: Send>(
    seed: u64,
    step_limit: u64,
    tasks: Vec<Box<dyn FnOnce() -> R + Send + 'a>>,
) -> Vec<R> {
    assert!(
        !in_simulation(),
        "sched::run_concurrent called from inside a simulated thread: nested simulations are not \
         supported"
    );
    if tasks.is_empty() {
        return Vec::new();
    }
    let scheduler = Arc::new(Scheduler::new(seed, tasks.len(), step_limit));
    let outcomes: Vec<thread::Result<R>> = thread::scope(|scope| {
        let mut handles = Vec::with_capacity(tasks.len());
        for (index, task) in tasks.into_iter().enumerate() {
            let sched = Arc::clone(&scheduler);
            let spawned = thread::Builder::new()
                .name(format!("sim-{index}"))
                .spawn_scoped(scope, move || run_thread(sched, index, task));
            match spawned {
                Ok(handle) => handles.push(handle),
                Err(err) => {
                    // No thread has the baton yet: release the spawned ones before unwinding
                    // (the scope joins them).
                    scheduler.cancel();
                    panic!("sched::run_concurrent: cannot spawn simulated thread {index}: {err}");
                }
            }
        }
        scheduler.start();
        handles
            .into_iter()
            .map(|handle| handle.join().unwrap_or_else(Err))
            .collect()
    });
    let first_panic = scheduler.lock_state().first_panic;
    if let Some(index) = first_panic {
        let mut outcomes = outcomes;
        if let Err(payload) = outcomes.swap_remove(index) {
            panic::resume_unwind(payload);
        }
        unreachable!("sched: the thread recorded as panicking returned normally");
    }
    outcomes
        .into_iter()
        .map(|outcome| outcome.unwrap_or_else(|payload| panic::resume_unwind(payload)))
        .collect()
}

/// The body of one simulated thread: waits for the baton, runs the task, hands the baton on.
fn run_thread<R>(
    scheduler: Arc<Scheduler>,
    index: usize,
    task: Box<dyn FnOnce() -> R + Send + '_>,
) -> thread::Result<R> {
    set_context(Some(ThreadContext {
        scheduler: Arc::clone(&scheduler),
        index,
    }));
    if !scheduler.wait_for_start(index) {
        // The run was cancelled before it started. Drop the task outside the simulation, so that
        // a destructor's scheduling point cannot block on a baton that never comes.
        set_context(None);
        drop(task);
        return Err(Box::new(SiblingPanicked));
    }
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
        drop(scheduler.checked_state());
        task()
    }));
    set_context(None);
    let real_panic = matches!(&outcome, Err(payload) if !payload.is::<SiblingPanicked>());
    scheduler.finish(index, real_panic);
    outcome
}

/// The unwind payload of a simulated thread stopped because another one panicked.
struct SiblingPanicked;

/// What a simulated thread knows about itself.
#[derive(Clone)]
struct ThreadContext {
    scheduler: Arc<Scheduler>,
    index: usize,
}

thread_local! {
    /// Set for the lifetime of a simulated thread's task, `None` everywhere else.
    static CONTEXT: RefCell<Option<ThreadContext>> = const { RefCell::new(None) };
}

/// The current simulated thread's context, if any.
#[inline]
fn current_context() -> Option<ThreadContext> {
    CONTEXT.try_with(|c| c.borrow().clone()).ok().flatten()
}

fn set_context(context: Option<ThreadContext>) {
    CONTEXT.with(|c| *c.borrow_mut() = context);
}

/// Marks the current thread as waiting for the lifetime of a [`wait_until`] loop, and restores
/// it on exit, including on unwind.
struct WaitScope<'a> {
    ctx: &'a ThreadContext,
    /// Whether the thread was already waiting (a `wait_until` inside a condition).
    nested: bool,
}

impl<'a> WaitScope<'a> {
    fn enter(ctx: &'a ThreadContext, at: &'static Location<'static>) -> Self {
        let nested = ctx.scheduler.enter_wait(ctx.index, at);
        Self { ctx, nested }
    }
}

impl Drop for WaitScope<'_> {
    fn drop(&mut self) {
        if !self.nested {
            self.ctx.scheduler.exit_wait(self.ctx.index);
        }
    }
}

/// The SplitMix64 generator: tiny, fast, and good enough to choose threads.
struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`), by multiply-shift (Lemire's reduction).
    fn below(&mut self, n: usize) -> usize {
        let wide = u128::from(self.next_u64()) * n as u128;
        // The high word of a product of a u64 with n is less than n, which fits in usize.
        (wide >> 64) as usize
    }
}

/// The scheduling status of one simulated thread.
#[derive(Clone, Copy, Debug)]
enum Status {
    /// Running or ready to run.
    Runnable,
    /// Inside [`wait_until`] (called at `at`) with a false condition. `stale` is set once the
    /// condition has been re-checked, unsuccessfully, since the last progress.
    Waiting {
        at: &'static Location<'static>,
        stale: bool,
    },
    /// The task returned or unwound.
    Done,
}

impl Status {
    /// Whether picking this thread may let it make progress.
    fn is_candidate(self) -> bool {
        match self {
            Status::Runnable => true,
            Status::Waiting { stale, .. } => !stale,
            Status::Done => false,
        }
    }
}

/// The scheduler's state, protected by [`Scheduler::state`].
struct State {
    rng: SplitMix64,
    threads: Vec<Status>,
    /// The thread that holds the baton; `None` before the start and after the end.
    current: Option<usize>,
    /// Scheduling decisions so far (for the livelock cap).
    steps: u64,
    /// Set by the first real panic: other threads unwind at their next scheduling point.
    poisoned: bool,
    /// The thread whose panic is propagated.
    first_panic: Option<usize>,
    /// The run was abandoned before it started (a thread could not be spawned).
    cancelled: bool,
}

impl State {
    /// Something other than a failed condition check happened: every waiter must re-check.
    fn mark_progress(&mut self) {
        for status in &mut self.threads {
            if let Status::Waiting { stale, .. } = status {
                *stale = false;
            }
        }
    }

    /// Picks, by the PRNG, one of the threads that may make progress.
    fn pick(&mut self) -> Option<usize> {
        let candidates = self.threads.iter().filter(|s| s.is_candidate()).count();
        if candidates == 0 {
            return None;
        }
        let k = self.rng.below(candidates);
        self.threads
            .iter()
            .enumerate()
            .filter(|(_, s)| s.is_candidate())
            .nth(k)
            .map(|(index, _)| index)
    }

    fn deadlock_message(&self, seed: u64) -> String {
        let live = self
            .threads
            .iter()
            .filter(|s| !matches!(s, Status::Done))
            .count();
        let threads: Vec<String> = self
            .threads
            .iter()
            .enumerate()
            .map(|(index, status)| match status {
                Status::Waiting { at, .. } => format!("sim-{index} waits at {at}"),
                Status::Runnable => format!("sim-{index} is runnable"),
                Status::Done => format!("sim-{index} has finished"),
            })
            .collect();
        format!(
            "deadlock in simulation (seed {seed}): all {live} live simulated threads are blocked \
             in sched::wait_until and a full round of re-checks made no progress; {}",
            threads.join("; ")
        )
    }
}

/// The shared scheduler of one [`run_concurrent`] call.
struct Scheduler {
    state: Mutex<State>,
    /// One per thread, signalled when that thread gets the baton (or, before the start, when the
    /// run is cancelled).
    wakeups: Vec<Condvar>,
    seed: u64,
    step_limit: u64,
}

impl Scheduler {
    fn new(seed: u64, threads: usize, step_limit: u64) -> Self {
        Self {
            state: Mutex::new(State {
                rng: SplitMix64::new(seed),
                threads: vec![Status::Runnable; threads],
                current: None,
                steps: 0,
                poisoned: false,
                first_panic: None,
                cancelled: false,
            }),
            wakeups: (0..threads).map(|_| Condvar::new()).collect(),
            seed,
            step_limit,
        }
    }

    /// Locks the state. The state is kept consistent at every panic site, so a poisoned mutex
    /// (which cannot normally happen) is simply used.
    fn lock_state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Locks the state, unwinding with the sibling marker if the run is poisoned and the caller
    /// is not already unwinding.
    fn checked_state(&self) -> MutexGuard<'_, State> {
        Self::bail_if_poisoned(self.lock_state())
    }

    fn bail_if_poisoned(state: MutexGuard<'_, State>) -> MutexGuard<'_, State> {
        if state.poisoned && !thread::panicking() {
            drop(state);
            panic::resume_unwind(Box::new(SiblingPanicked));
        }
        state
    }

    /// Sets the baton holder and wakes it.
    fn pass_to(&self, state: &mut State, next: Option<usize>) {
        state.current = next;
        if let Some(next) = next {
            self.wakeups[next].notify_one();
        }
    }

    /// Blocks thread `me` until `until(state)` holds.
    fn sleep<'s>(
        &'s self,
        mut state: MutexGuard<'s, State>,
        me: usize,
        until: impl Fn(&State) -> bool,
    ) -> MutexGuard<'s, State> {
        while !until(&state) {
            state = self.wakeups[me]
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        state
    }

    /// Gives the baton to the first thread.
    fn start(&self) {
        let mut state = self.lock_state();
        let first = state.pick();
        self.pass_to(&mut state, first);
    }

    /// Releases the threads waiting for a start that will not come.
    fn cancel(&self) {
        self.lock_state().cancelled = true;
        for wakeup in &self.wakeups {
            wakeup.notify_one();
        }
    }

    /// Blocks until thread `me` gets the baton for the first time; `false` if the run was
    /// cancelled instead.
    fn wait_for_start(&self, me: usize) -> bool {
        let state = self.sleep(self.lock_state(), me, |s| {
            s.current == Some(me) || s.cancelled
        });
        state.current == Some(me)
    }

    /// Passes the baton from `me` to `next` and blocks until `me` gets it back.
    fn hand_over<'s>(
        &'s self,
        mut state: MutexGuard<'s, State>,
        me: usize,
        next: usize,
    ) -> MutexGuard<'s, State> {
        debug_assert_eq!(state.current, Some(me), "only the baton holder schedules");
        self.pass_to(&mut state, Some(next));
        self.sleep(state, me, |s| s.current == Some(me))
    }

    /// Counts a scheduling decision, failing on the livelock cap.
    fn count_step<'s>(&self, mut state: MutexGuard<'s, State>) -> MutexGuard<'s, State> {
        state.steps += 1;
        if state.steps > self.step_limit {
            drop(state);
            fail(format!(
                "livelock in simulation (seed {}): more than {} scheduling decisions; some \
                 simulated thread is probably spinning on a condition that never becomes true",
                self.seed, self.step_limit
            ));
        }
        state
    }

    /// [`yield_now`] for thread `me`.
    fn yield_point(&self, me: usize) {
        let mut state = self.count_step(self.checked_state());
        if matches!(state.threads[me], Status::Runnable) {
            state.mark_progress();
        }
        if let Some(next) = state.pick() {
            if next != me {
                drop(Self::bail_if_poisoned(self.hand_over(state, me, next)));
            }
        }
    }

    /// Marks thread `me` as waiting at `at`; returns whether it already was (a nested wait).
    fn enter_wait(&self, me: usize, at: &'static Location<'static>) -> bool {
        let mut state = self.lock_state();
        if matches!(state.threads[me], Status::Waiting { .. }) {
            return true;
        }
        // Thread `me` ran code since its last decision, which was progress.
        state.mark_progress();
        state.threads[me] = Status::Waiting { at, stale: false };
        false
    }

    /// Marks thread `me` as runnable again after its condition became true (or on unwind).
    fn exit_wait(&self, me: usize) {
        let mut state = self.lock_state();
        if matches!(state.threads[me], Status::Waiting { .. }) {
            state.threads[me] = Status::Runnable;
            state.mark_progress();
        }
    }

    /// Thread `me`'s wait condition was false: passes the baton on, detecting deadlocks.
    fn wait_failed(&self, me: usize) {
        let mut state = self.count_step(self.checked_state());
        if let Status::Waiting { stale, .. } = &mut state.threads[me] {
            *stale = true;
        }
        match state.pick() {
            None => {
                let message = state.deadlock_message(self.seed);
                drop(state);
                fail(message);
            }
            Some(next) if next == me => {}
            Some(next) => drop(Self::bail_if_poisoned(self.hand_over(state, me, next))),
        }
    }

    /// Thread `me` is done; `real_panic` if it unwound from a panic of its own (not the sibling
    /// marker). Hands the baton to a live thread, if any. Never panics.
    fn finish(&self, me: usize, real_panic: bool) {
        let mut state = self.lock_state();
        state.threads[me] = Status::Done;
        state.mark_progress();
        if real_panic {
            state.poisoned = true;
            if state.first_panic.is_none() {
                state.first_panic = Some(me);
            }
        }
        let next = state.pick();
        self.pass_to(&mut state, next);
    }
}

/// Panics with `message`, or aborts with it if the thread is already unwinding (a second panic
/// would abort anyway, with a less helpful message).
fn fail(message: String) -> ! {
    if thread::panicking() {
        eprintln!("{message}\n(detected while unwinding from an earlier panic: aborting)");
        process::abort();
    }
    panic!("{message}");
}

/// A mutex for simulated state that may be held across scheduling points, such as a driver's VM
/// lock.
///
/// [`lock`](Self::lock) is [`wait_until`] a try-acquire succeeds, so a contended lock yields to
/// the other simulated threads and lock cycles are reported as deadlocks. Outside a simulation,
/// locking a held mutex panics instead of blocking forever.
///
/// A panic while the lock is held does not poison it: the panic is propagated by
/// [`run_concurrent`] and the simulated state is then the caller's to judge.
#[derive(Default)]
pub struct SimMutex<T> {
    inner: Mutex<T>,
}

/// Proof that a [`SimMutex`] is held; releases it on drop. Derefs to the protected value.
#[must_use = "the mutex is released when the guard is dropped"]
pub struct SimMutexGuard<'a, T> {
    inner: MutexGuard<'a, T>,
}

impl<T> SimMutex<T> {
    /// A new, unlocked mutex protecting `value`.
    pub const fn new(value: T) -> Self {
        Self {
            inner: Mutex::new(value),
        }
    }

    /// Takes the mutex, waiting (as a simulated thread) while another holds it.
    ///
    /// # Panics
    ///
    /// Outside a simulation if the mutex is held; inside one on deadlock (see [`wait_until`]).
    #[track_caller]
    pub fn lock(&self) -> SimMutexGuard<'_, T> {
        let mut acquired = None;
        wait_until(|| {
            acquired = self.try_lock();
            acquired.is_some()
        });
        match acquired {
            Some(guard) => guard,
            None => unreachable!("wait_until returns only once try_lock succeeded"),
        }
    }

    /// Takes the mutex if it is free.
    pub fn try_lock(&self) -> Option<SimMutexGuard<'_, T>> {
        match self.inner.try_lock() {
            Ok(inner) => Some(SimMutexGuard { inner }),
            Err(TryLockError::Poisoned(poisoned)) => Some(SimMutexGuard {
                inner: poisoned.into_inner(),
            }),
            Err(TryLockError::WouldBlock) => None,
        }
    }

    /// The protected value, without locking (the mutable borrow proves exclusivity).
    pub fn get_mut(&mut self) -> &mut T {
        self.inner.get_mut().unwrap_or_else(PoisonError::into_inner)
    }

    /// Consumes the mutex and returns the protected value.
    pub fn into_inner(self) -> T {
        self.inner
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl<T: fmt::Debug> fmt::Debug for SimMutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("SimMutex");
        match self.try_lock() {
            Some(guard) => d.field("data", &&*guard),
            None => d.field("data", &format_args!("<locked>")),
        };
        d.finish()
    }
}

impl<T> Deref for SimMutexGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.inner
    }
}

impl<T> DerefMut for SimMutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.inner
    }
}

impl<T: fmt::Debug> fmt::Debug for SimMutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// A writer-preferring reader-writer lock for simulated threads, with raw (guard-less)
/// operations.
///
/// It implements [`gpusvm_core::RawRwLock`], serving as the notifier lock and as a process's
/// mmap lock, and may be held across scheduling points. Acquiring waits with [`wait_until`], so
/// contention yields to other simulated threads, lock cycles are reported as deadlocks, and
/// outside a simulation a contended acquire panics instead of blocking. A writer that has to
/// wait keeps new readers out until it got (and released) the lock, as a kernel `rw_semaphore`
/// does — so, as there, taking the read side recursively while a writer waits deadlocks.
///
/// [`read`](Self::read), [`write`](Self::write) and [`try_write`](Self::try_write) return RAII
/// guards for the simulator's own use; [`is_locked`](Self::is_locked) and
/// [`readers`](Self::readers) expose the state for leak checks.
///
/// # Invariants
///
/// `state` is `WRITER` while a writer holds the lock, otherwise the number of readers.
/// `waiting_writers` counts the writers blocked in [`write_lock`](Self::write_lock).
#[derive(Debug, Default)]
pub struct SimRwLock {
    state: AtomicUsize,
    waiting_writers: AtomicUsize,
}

const WRITER: usize = 1 << (usize::BITS - 1);
const READERS: usize = WRITER - 1;

impl SimRwLock {
    /// A new, unlocked lock.
    pub const fn new() -> Self {
        // INVARIANT: unlocked, nobody waiting.
        Self {
            state: AtomicUsize::new(0),
            waiting_writers: AtomicUsize::new(0),
        }
    }

    /// Takes the lock for reading if no writer holds it or waits for it.
    fn try_read_lock(&self) -> bool {
        if self.waiting_writers.load(Ordering::Acquire) != 0 {
            return false;
        }
        self.state
            .fetch_update(Ordering::Acquire, Ordering::Relaxed, |s| {
                (s & WRITER == 0 && s < READERS).then_some(s + 1)
            })
            .is_ok()
    }

    /// Takes the lock for reading, waiting while a writer holds it or waits for it.
    ///
    /// # Panics
    ///
    /// Outside a simulation if that would wait; inside one on deadlock.
    #[track_caller]
    pub fn read_lock(&self) {
        wait_until(|| self.try_read_lock());
    }

    /// Releases a read hold.
    ///
    /// # Panics
    ///
    /// If the lock is not held for reading (an unbalanced release is a bug in the caller).
    #[track_caller]
    pub fn read_unlock(&self) {
        let released = self
            .state
            .fetch_update(Ordering::Release, Ordering::Relaxed, |s| {
                (s & WRITER == 0 && s > 0).then(|| s - 1)
            });
        assert!(
            released.is_ok(),
            "SimRwLock::read_unlock: the lock is not held for reading"
        );
    }

    /// Takes the lock for writing, waiting while readers or another writer hold it. While it
    /// waits, new readers are kept out.
    ///
    /// # Panics
    ///
    /// Outside a simulation if that would wait; inside one on deadlock.
    #[track_caller]
    pub fn write_lock(&self) {
        if self.try_write_lock() {
            return;
        }
        /// Withdraws the writer's claim on every exit, including unwinds.
        struct Waiting<'a>(&'a AtomicUsize);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::Release);
            }
        }
        self.waiting_writers.fetch_add(1, Ordering::AcqRel);
        let _waiting = Waiting(&self.waiting_writers);
        wait_until(|| self.try_write_lock());
    }

    /// Takes the lock for writing if that is possible without waiting.
    pub fn try_write_lock(&self) -> bool {
        self.state
            .compare_exchange(0, WRITER, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    /// Releases the write hold.
    ///
    /// # Panics
    ///
    /// If the lock is not held for writing (an unbalanced release is a bug in the caller).
    #[track_caller]
    pub fn write_unlock(&self) {
        let released = self
            .state
            .compare_exchange(WRITER, 0, Ordering::Release, Ordering::Relaxed);
        assert!(
            released.is_ok(),
            "SimRwLock::write_unlock: the lock is not held for writing"
        );
    }

    /// Takes the lock for reading; the guard releases it.
    #[track_caller]
    pub fn read(&self) -> SimReadGuard<'_> {
        self.read_lock();
        SimReadGuard {
            lock: self,
            _not_send: PhantomData,
        }
    }

    /// Takes the lock for reading if that is possible without waiting.
    pub fn try_read(&self) -> Option<SimReadGuard<'_>> {
        self.try_read_lock().then(|| SimReadGuard {
            lock: self,
            _not_send: PhantomData,
        })
    }

    /// Takes the lock for writing; the guard releases it.
    #[track_caller]
    pub fn write(&self) -> SimWriteGuard<'_> {
        self.write_lock();
        SimWriteGuard {
            lock: self,
            _not_send: PhantomData,
        }
    }

    /// Takes the lock for writing if that is possible without waiting.
    pub fn try_write(&self) -> Option<SimWriteGuard<'_>> {
        // `then`, not `then_some`: an eagerly built guard would release the lock on failure.
        self.try_write_lock().then(|| SimWriteGuard {
            lock: self,
            _not_send: PhantomData,
        })
    }

    /// Whether the lock is held, for reading or writing.
    pub fn is_locked(&self) -> bool {
        self.state.load(Ordering::Acquire) != 0
    }

    /// Whether the lock is held for writing.
    pub fn is_write_locked(&self) -> bool {
        self.state.load(Ordering::Acquire) == WRITER
    }

    /// How many readers hold the lock.
    pub fn readers(&self) -> usize {
        let s = self.state.load(Ordering::Acquire);
        if s == WRITER {
            0
        } else {
            s
        }
    }

    /// How many writers are waiting for the lock (and keeping new readers out).
    pub fn waiting_writers(&self) -> usize {
        self.waiting_writers.load(Ordering::Acquire)
    }
}

// SAFETY: `state` implements the reader-writer protocol of the type invariants: a writer enters
// only by a CAS from 0 (no readers, no writer) to `WRITER`, a reader only by a CAS from a count
// without `WRITER`, so a writer never coexists with anyone else. Entry uses acquire and exit
// release ordering. Contention never grants the lock: it waits (or panics outside a simulation).
unsafe impl gpusvm_core::RawRwLock for SimRwLock {
    fn new() -> Self {
        SimRwLock::new()
    }

    #[track_caller]
    fn read_lock(&self) {
        SimRwLock::read_lock(self);
    }

    #[track_caller]
    unsafe fn read_unlock(&self) {
        SimRwLock::read_unlock(self);
    }

    #[track_caller]
    fn write_lock(&self) {
        SimRwLock::write_lock(self);
    }

    fn try_write_lock(&self) -> bool {
        SimRwLock::try_write_lock(self)
    }

    #[track_caller]
    unsafe fn write_unlock(&self) {
        SimRwLock::write_unlock(self);
    }

    fn relax() {
        yield_now();
    }
}

/// A read hold on a [`SimRwLock`], released on drop.
#[must_use = "the lock is released when the guard is dropped"]
#[derive(Debug)]
pub struct SimReadGuard<'a> {
    lock: &'a SimRwLock,
    // Locks are released by the thread that took them.
    _not_send: PhantomData<*const ()>,
}

impl Drop for SimReadGuard<'_> {
    fn drop(&mut self) {
        self.lock.read_unlock();
    }
}

/// The write hold on a [`SimRwLock`], released on drop.
#[must_use = "the lock is released when the guard is dropped"]
#[derive(Debug)]
pub struct SimWriteGuard<'a> {
    lock: &'a SimRwLock,
    // Locks are released by the thread that took them.
    _not_send: PhantomData<*const ()>,
}

impl Drop for SimWriteGuard<'_> {
    fn drop(&mut self) {
        self.lock.write_unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::any::Any;
    use std::sync::atomic::AtomicBool;

    type Task<'a, R> = Box<dyn FnOnce() -> R + Send + 'a>;

    fn task<'a, R>(f: impl FnOnce() -> R + Send + 'a) -> Task<'a, R> {
        Box::new(f)
    }

    fn panic_message(payload: &(dyn Any + Send)) -> String {
        if let Some(s) = payload.downcast_ref::<&str>() {
            (*s).to_owned()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else {
            "<non-string panic payload>".to_owned()
        }
    }

    /// Runs `f`, expecting a panic, and returns its message.
    fn expect_panic<R>(f: impl FnOnce() -> R) -> String {
        match panic::catch_unwind(AssertUnwindSafe(f)) {
            Ok(_) => panic!("expected a panic"),
            Err(payload) => panic_message(&*payload),
        }
    }

    /// Two threads each append their id at 100 scheduling points.
    fn two_thread_trace(seed: u64) -> Vec<u8> {
        let trace = Mutex::new(Vec::new());
        let worker = |id: u8| {
            let trace = &trace;
            task(move || {
                for _ in 0..100 {
                    trace.lock().unwrap().push(id);
                    yield_now();
                }
            })
        };
        run_concurrent(seed, vec![worker(b'A'), worker(b'B')]);
        trace.into_inner().unwrap()
    }

    #[test]
    fn same_seed_same_interleaving_and_seeds_differ() {
        let mut distinct = Vec::new();
        let mut interleaved = false;
        for seed in 0..16 {
            let first = two_thread_trace(seed);
            assert_eq!(first.len(), 200);
            assert_eq!(first.iter().filter(|&&id| id == b'A').count(), 100);
            for _ in 0..2 {
                assert_eq!(
                    two_thread_trace(seed),
                    first,
                    "seed {seed} is not deterministic"
                );
            }
            let switches = first.windows(2).filter(|w| w[0] != w[1]).count();
            interleaved |= switches > 1;
            if !distinct.contains(&first) {
                distinct.push(first);
            }
        }
        assert!(distinct.len() > 1, "every seed gave the same interleaving");
        assert!(interleaved, "no seed interleaved the threads beyond A…AB…B");
    }

    #[test]
    fn results_are_in_task_order() {
        let base = String::from("task");
        let tasks: Vec<Task<'_, String>> = (0..6)
            .map(|i| {
                let base = &base;
                task(move || {
                    for _ in 0..(6 - i) * 3 {
                        yield_now();
                    }
                    assert!(in_simulation());
                    format!("{base}-{i}")
                })
            })
            .collect();
        let results = run_concurrent(42, tasks);
        let expected: Vec<String> = (0..6).map(|i| format!("task-{i}")).collect();
        assert_eq!(results, expected);
        assert!(run_concurrent::<()>(1, Vec::new()).is_empty());
        assert!(!in_simulation());
    }

    #[test]
    fn sim_mutex_protects_a_non_atomic_increment() {
        for seed in 0..8 {
            let counter = SimMutex::new(0u32);
            let tasks: Vec<Task<'_, ()>> = (0..4)
                .map(|_| {
                    let counter = &counter;
                    task(move || {
                        for _ in 0..50 {
                            let mut guard = counter.lock();
                            let value = *guard;
                            yield_now();
                            *guard = value + 1;
                        }
                    })
                })
                .collect();
            run_concurrent(seed, tasks);
            assert_eq!(counter.into_inner(), 200, "seed {seed}");
        }
    }

    #[test]
    fn unprotected_increment_loses_updates() {
        // The control experiment for the test above: without the lock, the interleavings the
        // scheduler produces do lose updates.
        let lost = (0..8).any(|seed| {
            let counter = AtomicUsize::new(0);
            let tasks: Vec<Task<'_, ()>> = (0..4)
                .map(|_| {
                    let counter = &counter;
                    task(move || {
                        for _ in 0..50 {
                            let value = counter.load(Ordering::Relaxed);
                            yield_now();
                            counter.store(value + 1, Ordering::Relaxed);
                        }
                    })
                })
                .collect();
            run_concurrent(seed, tasks);
            counter.into_inner() < 200
        });
        assert!(lost);
    }

    #[test]
    fn sim_mutex_outside_a_simulation() {
        let mut m = SimMutex::new(vec![1]);
        {
            let mut g = m.lock();
            g.push(2);
            assert!(m.try_lock().is_none());
            let message = expect_panic(|| m.lock());
            assert!(
                message.contains("would block forever outside a simulation"),
                "{message}"
            );
        }
        m.get_mut().push(3);
        assert_eq!(format!("{m:?}"), "SimMutex { data: [1, 2, 3] }");
        assert_eq!(m.into_inner(), vec![1, 2, 3]);
    }

    #[test]
    fn rwlock_readers_share_writers_exclude() {
        let l = SimRwLock::new();
        let r1 = l.read();
        let r2 = l.try_read().expect("readers share");
        assert_eq!(l.readers(), 2);
        assert!(l.is_locked() && !l.is_write_locked());
        assert!(l.try_write().is_none());
        drop(r1);
        assert!(l.try_write().is_none());
        drop(r2);
        assert!(!l.is_locked());
        let w = l.try_write().expect("free lock");
        assert!(l.is_write_locked() && l.readers() == 0);
        assert!(l.try_write().is_none());
        assert!(l.try_read().is_none());
        let message = expect_panic(|| l.read());
        assert!(
            message.contains("would block forever outside a simulation"),
            "{message}"
        );
        drop(w);
        assert!(!l.is_locked());
        drop(l.write());
        assert!(!l.is_locked() && l.waiting_writers() == 0);
    }

    #[test]
    fn rwlock_excludes_writers_in_a_simulation() {
        let mut max_readers = 0;
        for seed in 0..12 {
            let l = SimRwLock::new();
            let readers_in = AtomicUsize::new(0);
            let writers_in = AtomicUsize::new(0);
            let max = AtomicUsize::new(0);
            let reader = || {
                task(|| {
                    for _ in 0..20 {
                        let _g = l.read();
                        let n = readers_in.fetch_add(1, Ordering::Relaxed) + 1;
                        max.fetch_max(n, Ordering::Relaxed);
                        for _ in 0..2 {
                            assert_eq!(writers_in.load(Ordering::Relaxed), 0);
                            yield_now();
                        }
                        readers_in.fetch_sub(1, Ordering::Relaxed);
                        drop(_g);
                        yield_now();
                    }
                })
            };
            let writer = || {
                task(|| {
                    for _ in 0..10 {
                        let _g = l.write();
                        assert_eq!(writers_in.fetch_add(1, Ordering::Relaxed), 0);
                        for _ in 0..2 {
                            assert_eq!(readers_in.load(Ordering::Relaxed), 0);
                            assert_eq!(writers_in.load(Ordering::Relaxed), 1);
                            yield_now();
                        }
                        writers_in.fetch_sub(1, Ordering::Relaxed);
                        drop(_g);
                        yield_now();
                    }
                })
            };
            run_concurrent(seed, vec![reader(), reader(), writer(), writer()]);
            assert!(!l.is_locked() && l.waiting_writers() == 0);
            max_readers = max_readers.max(max.into_inner());
        }
        assert_eq!(max_readers, 2, "readers never shared the lock");
    }

    #[derive(Debug, PartialEq)]
    enum Event {
        Read,
        /// The writer is about to call `write()`; whether readers held the lock.
        WriterArrives(bool),
        Write,
    }

    #[test]
    fn rwlock_waiting_writer_blocks_new_readers() {
        let mut writer_had_to_wait = false;
        let mut readers_continued = false;
        for seed in 0..24 {
            let l = SimRwLock::new();
            let events = Mutex::new(Vec::new());
            let reader = || {
                task(|| {
                    for _ in 0..40 {
                        let g = l.read();
                        events.lock().unwrap().push(Event::Read);
                        yield_now();
                        yield_now();
                        drop(g);
                    }
                })
            };
            let writer = task(|| {
                for _ in 0..10 {
                    yield_now();
                }
                events
                    .lock()
                    .unwrap()
                    .push(Event::WriterArrives(l.readers() > 0));
                let g = l.write();
                events.lock().unwrap().push(Event::Write);
                yield_now();
                drop(g);
            });
            run_concurrent(seed, vec![reader(), reader(), writer]);
            let events = events.into_inner().unwrap();
            let arrival = events
                .iter()
                .position(|e| matches!(e, Event::WriterArrives(_)))
                .unwrap();
            let write = events.iter().position(|e| *e == Event::Write).unwrap();
            assert!(
                events[arrival + 1..write].is_empty(),
                "seed {seed}: a reader got in while a writer waited: {events:?}"
            );
            writer_had_to_wait |= events[arrival] == Event::WriterArrives(true);
            readers_continued |= events[write..].contains(&Event::Read);
        }
        assert!(
            writer_had_to_wait,
            "no seed made the writer wait for readers"
        );
        assert!(
            readers_continued,
            "the writer never got in before the readers finished"
        );
    }

    #[test]
    fn raw_rwlock_trait_methods() {
        use gpusvm_core::RawRwLock;

        fn exercise<L: RawRwLock>(l: &L) {
            l.read_lock();
            l.read_lock();
            assert!(!l.try_write_lock());
            // SAFETY: Both read holds were taken above.
            unsafe {
                l.read_unlock();
                l.read_unlock();
            }
            l.write_lock();
            assert!(!l.try_write_lock());
            // SAFETY: The write hold was taken above.
            unsafe { l.write_unlock() };
            assert!(l.try_write_lock());
            // SAFETY: The write hold was taken by `try_write_lock`.
            unsafe { l.write_unlock() };
            L::relax();
        }

        let l = <SimRwLock as RawRwLock>::new();
        exercise(&l);
        assert!(!l.is_locked());

        // Inside a simulation: a writer holds the lock across scheduling points while a reader
        // waits through the trait, and a spinner relaxes until the reader is done.
        fn holder<L: RawRwLock>(l: &L, order: &Mutex<Vec<&'static str>>) {
            l.write_lock();
            order.lock().unwrap().push("write");
            for _ in 0..5 {
                L::relax();
            }
            order.lock().unwrap().push("write released");
            // SAFETY: The write hold was taken above.
            unsafe { l.write_unlock() };
        }
        fn reader<L: RawRwLock>(l: &L, order: &Mutex<Vec<&'static str>>, done: &AtomicBool) {
            while order.lock().unwrap().is_empty() {
                L::relax();
            }
            l.read_lock();
            order.lock().unwrap().push("read");
            // SAFETY: The read hold was taken above.
            unsafe { l.read_unlock() };
            done.store(true, Ordering::Relaxed);
        }
        for seed in 0..8 {
            let order = Mutex::new(Vec::new());
            let done = AtomicBool::new(false);
            run_concurrent(
                seed,
                vec![
                    task(|| holder(&l, &order)),
                    task(|| reader(&l, &order, &done)),
                    task(|| {
                        while !done.load(Ordering::Relaxed) {
                            <SimRwLock as RawRwLock>::relax();
                        }
                    }),
                ],
            );
            assert_eq!(
                order.into_inner().unwrap(),
                ["write", "write released", "read"]
            );
            assert!(!l.is_locked());
        }
    }

    #[test]
    fn wait_until_is_woken_by_another_thread() {
        for seed in 0..8 {
            let flag = AtomicBool::new(false);
            let trace = Mutex::new(Vec::new());
            let results = run_concurrent(
                seed,
                vec![
                    task(|| {
                        wait_until(|| flag.load(Ordering::Relaxed));
                        trace.lock().unwrap().push("woken");
                        1
                    }),
                    task(|| {
                        for _ in 0..5 {
                            yield_now();
                        }
                        trace.lock().unwrap().push("set");
                        flag.store(true, Ordering::Relaxed);
                        2
                    }),
                ],
            );
            assert_eq!(results, [1, 2]);
            assert_eq!(trace.into_inner().unwrap(), ["set", "woken"]);
        }
    }

    #[test]
    fn lock_heavy_runs_are_deterministic() {
        fn trace(seed: u64) -> Vec<usize> {
            let m = SimMutex::new(Vec::new());
            let l = SimRwLock::new();
            let tasks: Vec<Task<'_, ()>> = (0..3)
                .map(|id| {
                    let (m, l) = (&m, &l);
                    task(move || {
                        for i in 0..20 {
                            let _r = if (i + id) % 3 == 0 {
                                Err(l.write())
                            } else {
                                Ok(l.read())
                            };
                            m.lock().push(id);
                            yield_now();
                        }
                    })
                })
                .collect();
            run_concurrent(seed, tasks);
            m.into_inner()
        }
        for seed in [3, 1234, u64::MAX] {
            assert_eq!(trace(seed), trace(seed));
        }
    }

    #[test]
    fn lock_order_inversion_is_a_deadlock() {
        // Forced: each thread takes its first lock, then waits until the other has too.
        let a = SimMutex::new(());
        let b = SimMutex::new(());
        let a_held = AtomicBool::new(false);
        let b_held = AtomicBool::new(false);
        let message = expect_panic(|| {
            run_concurrent(
                7,
                vec![
                    task(|| {
                        let _a = a.lock();
                        a_held.store(true, Ordering::Relaxed);
                        wait_until(|| b_held.load(Ordering::Relaxed));
                        let _b = b.lock();
                    }),
                    task(|| {
                        let _b = b.lock();
                        b_held.store(true, Ordering::Relaxed);
                        wait_until(|| a_held.load(Ordering::Relaxed));
                        let _a = a.lock();
                    }),
                ],
            )
        });
        assert!(message.contains("deadlock"), "{message}");
        assert!(message.contains("sim-0 waits at") && message.contains("sim-1 waits at"));
        // The locks were released by the unwinding threads.
        assert!(a.try_lock().is_some() && b.try_lock().is_some());
    }

    #[test]
    fn lock_order_inversion_with_yields_deadlocks_for_some_seeds() {
        let mut deadlocks = 0;
        for seed in 0..40 {
            let a = SimMutex::new(0);
            let b = SimMutex::new(0);
            let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
                run_concurrent(
                    seed,
                    vec![
                        task(|| {
                            let mut a = a.lock();
                            yield_now();
                            yield_now();
                            *a += 1;
                            *b.lock() += 1;
                        }),
                        task(|| {
                            let mut b = b.lock();
                            yield_now();
                            yield_now();
                            *b += 1;
                            *a.lock() += 1;
                        }),
                    ],
                )
            }));
            match outcome {
                Ok(_) => assert_eq!((a.into_inner(), b.into_inner()), (2, 2)),
                Err(payload) => {
                    let message = panic_message(&*payload);
                    assert!(message.contains("deadlock"), "seed {seed}: {message}");
                    deadlocks += 1;
                }
            }
        }
        assert!(deadlocks > 0, "no seed deadlocked");
        assert!(deadlocks < 40, "every seed deadlocked");
    }

    #[test]
    fn a_lone_waiter_is_a_deadlock() {
        let message = expect_panic(|| run_concurrent(0, vec![task(|| wait_until(|| false))]));
        assert!(message.contains("deadlock"), "{message}");
    }

    #[test]
    fn a_task_panic_propagates() {
        for seed in 0..8 {
            let iterations = AtomicUsize::new(0);
            let message = expect_panic(|| {
                run_concurrent(
                    seed,
                    vec![
                        task(|| {
                            for _ in 0..100 {
                                iterations.fetch_add(1, Ordering::Relaxed);
                                yield_now();
                            }
                        }),
                        task(|| {
                            for _ in 0..3 {
                                yield_now();
                            }
                            panic!("boom");
                        }),
                    ],
                )
            });
            assert_eq!(message, "boom", "seed {seed}");
            // The sibling was stopped at its next scheduling point.
            assert!(iterations.into_inner() < 100, "seed {seed}");
        }
    }

    #[test]
    fn a_panic_does_not_leave_waiters_hanging() {
        let flag = AtomicBool::new(false);
        let m = SimMutex::new(());
        let message = expect_panic(|| {
            run_concurrent(
                5,
                vec![
                    task(|| wait_until(|| flag.load(Ordering::Relaxed))),
                    task(|| {
                        let _g = m.lock();
                        yield_now();
                        panic!("the thread that would set the flag failed");
                    }),
                    task(|| drop(m.lock())),
                ],
            )
        });
        assert_eq!(message, "the thread that would set the flag failed");
        assert!(m.try_lock().is_some());
    }

    #[test]
    fn a_spinning_thread_is_a_livelock() {
        let flag = AtomicBool::new(false);
        let message = expect_panic(|| {
            run_with_step_limit(
                9,
                10_000,
                vec![
                    task(|| wait_until(|| flag.load(Ordering::Relaxed))),
                    task(|| loop {
                        yield_now();
                    }),
                ],
            )
        });
        assert!(message.contains("livelock"), "{message}");
    }

    #[test]
    fn nested_simulations_are_rejected() {
        let message =
            expect_panic(|| run_concurrent(0, vec![task(|| run_concurrent::<()>(1, Vec::new()))]));
        assert!(message.contains("nested"), "{message}");
    }

    #[test]
    fn outside_a_simulation() {
        assert!(!in_simulation());
        for _ in 0..1000 {
            yield_now();
        }
        wait_until(|| true);
        let mut checks = 0;
        wait_until(|| {
            checks += 1;
            true
        });
        assert_eq!(checks, 1);
        let message = expect_panic(|| wait_until(|| false));
        assert!(
            message.contains("would block forever outside a simulation"),
            "{message}"
        );
        assert!(
            message.contains("sched.rs"),
            "the message names the caller: {message}"
        );
    }

    #[test]
    fn splitmix_reference_values() {
        // Reference output of SplitMix64 seeded with 0 (Vigna's splitmix64.c).
        let mut rng = SplitMix64::new(0);
        assert_eq!(rng.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(rng.next_u64(), 0x6E78_9E6A_A1B9_65F4);
        assert!((0..1000).all(|_| rng.below(3) < 3));
    }
}
