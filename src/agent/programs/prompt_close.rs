//! A client that closes the moment the server's FIN arrives, on a loaded
//! machine too.
//!
//! fin-wait1 rests on a race inside c1: the kernel delays its ACK of the
//! server's FIN (40 ms and more), and a client that closes within that time
//! sends ACK and FIN as one segment, which c1's rule drops. A client woken
//! later than the delayed-ACK timer sends a bare ACK first, and the server
//! reaches FIN_WAIT2 instead: seen on a machine with a load average of 4.
//! So from connect() to close() the agent's thread (its only one) runs at a
//! real-time priority (SCHED_FIFO), which the scheduler runs as soon as the
//! FIN wakes it, ahead of every ordinary process; [`Realtime`] puts the old
//! policy back when dropped. Without the privilege (a rootless run) the
//! thread stays as it was.

/// The calling thread at SCHED_FIFO until this is dropped.
pub struct Realtime {
    previous: Option<(libc::c_int, libc::sched_param)>,
}

impl Realtime {
    /// Raises the calling thread; says whether it could.
    pub fn raise() -> Realtime {
        // SAFETY: sched_getscheduler/getparam/setscheduler on the calling
        // thread (pid 0) with valid parameter blocks.
        let previous = unsafe {
            let policy = libc::sched_getscheduler(0);
            let mut param = libc::sched_param { sched_priority: 0 };
            let got = libc::sched_getparam(0, &mut param) == 0;
            let raised = libc::sched_param { sched_priority: 1 };
            (policy >= 0 && got && libc::sched_setscheduler(0, libc::SCHED_FIFO, &raised) == 0)
                .then_some((policy, param))
        };
        Realtime { previous }
    }

    pub fn is_realtime(&self) -> bool {
        self.previous.is_some()
    }
}

impl Drop for Realtime {
    fn drop(&mut self) {
        if let Some((policy, param)) = self.previous {
            // SAFETY: as above, back to what the thread had.
            unsafe { libc::sched_setscheduler(0, policy, &param) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_old_policy_comes_back() {
        // SAFETY: reading the calling thread's policy.
        let before = unsafe { libc::sched_getscheduler(0) };
        {
            let realtime = Realtime::raise();
            if realtime.is_realtime() {
                // SAFETY: as above.
                assert_eq!(unsafe { libc::sched_getscheduler(0) }, libc::SCHED_FIFO);
            }
        }
        // SAFETY: as above.
        assert_eq!(unsafe { libc::sched_getscheduler(0) }, before);
    }
}
