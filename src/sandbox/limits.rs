//! Per-task resource limits enforced inside the store.

use wasmtime::ResourceLimiter;

/// Table elements a task may have in one table: far above what compilers emit for real
/// programs (CPython's function table is about 20,000), far below what would hurt the host.
const MAX_TABLE_ELEMENTS: usize = 1_000_000;

/// The trap raised when a task asks for more memory than its limit.
#[derive(Debug, thiserror::Error)]
#[error(
    "memory limit exceeded: the task asked for {requested} bytes of linear memory in all, its limit is {limit} bytes"
)]
pub struct MemoryLimitExceeded {
    /// What the task would have had after the growth.
    pub requested: usize,
    /// The limit.
    pub limit: usize,
}

/// Caps the linear memory of all the instances of one task together (a component holds
/// several core instances, so a per-memory cap alone would let a task take a multiple of it).
pub struct TaskLimiter {
    limit: usize,
    used: usize,
}

impl TaskLimiter {
    /// A limiter allowing `limit` bytes of linear memory in total.
    pub fn new(limit: usize) -> Self {
        Self { limit, used: 0 }
    }

    /// Bytes of linear memory the task holds, all its memories together. Linear memories
    /// never shrink, so once the task has run this is its peak.
    pub fn used(&self) -> usize {
        self.used
    }
}

impl ResourceLimiter for TaskLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let requested = self.used.saturating_add(desired.saturating_sub(current));
        if requested > self.limit {
            // A trap, not a failed `memory.grow`: the task stops here with a message that says
            // why, instead of an allocator abort somewhere later.
            return Err(wasmtime::Error::new(MemoryLimitExceeded {
                requested,
                limit: self.limit,
            }));
        }
        self.used = requested;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_every_memory_of_the_task() {
        let mut limiter = TaskLimiter::new(100);
        assert!(matches!(limiter.memory_growing(0, 60, None), Ok(true)));
        assert!(matches!(limiter.memory_growing(0, 40, None), Ok(true)));
        let err = limiter.memory_growing(40, 41, None);
        assert!(err.is_err_and(|e| e.downcast_ref::<MemoryLimitExceeded>().is_some()));
    }
}
