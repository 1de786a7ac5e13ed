//! Log output that costs a connection almost nothing.
//!
//! Formatting happens where the event is (it needs the event's fields); the formatted line is
//! appended to a shared buffer under a lock that is almost never contended. One writer thread
//! wakes every [`FLUSH_EVERY`], takes the whole buffer and writes it in one go. So a busy
//! gateway does one `write` per batch instead of one per line, a slow disk never stalls a
//! connection, and the proxy's threads are not woken up by their own log (an earlier design
//! that woke the writer for every line cost 10% of the new-connection rate).
//!
//! If the buffer grows past [`MAX_PENDING`] (the output has stalled), lines are dropped and
//! counted, and the next batch says how many were lost: the proxy never blocks on its log.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// How long a line may wait before it is written.
pub const FLUSH_EVERY: Duration = Duration::from_millis(50);
/// Most bytes waiting to be written before lines are dropped.
pub const MAX_PENDING: usize = 8 * 1024 * 1024;

struct Shared {
    pending: Mutex<Vec<u8>>,
    dropped: AtomicU64,
    /// Held while a batch is written, so batches come out in order.
    output: Mutex<Box<dyn Write + Send>>,
    stop: AtomicBool,
    wake: Condvar,
}

impl Shared {
    /// Writes whatever is pending. `batch` is an empty buffer to swap with the pending one:
    /// both keep their capacity, so a busy log does not regrow (and copy) its buffer from
    /// nothing after every batch.
    fn flush(&self, batch: &mut Vec<u8>) {
        let Ok(mut out) = self.output.lock() else {
            return;
        };
        match self.pending.lock() {
            Ok(mut pending) => std::mem::swap(&mut *pending, batch),
            Err(_) => return,
        }
        let lost = self.dropped.swap(0, Ordering::Relaxed);
        if lost > 0 {
            let _ = writeln!(
                out,
                "WARN gatehouse: {lost} log lines were dropped: the log output is too slow"
            );
        }
        if !batch.is_empty() {
            let _ = out.write_all(batch);
        }
        let _ = out.flush();
        batch.clear();
    }
}

/// The subscriber's `MakeWriter`.
#[derive(Clone)]
pub struct LogPipe {
    shared: Arc<Shared>,
}

/// Stops the writer thread and writes what is pending when dropped (at the end of `main`).
#[must_use = "dropping it stops the log writer: keep it until the end of main"]
pub struct FlushOnDrop {
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for FlushOnDrop {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.shared.wake.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.shared.flush(&mut Vec::new());
    }
}

/// Starts the writer thread for `out`.
pub fn pipe(out: impl Write + Send + 'static) -> std::io::Result<(LogPipe, FlushOnDrop)> {
    let shared = Arc::new(Shared {
        pending: Mutex::new(Vec::with_capacity(64 * 1024)),
        dropped: AtomicU64::new(0),
        output: Mutex::new(Box::new(out)),
        stop: AtomicBool::new(false),
        wake: Condvar::new(),
    });
    let writer = Arc::clone(&shared);
    let thread = std::thread::Builder::new()
        .name("gatehouse-log".into())
        .spawn(move || {
            let mut batch = Vec::with_capacity(64 * 1024);
            while !writer.stop.load(Ordering::Relaxed) {
                if let Ok(pending) = writer.pending.lock() {
                    let _ = writer.wake.wait_timeout(pending, FLUSH_EVERY);
                }
                writer.flush(&mut batch);
            }
        })?;
    Ok((
        LogPipe {
            shared: Arc::clone(&shared),
        },
        FlushOnDrop {
            shared,
            thread: Some(thread),
        },
    ))
}

impl Write for LogPipe {
    /// Appends to the pending buffer. The formatter writes each event with one call.
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut pending) = self.shared.pending.lock() {
            if pending.len() + buf.len() <= MAX_PENDING {
                pending.extend_from_slice(buf);
            } else {
                self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LogPipe {
    type Writer = LogPipe;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_arrive_whole_in_order_and_are_flushed_at_the_end() {
        let sink = Sink::default();
        let (pipe, flush) = pipe(sink.clone()).unwrap();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let pipe = pipe.clone();
                std::thread::spawn(move || {
                    for i in 0..500 {
                        let mut w = pipe.make_writer();
                        w.write_all(format!("thread {t} line {i}\n").as_bytes())
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        drop(flush);
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 2000);
        for t in 0..4 {
            let mine: Vec<&str> = text
                .lines()
                .filter(|l| l.starts_with(&format!("thread {t} ")))
                .collect();
            let want: Vec<String> = (0..500).map(|i| format!("thread {t} line {i}")).collect();
            assert_eq!(mine, want, "thread {t}'s lines are whole and in order");
        }
    }

    #[test]
    fn a_stalled_output_drops_lines_and_says_so() {
        let sink = Sink::default();
        let (pipe, flush) = pipe(sink.clone()).unwrap();
        // Hold the output so nothing is written, and overfill the buffer.
        let guard = pipe.shared.output.lock().unwrap();
        let line = vec![b'x'; 1024 * 1024];
        let mut w = pipe.make_writer();
        for _ in 0..10 {
            w.write_all(&line).unwrap();
        }
        assert_eq!(pipe.shared.dropped.load(Ordering::Relaxed), 2);
        drop(guard);
        drop(flush);
        let text = String::from_utf8_lossy(&sink.0.lock().unwrap()).into_owned();
        assert!(
            text.starts_with("WARN gatehouse: 2 log lines were dropped"),
            "{}",
            &text[..80]
        );
    }
}
