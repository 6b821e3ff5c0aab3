//! Every log line of the test process, captured from before the app starts, so a test can
//! assert what never reaches a log (tokens, bodies, `client_user_id`).

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

/// Every log line of this test process, captured from before the app starts.
pub fn captured() -> String {
    String::from_utf8_lossy(&log_buffer().lock().unwrap()).into_owned()
}

fn log_buffer() -> &'static Arc<Mutex<Vec<u8>>> {
    static BUFFER: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    BUFFER.get_or_init(Default::default)
}

struct BufferWriter(Arc<Mutex<Vec<u8>>>);

impl Write for BufferWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs plaidhook's own subscriber (the same body guard as production) at `trace` for
/// everything, writing into the capture, so the app's `init_logging` finds one installed and
/// leaves it.
pub fn capture() {
    let buffer = log_buffer().clone();
    let _ = plaidhook::telemetry::install(
        tracing_subscriber::EnvFilter::new("trace"),
        plaidhook::telemetry::LogFormat::Pretty,
        false,
        move || BufferWriter(buffer.clone()),
    );
}
