//! SSE fan-out: many clients on one `vexil serve`, how fast a change reaches all of them, and what each costs.
//!
//! ```text
//! sse-fanout --server http://127.0.0.1:7080 --token <admin token> --key <SDK key of dev> --pid <server pid> \
//!            [--clients 10000] [--changes 20] [--flag ops.fanout] [--write-server http://…]
//! ```
//! Opens the clients (each reads the snapshot first), reads the server's resident memory before and after,
//! then makes `--changes` writes one after another and times each from just before the write request to the
//! moment each client has read the change. `scripts/bench-sse.sh` runs it end to end.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

struct Options {
    server: String,
    /// Where writes go; the stream server unless given (two instances on one Redis).
    write_server: Option<String>,
    token: String,
    key: String,
    pid: u32,
    clients: usize,
    changes: usize,
    flag: String,
}

fn options() -> anyhow::Result<Options> {
    let mut arguments = std::env::args().skip(1);
    let mut options = Options {
        server: String::new(),
        write_server: None,
        token: String::new(),
        key: String::new(),
        pid: 0,
        clients: 10_000,
        changes: 20,
        flag: "ops.fanout".into(),
    };
    while let Some(name) = arguments.next() {
        let value = arguments.next().with_context(|| format!("{name} needs a value"))?;
        match name.as_str() {
            "--server" => options.server = value.trim_end_matches('/').to_owned(),
            "--write-server" => options.write_server = Some(value.trim_end_matches('/').to_owned()),
            "--token" => options.token = value,
            "--key" => options.key = value,
            "--pid" => options.pid = value.parse()?,
            "--clients" => options.clients = value.parse()?,
            "--changes" => options.changes = value.parse()?,
            "--flag" => options.flag = value,
            other => bail!("unknown option {other}"),
        }
    }
    if options.server.is_empty() || options.token.is_empty() || options.key.is_empty() || options.pid == 0 {
        bail!("--server, --token, --key and --pid are required");
    }
    Ok(options)
}

fn resident_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:")).context("no VmRSS")?;
    Ok(line.split_whitespace().nth(1).context("no number")?.parse()?)
}

/// One client: connects, reads the snapshot, then reports each change's revision and arrival time.
///
/// It scans raw bytes for `id: ` lines instead of decoding events, so the harness spends as little CPU as
/// possible next to the server it measures.
async fn client(
    address: String,
    request: String,
    ready: Arc<AtomicUsize>,
    arrivals: mpsc::UnboundedSender<(u64, Instant)>,
) -> anyhow::Result<()> {
    let mut stream = TcpStream::connect(&address).await?;
    stream.write_all(request.as_bytes()).await?;
    let mut buffer = vec![0u8; 16 * 1024];
    let mut pending: Vec<u8> = Vec::new();
    let mut snapshot_seen = false;
    loop {
        let read = stream.read(&mut buffer).await?;
        if read == 0 {
            return Ok(());
        }
        let arrived = Instant::now();
        pending.extend_from_slice(&buffer[..read]);
        // Only complete lines are examined; the rest waits for the next read.
        let Some(last_newline) = pending.iter().rposition(|byte| *byte == b'\n') else { continue };
        for line in pending[..last_newline].split(|byte| *byte == b'\n') {
            if line == b"event: snapshot" {
                snapshot_seen = true;
                ready.fetch_add(1, Ordering::SeqCst);
            } else if let Some(id) = line.strip_prefix(b"id: ") {
                let revision: u64 = std::str::from_utf8(id)?.trim().parse()?;
                if snapshot_seen {
                    // The id line before `event: snapshot` is the snapshot's; changes come after it.
                    let _ = arrivals.send((revision, arrived));
                }
            }
        }
        pending.drain(..=last_newline);
    }
}

/// The server's CPU time so far (user, system), from `/proc/<pid>/stat`, in clock ticks of 10 ms.
fn cpu_ticks(pid: u32) -> anyhow::Result<(u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let fields: Vec<&str> = stat.rsplit_once(')').context("no command name")?.1.split_whitespace().collect();
    Ok((fields[11].parse::<u64>()?, fields[12].parse::<u64>()?))
}

