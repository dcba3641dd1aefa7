//! What the benchmarks read of the server process from `/proc` (Linux; each
//! reading is `None` elsewhere): CPU time, a thread's scheduler figures.

/// Linux's USER_HZ: the unit of utime and stime in /proc/<pid>/stat.
const CLOCK_TICKS_PER_S: f64 = 100.0;

/// The server's single writer thread, by its name.
pub(crate) const WRITER_THREAD: &str = "ragpulse-writer";

/// utime + stime of a process, seconds (Linux; `None` elsewhere).
pub(crate) fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.get(stat.rfind(')')? + 2..)?.split(' ').collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / CLOCK_TICKS_PER_S)
}

/// A thread's scheduler figures: seconds on a CPU, and seconds runnable but
/// waiting in a run queue.
#[derive(Clone, Copy)]
pub(crate) struct Sched {
    pub(crate) on_cpu: f64,
    pub(crate) waiting: f64,
}

impl std::ops::Sub for Sched {
    type Output = Sched;
    fn sub(self, earlier: Sched) -> Sched {
        Sched {
            on_cpu: self.on_cpu - earlier.on_cpu,
            waiting: self.waiting - earlier.waiting,
        }
    }
}

/// `/proc/<pid>/task/<tid>/schedstat` of the thread of `pid` named `name`.
pub(crate) fn thread_sched(pid: u32, name: &str) -> Option<Sched> {
    let task = std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .flatten()
        .find(|task| {
            std::fs::read_to_string(task.path().join("comm")).is_ok_and(|comm| comm.trim() == name)
        })?;
    let stat = std::fs::read_to_string(task.path().join("schedstat")).ok()?;
    let mut fields = stat.split_whitespace().map(|f| f.parse::<f64>().ok());
    Some(Sched {
        on_cpu: fields.next()?? / 1e9,
        waiting: fields.next()?? / 1e9,
    })
}

/// The threads of `pid` now.
pub(crate) fn thread_count(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
}
