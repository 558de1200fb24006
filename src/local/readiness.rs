//! Which pending tasks may start: each waits for a count of dependencies, and a result that
//! completes wakes exactly the tasks waiting for it. Starting, completing and failing a task
//! then cost in proportion to its own dependencies and consumers, never to the size of the
//! graph (a scan of every pending task per start made a 10,000-task graph quadratic).

use std::collections::{HashMap, HashSet, VecDeque};

/// The pending tasks of a graph, by readiness.
#[derive(Debug, Default)]
pub(crate) struct Readiness {
    /// Tasks whose dependencies are all completed, first come first served. A task that left
    /// `Pending` meanwhile (cancelled) is skipped by the scheduler.
    ready: VecDeque<String>,
    /// For each pending task still waiting, how many of its distinct dependencies are not
    /// completed yet.
    missing: HashMap<String, usize>,
    /// For each result not completed yet, the tasks waiting for it.
    consumers: HashMap<String, Vec<String>>,
    /// Ready tasks of paused sessions, by session, in their order.
    parked: HashMap<String, VecDeque<String>>,
}

impl Readiness {
    /// Adds a pending task waiting for `missing`, the dependencies not completed yet (repeats
    /// allowed); with none, it is ready.
    pub(crate) fn add<'a>(&mut self, task_id: &str, missing: impl Iterator<Item = &'a String>) {
        let missing: HashSet<&String> = missing.collect();
        if missing.is_empty() {
            self.ready.push_back(task_id.to_owned());
            return;
        }
        self.missing.insert(task_id.to_owned(), missing.len());
        for result in missing {
            self.consumers
                .entry(result.clone())
                .or_default()
                .push(task_id.to_owned());
        }
    }

    /// Result `id` completed: the tasks that waited only for it become ready.
    pub(crate) fn completed(&mut self, id: &str) {
        for task in self.consumers.remove(id).unwrap_or_default() {
            if let Some(count) = self.missing.get_mut(&task) {
                *count -= 1;
                if *count == 0 {
                    self.missing.remove(&task);
                    self.ready.push_back(task);
                }
            }
        }
    }

    /// The tasks waiting for result `id` (to cancel when it is aborted).
    pub(crate) fn consumers(&self, id: &str) -> &[String] {
        self.consumers.get(id).map_or(&[], Vec::as_slice)
    }

    /// Whether task `id` waits for a dependency.
    pub(crate) fn is_waiting(&self, id: &str) -> bool {
        self.missing.contains_key(id)
    }

    /// Task `id` left `Pending`: it waits for nothing any more.
    pub(crate) fn forget(&mut self, id: &str) {
        self.missing.remove(id);
    }

    /// The oldest ready task, if any.
    pub(crate) fn pop(&mut self) -> Option<String> {
        self.ready.pop_front()
    }

    /// A ready task that could not start (its data folder could not be made): first again.
    pub(crate) fn put_back(&mut self, task_id: String) {
        self.ready.push_front(task_id);
    }

    /// Keeps a ready task of a paused session until it resumes.
    pub(crate) fn park(&mut self, session_id: &str, task_id: String) {
        self.parked
            .entry(session_id.to_owned())
            .or_default()
            .push_back(task_id);
    }

    /// A session resumed: its parked tasks are ready again, in their order.
    pub(crate) fn unpark(&mut self, session_id: &str) {
        if let Some(parked) = self.parked.remove(session_id) {
            self.ready.extend(parked);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_is_ready_once_each_distinct_dependency_completed() {
        let mut readiness = Readiness::default();
        let deps = ["a".to_owned(), "b".to_owned(), "a".to_owned()];
        readiness.add("t", deps.iter());
        readiness.add("u", std::iter::empty());
        assert_eq!(readiness.pop().as_deref(), Some("u"));
        assert!(readiness.is_waiting("t"));
        readiness.completed("a");
        assert_eq!(readiness.pop(), None);
        readiness.completed("b");
        assert!(!readiness.is_waiting("t"));
        assert_eq!(readiness.pop().as_deref(), Some("t"));
    }

    #[test]
    fn parked_tasks_come_back_in_order() {
        let mut readiness = Readiness::default();
        readiness.park("s", "t1".into());
        readiness.park("s", "t2".into());
        assert_eq!(readiness.pop(), None);
        readiness.unpark("s");
        assert_eq!(readiness.pop().as_deref(), Some("t1"));
        assert_eq!(readiness.pop().as_deref(), Some("t2"));
    }
}
