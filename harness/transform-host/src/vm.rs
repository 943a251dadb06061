//! One transform instance, fed batch by batch.
//!
//! The guest's `_start` loops forever, blocking in `read_batch_header`. The
//! host runs it as a wasmtime async call that it polls by hand: the call
//! parks when the guest asks for a batch it does not have yet, and each
//! [`Vm::process`] hands one batch over and polls until the guest parks
//! again, which is the moment the batch is finished. One thread, no locks
//! held across calls, nothing scheduled behind the driver's back.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use wasmtime::{Store, Trap, WasmBacktrace};

use crate::log_lines::StderrTail;
use crate::records::{Batch, Output};
use crate::state::{HostState, Shared};
use crate::wasi::WasiState;
use crate::{Host, Limits, Logger, Transform, TransformSpec};

/// Why a VM stopped: Redpanda would fail the transform here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub message: String,
    /// Offset of the input record being processed, if any had been read.
    pub offset: Option<i64>,
    /// Where in the guest it stopped: a trap's wasm backtrace, the guest's
    /// own functions (the host's native frames are ours, not the user's:
    /// they are added to the message only with `RUST_BACKTRACE=full`).
    pub backtrace: Option<String>,
    /// The end of what it wrote to stderr, as one text: where a Go panic
    /// or a Rust one says why, over many writes.
    pub stderr: Option<String>,
}

/// The message, what the guest last wrote to stderr, then its stack;
/// callers name the record.
impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)?;
        if let Some(stderr) = &self.stderr {
            write!(
                f,
                "
its stderr ended with:
{stderr}"
            )?;
        }
        if let Some(backtrace) = &self.backtrace {
            write!(f, "\n{backtrace}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Failure {}

type Run = Pin<Box<dyn Future<Output = wasmtime::Result<()>> + Send>>;

pub struct Vm {
    shared: Arc<Shared>,
    stderr: Arc<StderrTail>,
    run: Run,
    limits: Limits,
    failed: Option<Failure>,
}

impl std::fmt::Debug for Vm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vm")
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

impl Vm {
    /// Instantiates the transform and runs `_start` until it asks for its
    /// first batch. Failing here is failing at deploy.
    pub fn start(
        host: &Host,
        transform: &Transform,
        spec: &TransformSpec,
        logger: Logger,
    ) -> Result<Vm, Failure> {
        let limits = host.limits;
        if spec.output_topics.is_empty() || spec.output_topics.len() > limits.max_output_topics {
            return Err(Failure {
                message: format!(
                    "a transform has 1 to {} output topics; {} given",
                    limits.max_output_topics,
                    spec.output_topics.len()
                ),
                offset: None,
                backtrace: None,
                stderr: None,
            });
        }
        // A start, not a deploy, meets the memory limit, as in Redpanda
        // (its heap is taken when the VM is created): a Go module at the
        // default 2 MiB is accepted, then fails here.
        if transform.initial_memory_bytes > limits.memory_bytes as u64 {
            return Err(Failure {
                message: format!(
                    "the module starts with {} bytes of memory, over the limit of {} bytes \
                     (--memory-limit; Redpanda's data_transforms_per_function_memory_limit)",
                    transform.initial_memory_bytes, limits.memory_bytes
                ),
                offset: None,
                backtrace: None,
                stderr: None,
            });
        }
        let shared = Arc::new(Shared::default());
        shared.current_offset.store(-1, Ordering::Relaxed);
        let stderr = Arc::new(StderrTail::default());
        let logger = stderr.keeping(logger);
        let state = HostState {
            memory: None,
            shared: shared.clone(),
            batch: None,
            next_record: 0,
            outputs: Vec::new(),
            output_topics: spec.output_topics.clone(),
            fuel_per_record: limits.fuel_per_record,
            memory_limit: limits.memory_bytes,
            wasi: WasiState::new(&spec.name, spec.environ(), logger),
            registry: host.registry.clone(),
        };
        let mut store = Store::new(&host.engine, state);
        store.limiter(|state| state);
        store
            .set_fuel(limits.fuel_per_record)
            .expect("fuel is enabled on the engine");
        let pre = transform.pre.clone();
        let run: Run = Box::pin(async move {
            let instance = pre.instantiate_async(&mut store).await?;
            store.data_mut().memory = instance.get_memory(&mut store, "memory");
            let start = instance.get_typed_func::<(), ()>(&mut store, "_start")?;
            start.call_async(&mut store, ()).await
        });
        let mut vm = Vm {
            shared,
            stderr,
            run,
            limits,
            failed: None,
        };
        vm.resume()?;
        Ok(vm)
    }

    /// Runs one batch to its end and returns what the guest wrote, in order.
    pub fn process(&mut self, batch: Arc<Batch>) -> Result<Vec<Output>, Failure> {
        if let Some(failure) = &self.failed {
            return Err(failure.clone());
        }
        assert!(
            !batch.records.is_empty(),
            "empty batches are never delivered"
        );
        self.shared.exchange.lock().expect("exchange lock").inbox = Some(batch);
        self.resume()?;
        Ok(self
            .shared
            .exchange
            .lock()
            .expect("exchange lock")
            .done
            .take()
            .unwrap_or_default())
    }

    /// The guest's linear memory in bytes; it never shrinks, so this is
    /// the most it has used.
    pub fn memory_bytes(&self) -> usize {
        self.shared.memory_bytes.load(Ordering::Relaxed)
    }

    /// Polls the guest until it parks waiting for a batch.
    fn resume(&mut self) -> Result<(), Failure> {
        let mut cx = Context::from_waker(Waker::noop());
        let (message, backtrace) = match self.run.as_mut().poll(&mut cx) {
            Poll::Pending if self.shared.exchange.lock().expect("exchange lock").parked => {
                return Ok(())
            }
            Poll::Pending => (
                "the transform is blocked on something other than its input".to_string(),
                None,
            ),
            Poll::Ready(Ok(())) => (
                "the transform's `_start` returned: it must process batches forever".to_string(),
                None,
            ),
            Poll::Ready(Err(e)) => self.explain(e),
        };
        let offset = self.shared.current_offset.load(Ordering::Relaxed);
        let failure = Failure {
            message,
            offset: (offset >= 0).then_some(offset),
            backtrace,
            stderr: self.stderr.text(),
        };
        self.failed = Some(failure.clone());
        Err(failure)
    }

    /// The reason, and the guest's stack where there is one.
    fn explain(&self, e: wasmtime::Error) -> (String, Option<String>) {
        let refused = self.shared.refused_memory.load(Ordering::Relaxed);
        let trap = e.downcast_ref::<Trap>().copied();
        let backtrace = e
            .downcast_ref::<WasmBacktrace>()
            .map(|b| b.to_string().trim_end().to_string())
            .filter(|b| !b.is_empty());
        let mut message = if trap == Some(Trap::OutOfFuel) {
            format!(
                "the transform used all of its fuel ({} units) on one record: an endless loop, or work far too heavy for one record",
                self.limits.fuel_per_record
            )
        } else if refused > 0 {
            format!(
                "the transform ran out of memory: it asked for {refused} bytes, over the limit of {} bytes",
                self.limits.memory_bytes
            )
        } else if let Some(trap) = trap {
            format!("the transform stopped with a {trap}")
        } else {
            // A host function stopped it (proc_exit, a bad pointer): the reason is enough.
            e.root_cause().to_string()
        };
        if std::env::var("RUST_BACKTRACE").as_deref() == Ok("full") {
            message.push_str(&format!("\nthe host's stack:\n{e:?}"));
        }
        (message, backtrace)
    }
}
