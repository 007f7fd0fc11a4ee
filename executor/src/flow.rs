//! When the worker's partitions pause and resume (pure: the worker applies it).
//!
//! Fetched jobs wait in the worker's backlog for a slot. The partitions pause once
//! every slot is busy and `prefetch` jobs wait, and resume when a slot is free or
//! the backlog has drained to half of `prefetch`: the fetch that refills it is
//! under way while the other half is still being handed out, so a slot never
//! waits for a fetch, and a pause/resume cycle comes once per `prefetch / 2` jobs
//! rather than once per job. With `prefetch` 0 the partitions pause as soon as
//! every slot is busy and resume as soon as one frees (no backlog).

/// The pause state of the worker's partitions.
#[derive(Debug)]
pub struct Flow {
    prefetch: usize,
    paused: bool,
}

impl Flow {
    pub fn new(prefetch: usize) -> Self {
        Self { prefetch, paused: false }
    }

    /// The change to make, given how many jobs wait and how many slots are free:
    /// `Some(true)` pause, `Some(false)` resume, `None` nothing.
    pub fn update(&mut self, waiting: usize, free_slots: usize) -> Option<bool> {
        let full = free_slots == 0 && waiting >= self.prefetch;
        let drained = free_slots > 0 || (self.prefetch > 0 && waiting <= self.prefetch / 2);
        let change = match self.paused {
            false if full => true,
            true if drained => false,
            _ => return None,
        };
        self.paused = change;
        Some(change)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_pause_only_when_every_slot_is_busy_and_the_backlog_is_full() {
        let mut flow = Flow::new(4);
        assert_eq!(flow.update(0, 2), None, "free slots");
        assert_eq!(flow.update(3, 0), None, "room in the backlog");
        assert_eq!(flow.update(4, 0), Some(true));
        assert_eq!(flow.update(5, 0), None, "a fetch under way when the pause came");
    }

    #[test]
    fn they_resume_at_half_the_backlog_or_a_free_slot_not_at_each_job() {
        let mut flow = Flow::new(4);
        flow.update(4, 0);
        assert_eq!(flow.update(3, 0), None, "one job taken: still paused");
        assert_eq!(flow.update(2, 0), Some(false), "half drained: the refill starts");
        assert_eq!(flow.update(3, 0), None);
        assert_eq!(flow.update(4, 0), Some(true));
        assert_eq!(flow.update(4, 1), Some(false), "a slot free with jobs waiting (about to take one)");
    }

    #[test]
    fn without_prefetch_they_pause_while_every_slot_is_busy() {
        let mut flow = Flow::new(0);
        assert_eq!(flow.update(0, 1), None);
        assert_eq!(flow.update(0, 0), Some(true));
        assert_eq!(flow.update(0, 0), None, "no oscillation while every slot is busy");
        assert_eq!(flow.update(0, 1), Some(false));
    }
}
