//! `ingress-load`: the ingress benchmark's helpers, run by `scripts/bench-ingress` beside a
//! `plaidhook serve` (or `bench-ingress-floor`) process of its own.
//!
//! | command | what |
//! |---------|------|
//! | `sign <state-file> <dir>` | one signed SYNC_UPDATES_AVAILABLE webhook, signed with the current key of the simulator whose state file is given: `<dir>/webhook.lua` (for `wrk -s`), `<dir>/body.json`, `<dir>/verification.txt` |
//! | `open <url> <rate> <seconds> <dir>` | open-loop load over 32 keep-alive connections: sends scheduled at fixed times (`rate`/s), each answer measured from its *scheduled* time; prints one JSON line |
//! | `cleanup <namespace>` | deletes the namespace's exchanges and queues |
//!
//! Open loop, because a generator that waits for answers before sending slows down with the
//! service and hides its stalls (coordinated omission). One thread: the generator should take
//! as little as it can of the cores it shares with the service.

use std::time::Duration;

use anyhow::Context;
use plaidhook::sim::keys::KeyRing;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["sign", state_file, dir] => sign(state_file, dir),
        ["open", url, rate, seconds, dir] => {
            runtime.block_on(open_loop(url, rate.parse()?, seconds.parse()?, dir))
        }
        ["cleanup", namespace] => runtime.block_on(cleanup(namespace)),
        _ => anyhow::bail!(
            "usage: ingress-load sign <state-file> <dir> | open <url> <rate> <seconds> <dir> | cleanup <namespace>"
        ),
    }
}

fn sign(state_file: &str, dir: &str) -> anyhow::Result<()> {
    #[derive(serde::Deserialize)]
    struct State {
        keys: KeyRing,
    }
    let state: State = serde_json::from_slice(
        &std::fs::read(state_file).with_context(|| format!("reading {state_file}"))?,
    )
    .context("the simulator's state file")?;
    // Pretty-printed, like Plaid's.
    let body = serde_json::to_vec_pretty(&serde_json::json!({
        "webhook_type": "TRANSACTIONS",
        "webhook_code": "SYNC_UPDATES_AVAILABLE",
        "item_id": "bench-ingress-item",
        "initial_update_complete": true,
        "historical_update_complete": true,
        "environment": "sandbox"
    }))?;
    let verification = state
        .keys
        .current()
        .sign_webhook(&body, chrono::Utc::now().timestamp());
    let body_text = String::from_utf8(body)?;
    anyhow::ensure!(
        !body_text.contains("]==]"),
        "the body would end the Lua string"
    );
    let dir = std::path::Path::new(dir);
    std::fs::write(
        dir.join("webhook.lua"),
        format!(
            "wrk.method = \"POST\"\n\
             wrk.headers[\"Content-Type\"] = \"application/json\"\n\
             wrk.headers[\"Plaid-Verification\"] = \"{verification}\"\n\
             wrk.body = [==[{body_text}]==]\n"
        ),
    )?;
    std::fs::write(dir.join("body.json"), &body_text)?;
    std::fs::write(dir.join("verification.txt"), &verification)?;
    Ok(())
}

/// Keep-alive connections of the open-loop generator (wrk's `-c` of the saturated phase).
const CONNECTIONS: usize = 32;

