//! `testdata/dynamic/transform.go`: the record's key is a command.

use std::cell::RefCell;
use std::io::Write;

use redpanda_transform_sdk::{on_record_written, RecordWriter, WriteEvent};

thread_local! {
    /// Kept across records, as the Go module's global buffer.
    static ALLOCATED: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

fn main() {
    on_record_written(
        |event: WriteEvent, out: &mut RecordWriter| -> Result<(), String> {
            let value = event.record.value().unwrap_or_default();
            match event.record.key().unwrap_or_default() {
                b"poison" => Err("☠︎".into()),
                b"bomb" => panic!("💥"),
                // Rust's stdout keeps a line until its newline: flushed, the
                // value is one write, as Go's unbuffered os.Stdout makes it.
                b"print" => {
                    let mut stdout = std::io::stdout().lock();
                    stdout
                        .write_all(value)
                        .and_then(|()| stdout.flush())
                        .map_err(|e| e.to_string())
                }
                b"loop" => loop {
                    std::hint::black_box(());
                },
                b"allocate" => {
                    let amount = u32::from_le_bytes(value[..4].try_into().expect("4 bytes"));
                    ALLOCATED.with_borrow_mut(|a| a.reserve(amount as usize));
                    Ok(())
                }
                b"zero" => Ok(()),
                b"mirror" => out.write(&event.record).map_err(|e| e.to_string()),
                b"double" => {
                    out.write(&event.record).map_err(|e| e.to_string())?;
                    out.write(&event.record).map_err(|e| e.to_string())
                }
                key => {
                    eprintln!("unknown record: {}", String::from_utf8_lossy(key));
                    Ok(())
                }
            }
        },
    )
}
