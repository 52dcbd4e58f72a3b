//! Counting kernel writes per task: a reconcile runs inside [`count_writes`], and every
//! write made on its task (or noted with [`note_write`]) counts toward it, so the driver can
//! tell a repair of drift from a reconcile that only read.

tokio::task_local! {
    /// Writes made by the current task inside [`count_writes`].
    pub(super) static TASK_WRITES: std::cell::Cell<u64>;
}

/// Counts a write made on the caller's behalf on another thread (an nftables batch) toward
/// the current [`count_writes`] scope, if any. The global counter already has it.
pub fn note_write() {
    let _ = TASK_WRITES.try_with(|c| c.set(c.get() + 1));
}

/// Runs `f` and returns its output with the number of kernel writes it made on its own task.
pub async fn count_writes<F: Future>(f: F) -> (F::Output, u64) {
    TASK_WRITES
        .scope(std::cell::Cell::new(0), async {
            let out = f.await;
            (out, TASK_WRITES.with(|c| c.get()))
        })
        .await
}