async fn open_loop(url: &str, rate: f64, seconds: f64, dir: &str) -> anyhow::Result<()> {
    let dir = std::path::Path::new(dir);
    let body = std::fs::read(dir.join("body.json"))?;
    let verification = std::fs::read_to_string(dir.join("verification.txt"))?;
    let (host, path) = url
        .strip_prefix("http://")
        .and_then(|rest| rest.split_once('/'))
        .context("an http:// URL with a path")?;
    // The whole request, built once: a generator as cheap as wrk's leaves the cores to the
    // service (an HTTP client library costs several times more per request).
    let mut request = format!(
        "POST /{path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
         Plaid-Verification: {verification}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(&body);
    let request: &'static [u8] = Box::leak(request.into_boxed_slice());
    let host: &'static str = Box::leak(host.to_owned().into_boxed_str());
    let count = (rate * seconds) as usize;
    let interval = Duration::from_secs_f64(1.0 / rate);
    let start = tokio::time::Instant::now();
    // A fixed set of keep-alive connections, as a webhook sender has: each sender takes the
    // next scheduled send when it is free. A send that waits for a free connection is late,
    // and the wait counts in its latency (measured from the scheduled time).
    let (schedule, queue) = tokio::sync::mpsc::unbounded_channel::<tokio::time::Instant>();
    let queue = std::sync::Arc::new(tokio::sync::Mutex::new(queue));
    let senders: Vec<_> = (0..CONNECTIONS)
        .map(|_| {
            let queue = queue.clone();
            tokio::spawn(async move {
                let mut results = Vec::new();
                let mut connection: Option<Connection> = None;
                loop {
                    let Some(scheduled) = queue.lock().await.recv().await else {
                        return results;
                    };
                    let answer = match connection.as_mut() {
                        Some(c) => c.exchange(request).await,
                        None => match Connection::open(host).await {
                            Ok(c) => connection.insert(c).exchange(request).await,
                            Err(e) => Err(e),
                        },
                    };
                    let ok = match answer {
                        Ok(status) => status == 200,
                        Err(_) => {
                            connection = None;
                            false
                        }
                    };
                    results.push((ok, scheduled.elapsed()));
                }
            })
        })
        .collect();
    for i in 0..count {
        let scheduled = start + interval.mul_f64(i as f64);
        tokio::time::sleep_until(scheduled).await;
        schedule.send(scheduled)?;
    }
    drop(schedule);
    let mut latencies = Vec::with_capacity(count);
    let mut errors = 0usize;
    for sender in senders {
        for (ok, latency) in sender.await? {
            if ok {
                latencies.push(latency);
            } else {
                errors += 1;
            }
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    latencies.sort();
    let ms = |d: Option<&Duration>| d.map(|d| d.as_secs_f64() * 1e3);
    let pct = |p: f64| {
        ms(latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1))))
    };
    println!(
        "{}",
        serde_json::json!({
            "offered_rate": rate,
            "sent": count,
            "ok": latencies.len(),
            "errors": errors,
            "achieved_rate": latencies.len() as f64 / elapsed,
            "p50_ms": pct(0.50),
            "p99_ms": pct(0.99),
            "max_ms": ms(latencies.last()),
        })
    );
    Ok(())
}

/// One keep-alive HTTP/1.1 connection: a request, then its whole answer, then the next.
struct Connection {
    stream: tokio::net::TcpStream,
    buffer: Vec<u8>,
}

impl Connection {
    async fn open(host: &str) -> std::io::Result<Self> {
        let stream = tokio::net::TcpStream::connect(host).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            buffer: Vec::with_capacity(4096),
        })
    }

    /// Sends `request` and reads the answer (headers, then `Content-Length` bytes of body);
    /// returns its status.
    async fn exchange(&mut self, request: &[u8]) -> std::io::Result<u16> {
        use tokio::io::AsyncWriteExt;
        let invalid = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what);
        self.stream.write_all(request).await?;
        self.buffer.clear();
        loop {
            if let Some(end) = self.buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = std::str::from_utf8(&self.buffer[..end]).map_err(|_| invalid("head"))?;
                let status = head
                    .get(9..12)
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| invalid("status"))?;
                let length: usize = head
                    .lines()
                    .find_map(|line| {
                        let (name, value) = line.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse().ok())?
                    })
                    .ok_or_else(|| invalid("content-length"))?;
                while self.buffer.len() < end + 4 + length {
                    self.read_some().await?;
                }
                return Ok(status);
            }
            self.read_some().await?;
        }
    }

    async fn read_some(&mut self) -> std::io::Result<()> {
        use tokio::io::AsyncReadExt;
        if self.stream.read_buf(&mut self.buffer).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        Ok(())
    }
}

async fn cleanup(namespace: &str) -> anyhow::Result<()> {
    let topology = plaidhook::broker::Topology::new(namespace, 1);
    let channel = testkit::broker::amqp_channel().await?;
    topology.delete(&channel).await?;
    Ok(())
}
