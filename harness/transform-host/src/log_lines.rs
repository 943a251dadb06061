//! Log events as a reader wants them: each writer's fragments joined up to
//! a newline. Go writes a panic as dozens of tiny writes (`panic: `, the
//! message, `\n`, …), each a log event of its own in Redpanda and in
//! `_redpanda.transform_logs`; a line of them is what says why it failed.
//! And the end of what a transform wrote to stderr, as one text, for the
//! reports of its failure.

use std::sync::Mutex;
use std::time::SystemTime;

use crate::wasi::{LogEvent, LogStream, Logger, LOG_EVENT_MAX_BYTES};

/// A line begun and not yet ended.
struct Partial {
    transform: String,
    stream: LogStream,
    text: String,
    time: SystemTime,
}

/// A logger that hands `emit` one event per line (without its newline),
/// joined from the fragments each transform writes to each stream. A line
/// that reaches [`LOG_EVENT_MAX_BYTES`] unended is handed on as it is, and
/// what is left unended at the end when the logger is dropped.
pub fn lines(emit: impl Fn(LogEvent<'_>) + Send + Sync + 'static) -> Logger {
    let joiner = Joiner {
        partial: Mutex::new(Vec::new()),
        emit,
    };
    std::sync::Arc::new(move |event: LogEvent<'_>| joiner.write(event))
}

struct Joiner<F: Fn(LogEvent<'_>)> {
    partial: Mutex<Vec<Partial>>,
    emit: F,
}

impl<F: Fn(LogEvent<'_>)> Joiner<F> {
    fn write(&self, event: LogEvent<'_>) {
        let mut ended = Vec::new();
        {
            let mut partial = self.partial.lock().unwrap_or_else(|p| p.into_inner());
            let at = match partial
                .iter()
                .position(|p| p.stream == event.stream && p.transform == event.transform)
            {
                Some(at) => at,
                None => {
                    partial.push(Partial {
                        transform: event.transform.to_string(),
                        stream: event.stream,
                        text: String::new(),
                        time: event.time,
                    });
                    partial.len() - 1
                }
            };
            let line = &mut partial[at];
            line.text.push_str(event.message);
            line.time = event.time;
            while let Some(end) = line.text.find('\n') {
                let rest = line.text.split_off(end + 1);
                let mut text = std::mem::replace(&mut line.text, rest);
                text.truncate(text.trim_end_matches(['\n', '\r']).len());
                ended.push(text);
            }
            if line.text.len() >= LOG_EVENT_MAX_BYTES {
                ended.push(std::mem::take(&mut line.text));
            }
        }
        for text in ended {
            (self.emit)(LogEvent {
                message: &text,
                ..event
            });
        }
    }
}

impl<F: Fn(LogEvent<'_>)> Drop for Joiner<F> {
    fn drop(&mut self) {
        let partial = self.partial.get_mut().unwrap_or_else(|p| p.into_inner());
        for p in partial.drain(..).filter(|p| !p.text.is_empty()) {
            (self.emit)(LogEvent {
                transform: &p.transform,
                stream: p.stream,
                message: &p.text,
                time: p.time,
            });
        }
    }
}

/// The end of what a transform wrote to stderr, as it wrote it.
#[derive(Debug, Default)]
pub(crate) struct StderrTail(Mutex<String>);

/// How much of it a failure report quotes, at most.
pub(crate) const STDERR_KEPT: usize = 4096;

impl StderrTail {
    /// Passes every event on to `logger`, keeping the stderr ones' end.
    pub(crate) fn keeping(self: &std::sync::Arc<Self>, logger: Logger) -> Logger {
        let tail = self.clone();
        std::sync::Arc::new(move |event: LogEvent<'_>| {
            if event.stream == LogStream::Stderr {
                let mut text = tail.0.lock().unwrap_or_else(|p| p.into_inner());
                text.push_str(event.message);
                // Trimmed now and then, not at every write.
                if text.len() > 2 * STDERR_KEPT {
                    let cut = text.len() - STDERR_KEPT;
                    let cut = (cut..text.len())
                        .find(|&i| text.is_char_boundary(i))
                        .unwrap_or(text.len());
                    text.drain(..cut);
                }
            }
            logger(event)
        })
    }

    /// Its last lines, at most [`STDERR_KEPT`] bytes from the start of a
    /// line; `None` if nothing was written.
    pub(crate) fn text(&self) -> Option<String> {
        let text = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let mut from = text.len().saturating_sub(STDERR_KEPT);
        if from > 0 {
            from = text[from..].find('\n').map_or(text.len(), |n| from + n + 1);
        }
        let kept = text.get(from..).unwrap_or_default().trim_end();
        (!kept.trim().is_empty()).then(|| kept.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    fn event(stream: LogStream, message: &str) -> LogEvent<'_> {
        LogEvent {
            transform: "t",
            stream,
            message,
            time: SystemTime::UNIX_EPOCH,
        }
    }

    /// Go's panic, write by write, as its runtime makes them.
    const GO_PANIC: &[&str] = &[
        "panic: ",
        "boom on record 2",
        "\n",
        "\ngoroutine ",
        "1",
        " [running]:\n",
        "main.main.func1(...)\n",
        "\t/src/main.go:12 +0x8",
    ];

    #[test]
    fn fragments_are_joined_up_to_each_newline_and_the_rest_at_the_end() {
        let got = Arc::new(Mutex::new(Vec::new()));
        let logger = {
            let got = got.clone();
            lines(move |e| got.lock().unwrap().push((e.stream, e.message.to_string())))
        };
        logger(event(LogStream::Stdout, "out "));
        for part in GO_PANIC {
            logger(event(LogStream::Stderr, part));
        }
        logger(event(LogStream::Stdout, "line\r\n"));
        drop(logger);
        let err = |s: &str| (LogStream::Stderr, s.to_string());
        assert_eq!(
            *got.lock().unwrap(),
            [
                err("panic: boom on record 2"),
                err(""),
                err("goroutine 1 [running]:"),
                err("main.main.func1(...)"),
                (LogStream::Stdout, "out line".to_string()),
                err("\t/src/main.go:12 +0x8"),
            ]
        );
    }

    #[test]
    fn a_line_without_an_end_is_handed_on_at_the_longest_event() {
        let got = Arc::new(Mutex::new(Vec::new()));
        let logger = {
            let got = got.clone();
            lines(move |e| got.lock().unwrap().push(e.message.len()))
        };
        let chunk = "x".repeat(300);
        for _ in 0..4 {
            logger(event(LogStream::Stdout, &chunk));
        }
        assert_eq!(*got.lock().unwrap(), [1200]);
    }

    #[test]
    fn the_stderr_tail_is_one_text_from_a_line_start() {
        let tail = Arc::new(StderrTail::default());
        let logger = tail.keeping(Arc::new(|_| {}));
        assert_eq!(tail.text(), None);
        logger(event(LogStream::Stdout, "not stderr\n"));
        for part in GO_PANIC {
            logger(event(LogStream::Stderr, part));
        }
        let text = tail.text().unwrap();
        assert!(
            text.starts_with("panic: boom on record 2\n\ngoroutine 1"),
            "{text}"
        );
        assert!(!text.contains("not stderr"));
        for i in 0..1000 {
            logger(event(LogStream::Stderr, &format!("line {i}\n")));
        }
        let text = tail.text().unwrap();
        assert!(text.len() <= STDERR_KEPT);
        assert!(text.starts_with("line "), "{text}");
        assert!(text.ends_with("line 999"), "{text}");
    }
}