fn percentile(sorted: &[Duration], quantile: f64) -> Duration {
    sorted[((sorted.len() as f64 * quantile) as usize).min(sorted.len() - 1)]
}

fn main() -> anyhow::Result<()> {
    let options = options()?;
    // One thread for all clients: the harness takes at most one core from the server it measures.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(run(options))
}

async fn run(options: Options) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let state_path = format!("{}/api/flags/{}/environments/dev", options.write_server.as_deref().unwrap_or(&options.server), options.flag);
    let address = options.server.trim_start_matches("http://").to_owned();
    let request = format!(
        "GET /api/feature-flags/stream?env=dev&token={} HTTP/1.1\r\nHost: {address}\r\nAccept: text/event-stream\r\n\r\n",
        options.key
    );
    let before = resident_kib(options.pid)?;
    let ready = Arc::new(AtomicUsize::new(0));
    let (sender, mut arrivals) = mpsc::unbounded_channel();
    let started = Instant::now();
    for opened in 1..=options.clients {
        let (address, request, client_ready, client_sender) = (address.clone(), request.clone(), ready.clone(), sender.clone());
        tokio::spawn(async move {
            if let Err(error) = client(address, request, client_ready, client_sender).await {
                eprintln!("client failed: {error}");
            }
        });
        // Pace connection set-up (at most 256 waiting for their snapshot) so the listen backlog never overflows.
        while opened > ready.load(Ordering::SeqCst) + 256 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    while ready.load(Ordering::SeqCst) < options.clients {
        if started.elapsed() > Duration::from_secs(120) {
            bail!("only {} of {} clients connected", ready.load(Ordering::SeqCst), options.clients);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("{} clients connected and read the snapshot in {:?}", options.clients, started.elapsed());
    // Let allocator and buffers settle before reading memory.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = resident_kib(options.pid)?;
    println!(
        "server resident memory: {before} KiB before, {after} KiB with the clients: {:.2} KiB per client",
        (after.saturating_sub(before)) as f64 / options.clients as f64
    );

    let current: serde_json::Value = http.get(&state_path).bearer_auth(&options.token).send().await?.json().await?;
    let mut value = current["state"]["serve"]["value"].as_u64().unwrap_or(0);
    let mut samples = Vec::with_capacity(options.clients * options.changes);
    let cpu_before = cpu_ticks(options.pid)?;
    let mut slowest = Vec::new();
    for _ in 0..options.changes {
        value += 1;
        let written = Instant::now();
        let response = http
            .put(&state_path)
            .bearer_auth(&options.token)
            .json(&serde_json::json!({"enabled": true, "serve": {"value": value}}))
            .send()
            .await?;
        if !response.status().is_success() {
            bail!("write failed: {}", response.text().await?);
        }
        let mut received = 0;
        let mut revision = None;
        while received < options.clients {
            let (arrived_revision, at) = tokio::time::timeout(Duration::from_secs(30), arrivals.recv()).await?.context("clients gone")?;
            if *revision.get_or_insert(arrived_revision) != arrived_revision {
                bail!("clients saw different revisions for one change");
            }
            samples.push(at.duration_since(written));
            received += 1;
        }
        slowest.push(samples.last().copied().unwrap_or_default());
    }
    let cpu_after = cpu_ticks(options.pid)?;
    let (user, system) =
        (Duration::from_millis((cpu_after.0 - cpu_before.0) * 10), Duration::from_millis((cpu_after.1 - cpu_before.1) * 10));
    let cpu_used = user + system;
    samples.sort();
    slowest.sort();
    println!(
        "server CPU for {} changes: {cpu_used:?} ({user:?} user, {system:?} system), {:.1} µs per delivery ({:?} per change to all clients, over its cores)",
        options.changes,
        cpu_used.as_secs_f64() * 1e6 / (options.changes * options.clients) as f64,
        cpu_used / options.changes as u32
    );
    println!(
        "write → delivery over {} deliveries ({} changes × {} clients): p50 {:?}  p99 {:?}  max {:?}; last client per change: median {:?}",
        samples.len(),
        options.changes,
        options.clients,
        percentile(&samples, 0.50),
        percentile(&samples, 0.99),
        samples[samples.len() - 1],
        percentile(&slowest, 0.5)
    );
    Ok(())
}
