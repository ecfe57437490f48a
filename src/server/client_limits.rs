//! Per-client resource limits, as Redis 7 has them: `client-output-buffer-limit`,
//! `client-query-buffer-limit`, `timeout` and `maxmemory-clients`.
//!
//! This module owns the settings (parsed and rendered in Redis's syntax, changed
//! at run time by `CONFIG SET` on this node only, as Redis's own `CONFIG SET`),
//! the counters of clients closed for breaking them (INFO, `/metrics`), and the
//! table of what each connection holds in buffers, from which the biggest
//! clients are closed when their sum passes `maxmemory-clients`.
//!
//! Invariants: settings are read as one consistent copy (a connection never sees
//! half of a `CONFIG SET`); a connection's entry in the memory table is removed
//! when the connection ends, so the table's total is the sum of live clients;
//! a client picked for eviction is marked so it is counted and picked once.
//! The enforcement itself (what is accounted, when a client is closed) lives in
//! [`super::connection`].

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use crate::config::LimitsConfig;
use crate::server::commands::clients::ClientRegistry;

/// The client classes that have an output buffer limit, in Redis's order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientClass {
    /// Ordinary clients.
    Normal,
    /// Replicas (`slave`/`replica`): dkv replicates through Raft, so no RESP
    /// client is one; kept so Redis configs load and CONFIG GET reads alike.
    Replica,
    /// Clients subscribed to Pub/Sub channels (none until dkv has Pub/Sub).
    Pubsub,
}

impl ClientClass {
    const ALL: [ClientClass; 3] = [
        ClientClass::Normal,
        ClientClass::Replica,
        ClientClass::Pubsub,
    ];

    fn index(self) -> usize {
        match self {
            ClientClass::Normal => 0,
            ClientClass::Replica => 1,
            ClientClass::Pubsub => 2,
        }
    }

    /// The name CONFIG GET shows (Redis 7 still writes `slave`).
    fn name(self) -> &'static str {
        match self {
            ClientClass::Normal => "normal",
            ClientClass::Replica => "slave",
            ClientClass::Pubsub => "pubsub",
        }
    }

    fn parse(name: &str) -> Option<ClientClass> {
        match name.to_ascii_lowercase().as_str() {
            "normal" => Some(ClientClass::Normal),
            "slave" | "replica" => Some(ClientClass::Replica),
            "pubsub" => Some(ClientClass::Pubsub),
            _ => None,
        }
    }
}

/// One class's output buffer limit; 0 disables a bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutputLimit {
    /// Closed at once when its pending output reaches this many bytes.
    pub hard_bytes: u64,
    /// Closed when its pending output stays at or above this ...
    pub soft_bytes: u64,
    /// ... for longer than this many seconds.
    pub soft_seconds: u64,
}

/// Why a `client-output-buffer-limit` value was refused (Redis's texts).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OutputLimitError {
    /// Not a multiple of four words.
    #[error("Wrong number of arguments in buffer limit configuration.")]
    WrongArity,
    /// A class other than normal, slave/replica, pubsub.
    #[error("Invalid client class specified in buffer limit configuration.")]
    InvalidClass,
    /// A size or a number of seconds that does not parse.
    #[error("Error in hard, soft or soft_seconds setting in buffer limit configuration.")]
    InvalidNumber,
}

/// The output buffer limits of every class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutputLimits([OutputLimit; 3]);

impl Default for OutputLimits {
    /// Redis 7's defaults: `normal 0 0 0 slave 256mb 64mb 60 pubsub 32mb 8mb 60`.
    fn default() -> OutputLimits {
        OutputLimits([
            OutputLimit {
                hard_bytes: 0,
                soft_bytes: 0,
                soft_seconds: 0,
            },
            OutputLimit {
                hard_bytes: 256 << 20,
                soft_bytes: 64 << 20,
                soft_seconds: 60,
            },
            OutputLimit {
                hard_bytes: 32 << 20,
                soft_bytes: 8 << 20,
                soft_seconds: 60,
            },
        ])
    }
}

impl OutputLimits {
    /// The limit of `class`.
    pub fn of(&self, class: ClientClass) -> OutputLimit {
        self.0[class.index()]
    }

    /// These limits with the classes named in `text` replaced (Redis syntax:
    /// `<class> <hard> <soft> <soft-seconds>`, repeated; sizes as `64mb`);
    /// classes not named keep their limits, as in Redis.
    ///
    /// # Errors
    /// Redis's error for the first bad word; nothing is changed then.
    pub fn with(&self, text: &str) -> Result<OutputLimits, OutputLimitError> {
        let words: Vec<&str> = text.split_ascii_whitespace().collect();
        if words.len() % 4 != 0 {
            return Err(OutputLimitError::WrongArity);
        }
        let mut limits = *self;
        for group in words.chunks(4) {
            let class = ClientClass::parse(group[0]).ok_or(OutputLimitError::InvalidClass)?;
            let hard_bytes = parse_memory(group[1]).ok_or(OutputLimitError::InvalidNumber)?;
            let soft_bytes = parse_memory(group[2]).ok_or(OutputLimitError::InvalidNumber)?;
            let soft_seconds = group[3]
                .parse::<u64>()
                .map_err(|_| OutputLimitError::InvalidNumber)?;
            limits.0[class.index()] = OutputLimit {
                hard_bytes,
                soft_bytes,
                soft_seconds,
            };
        }
        Ok(limits)
    }

    /// CONFIG GET's form: every class, sizes in bytes.
    pub fn render(&self) -> String {
        ClientClass::ALL
            .iter()
            .map(|class| {
                let limit = self.of(*class);
                format!(
                    "{} {} {} {}",
                    class.name(),
                    limit.hard_bytes,
                    limit.soft_bytes,
                    limit.soft_seconds
                )
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// A size in Redis's memory syntax: digits with an optional unit, `b`, `k`
/// (1000), `kb` (1024), `m`, `mb`, `g`, `gb`, case-insensitive. None when
/// malformed or out of range.
pub fn parse_memory(text: &str) -> Option<u64> {
    let lower = text.to_ascii_lowercase();
    let digits_end = lower
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(lower.len());
    if digits_end == 0 {
        return None;
    }
    let number: u64 = lower[..digits_end].parse().ok()?;
    let unit: u64 = match &lower[digits_end..] {
        "" | "b" => 1,
        "k" => 1_000,
        "kb" => 1 << 10,
        "m" => 1_000_000,
        "mb" => 1 << 20,
        "g" => 1_000_000_000,
        "gb" => 1 << 30,
        _ => return None,
    };
    number.checked_mul(unit)
}

/// `maxmemory-clients`: bytes, or a percentage of `maxmemory`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MaxMemoryClients {
    /// An absolute bound (0: no bound).
    Bytes(u64),
    /// A share of `maxmemory` (no bound while `maxmemory` is 0).
    Percent(u64),
}

impl MaxMemoryClients {
    /// Parses CONFIG SET's value: a memory size or `N%` (1–100).
    pub fn parse(text: &str) -> Option<MaxMemoryClients> {
        match text.strip_suffix('%') {
            Some(percent) => {
                let percent: u64 = percent.parse().ok()?;
                (1..=100)
                    .contains(&percent)
                    .then_some(MaxMemoryClients::Percent(percent))
            }
            None => parse_memory(text).map(MaxMemoryClients::Bytes),
        }
    }

    /// The bound in bytes given `maxmemory` (0: none).
    pub fn bytes(self, maxmemory: u64) -> u64 {
        match self {
            MaxMemoryClients::Bytes(bytes) => bytes,
            MaxMemoryClients::Percent(percent) => maxmemory / 100 * percent,
        }
    }

    /// CONFIG GET's form.
    pub fn render(self) -> String {
        match self {
            MaxMemoryClients::Bytes(bytes) => bytes.to_string(),
            MaxMemoryClients::Percent(percent) => format!("{percent}%"),
        }
    }
}

/// Smallest `client-query-buffer-limit` Redis accepts (1 MiB).
pub const MIN_QUERY_BUFFER_LIMIT_BYTES: u64 = 1 << 20;
/// Largest `timeout` Redis accepts, in seconds.
pub const MAX_IDLE_TIMEOUT_SECONDS: u64 = i32::MAX as u64;

/// The client limits in force; one consistent copy per read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientSettings {
    /// `client-output-buffer-limit`.
    pub output: OutputLimits,
    /// `client-query-buffer-limit`, in bytes.
    pub query_buffer_limit_bytes: u64,
    /// `timeout`: idle seconds before a client is closed (0: never).
    pub idle_timeout_seconds: u64,
    /// `maxmemory-clients`.
    pub maxmemory_clients: MaxMemoryClients,
    /// Pending output at which a connection stops reading and running requests
    /// until the client has read some, when no output limit bounds it.
    pub output_backpressure_bytes: u64,
}

impl Default for ClientSettings {
    fn default() -> ClientSettings {
        ClientSettings::from(&LimitsConfig::default())
    }
}

impl From<&LimitsConfig> for ClientSettings {
    fn from(limits: &LimitsConfig) -> ClientSettings {
        ClientSettings {
            // Validated when the config was loaded; an invalid value cannot
            // reach here through `Config::validate`.
            output: OutputLimits::default()
                .with(&limits.client_output_buffer_limit)
                .unwrap_or_default(),
            query_buffer_limit_bytes: limits.client_query_buffer_limit_bytes,
            idle_timeout_seconds: limits.client_idle_timeout_seconds,
            maxmemory_clients: MaxMemoryClients::Bytes(limits.maxmemory_clients_bytes),
            output_backpressure_bytes: limits.client_output_backpressure_bytes,
        }
    }
}

impl ClientSettings {
    /// The idle timeout, None when disabled.
    pub fn idle_timeout(&self) -> Option<Duration> {
        (self.idle_timeout_seconds > 0).then(|| Duration::from_secs(self.idle_timeout_seconds))
    }
}

/// Why a connection was closed by a limit (log text and counters).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitClose {
    /// Output buffer past the hard limit.
    OutputHard,
    /// Output buffer over the soft limit for too long.
    OutputSoft,
    /// Query buffer past `client-query-buffer-limit`.
    QueryBuffer,
    /// Idle longer than `timeout`.
    Idle,
    /// Picked by `maxmemory-clients`.
    Evicted,
}

/// Clients closed by each limit since start.
#[derive(Debug, Default)]
pub struct LimitStats {
    /// Output buffer limit (hard or soft).
    pub output_limit_disconnections: AtomicU64,
    /// Query buffer limit.
    pub query_limit_disconnections: AtomicU64,
    /// Idle timeout.
    pub idle_disconnections: AtomicU64,
    /// `maxmemory-clients` evictions (INFO's `evicted_clients`).
    pub evicted_clients: AtomicU64,
}

impl LimitStats {
    /// Zeroes every counter (CONFIG RESETSTAT).
    pub fn reset(&self) {
        for counter in [
            &self.output_limit_disconnections,
            &self.query_limit_disconnections,
            &self.idle_disconnections,
            &self.evicted_clients,
        ] {
            counter.store(0, Ordering::Relaxed);
        }
    }
}

struct MemoryEntry {
    bytes: Arc<AtomicUsize>,
    evicted: Arc<AtomicBool>,
}

/// The client-limit state shared by every connection of a node.
pub struct ClientLimits {
    settings: RwLock<ClientSettings>,
    /// Counters of closed clients.
    pub stats: LimitStats,
    memory: Mutex<BTreeMap<u64, MemoryEntry>>,
    total_bytes: AtomicUsize,
    metrics: Option<crate::metrics::ClientLimitCounters>,
    registry: Option<Arc<ClientRegistry>>,
    last_eviction_log_ms: AtomicU64,
    generation: AtomicU64,
}

impl Default for ClientLimits {
    fn default() -> ClientLimits {
        ClientLimits::new(ClientSettings::default(), None, None)
    }
}

impl ClientLimits {
    /// Limits starting at `settings`, counting closes in `metrics` if given.
    /// Evicted clients are closed through `registry`'s kill switches.
    pub fn new(
        settings: ClientSettings,
        metrics: Option<crate::metrics::ClientLimitCounters>,
        registry: Option<Arc<ClientRegistry>>,
    ) -> ClientLimits {
        ClientLimits {
            settings: RwLock::new(settings),
            stats: LimitStats::default(),
            memory: Mutex::default(),
            total_bytes: AtomicUsize::new(0),
            metrics,
            registry,
            last_eviction_log_ms: AtomicU64::new(0),
            generation: AtomicU64::new(0),
        }
    }

    /// Closes the clients `ids` (picked by `maxmemory-clients`), counting
    /// and logging (rate-limited) each.
    pub fn evict(&self, ids: &[u64]) {
        for _ in ids {
            self.count_close(LimitClose::Evicted);
        }
        if let Some(registry) = &self.registry {
            registry.kill(|view| ids.contains(&view.id));
        }
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let last = self.last_eviction_log_ms.load(Ordering::Relaxed);
        if now_ms.saturating_sub(last) >= 1_000
            && self
                .last_eviction_log_ms
                .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                clients = ?ids,
                total_bytes = self.total_bytes(),
                "evicting clients: client buffers over maxmemory-clients"
            );
        }
    }

    /// The settings in force.
    pub fn settings(&self) -> ClientSettings {
        *self.settings.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Changes with every [`ClientLimits::set`]: a connection re-reads the
    /// settings only when this moved (a load, not a lock, per batch).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Replaces the settings (CONFIG SET).
    pub fn set(&self, settings: ClientSettings) {
        *self.settings.write().unwrap_or_else(|e| e.into_inner()) = settings;
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Counts a client closed for `why`.
    pub fn count_close(&self, why: LimitClose) {
        let counter = match why {
            LimitClose::OutputHard | LimitClose::OutputSoft => {
                &self.stats.output_limit_disconnections
            }
            LimitClose::QueryBuffer => &self.stats.query_limit_disconnections,
            LimitClose::Idle => &self.stats.idle_disconnections,
            LimitClose::Evicted => &self.stats.evicted_clients,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if let Some(metrics) = &self.metrics {
            metrics.count(why);
        }
    }

    fn memory(&self) -> MutexGuard<'_, BTreeMap<u64, MemoryEntry>> {
        self.memory.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Enters client `id` in the memory table; removed when the slot drops.
    pub fn track(self: &Arc<Self>, id: u64) -> MemorySlot {
        let bytes = Arc::new(AtomicUsize::new(0));
        let evicted = Arc::new(AtomicBool::new(false));
        self.memory().insert(
            id,
            MemoryEntry {
                bytes: bytes.clone(),
                evicted: evicted.clone(),
            },
        );
        MemorySlot {
            limits: self.clone(),
            id,
            bytes,
            evicted,
        }
    }

    /// The sum of every client's buffers, in bytes.
    pub fn total_bytes(&self) -> usize {
        self.total_bytes.load(Ordering::Relaxed)
    }

    /// Picks the biggest clients, not yet picked, whose buffers together bring
    /// the total back under `bound_bytes`, marks them evicted and returns their
    /// ids (Redis 7 closes the biggest clients first).
    fn pick_evictions(&self, bound_bytes: usize) -> Vec<u64> {
        let memory = self.memory();
        let mut candidates: Vec<(usize, u64, &MemoryEntry)> = memory
            .iter()
            .filter(|(_, entry)| !entry.evicted.load(Ordering::Relaxed))
            .map(|(id, entry)| (entry.bytes.load(Ordering::Relaxed), *id, entry))
            .collect();
        candidates.sort_by_key(|c| std::cmp::Reverse(c.0));
        // Clients already picked free their buffers as they close.
        let leaving: usize = memory
            .values()
            .filter(|entry| entry.evicted.load(Ordering::Relaxed))
            .map(|entry| entry.bytes.load(Ordering::Relaxed))
            .sum();
        let mut excess = self
            .total_bytes()
            .saturating_sub(bound_bytes)
            .saturating_sub(leaving);
        let mut picked = Vec::new();
        for (bytes, id, entry) in candidates {
            if excess == 0 || bytes == 0 {
                break;
            }
            entry.evicted.store(true, Ordering::Relaxed);
            excess = excess.saturating_sub(bytes);
            picked.push(id);
        }
        picked
    }
}

/// What a connection is held to: the shared limits, and its own entry in
/// the memory table (None when it is not counted, as in unit tests).
pub struct ClientAccount {
    /// The node's client limits.
    pub limits: Arc<ClientLimits>,
    /// This connection's entry.
    pub slot: Option<MemorySlot>,
}

impl ClientAccount {
    /// Counted in `limits`' memory table as client `id`.
    pub fn tracked(limits: Arc<ClientLimits>, id: u64) -> ClientAccount {
        let slot = Some(limits.track(id));
        ClientAccount { limits, slot }
    }

    /// Held to `limits` but not counted towards `maxmemory-clients`.
    pub fn untracked(limits: Arc<ClientLimits>) -> ClientAccount {
        ClientAccount { limits, slot: None }
    }
}

/// One connection's entry in the memory table.
pub struct MemorySlot {
    limits: Arc<ClientLimits>,
    id: u64,
    bytes: Arc<AtomicUsize>,
    evicted: Arc<AtomicBool>,
}

impl MemorySlot {
    /// Records that the connection now holds `bytes` in buffers; returns the
    /// ids of clients to close when the sum passes `bound_bytes` (0: no bound).
    pub fn update(&self, bytes: usize, bound_bytes: u64) -> Vec<u64> {
        let previous = self.bytes.swap(bytes, Ordering::Relaxed);
        if bytes == previous && bound_bytes == 0 {
            return Vec::new();
        }
        if bytes >= previous {
            self.limits
                .total_bytes
                .fetch_add(bytes - previous, Ordering::Relaxed);
        } else {
            self.limits
                .total_bytes
                .fetch_sub(previous - bytes, Ordering::Relaxed);
        }
        let bound = usize::try_from(bound_bytes).unwrap_or(usize::MAX);
        if bound == 0 || self.limits.total_bytes() <= bound {
            return Vec::new();
        }
        self.limits.pick_evictions(bound)
    }

    /// Whether this client was picked for eviction.
    pub fn evicted(&self) -> bool {
        self.evicted.load(Ordering::Relaxed)
    }

    /// This client's id.
    pub fn id(&self) -> u64 {
        self.id
    }
}

impl Drop for MemorySlot {
    fn drop(&mut self) {
        self.update(0, 0);
        self.limits.memory().remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_sizes_parse_as_redis_does() {
        assert_eq!(parse_memory("0"), Some(0));
        assert_eq!(parse_memory("64mb"), Some(64 << 20));
        assert_eq!(parse_memory("64MB"), Some(64 << 20));
        assert_eq!(parse_memory("1k"), Some(1000));
        assert_eq!(parse_memory("1kb"), Some(1024));
        assert_eq!(parse_memory("2g"), Some(2_000_000_000));
        assert_eq!(parse_memory("1gb"), Some(1 << 30));
        assert_eq!(parse_memory("12b"), Some(12));
        for bad in ["", "mb", "64xb", "-1", "1.5mb", "99999999999999999999"] {
            assert_eq!(parse_memory(bad), None, "{bad}");
        }
    }

    #[test]
    fn output_limits_default_and_render_as_redis_7() {
        assert_eq!(
            OutputLimits::default().render(),
            "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60"
        );
    }

    #[test]
    fn setting_one_class_keeps_the_others() {
        let limits = OutputLimits::default()
            .with("normal 64mb 32mb 10")
            .expect("valid");
        assert_eq!(
            limits.render(),
            "normal 67108864 33554432 10 slave 268435456 67108864 60 pubsub 33554432 8388608 60"
        );
        let limits = limits
            .with("replica 1mb 1mb 1 PUBSUB 0 0 0")
            .expect("valid");
        assert_eq!(
            limits.render(),
            "normal 67108864 33554432 10 slave 1048576 1048576 1 pubsub 0 0 0"
        );
    }

    #[test]
    fn bad_output_limits_get_redis_errors() {
        let limits = OutputLimits::default();
        let cases = [
            ("normal 64mb 32mb", OutputLimitError::WrongArity),
            ("foo 64mb 32mb 1", OutputLimitError::InvalidClass),
            ("normal 64xb 32mb 1", OutputLimitError::InvalidNumber),
            ("normal 64mb 32mb -1", OutputLimitError::InvalidNumber),
        ];
        for (text, error) in cases {
            assert_eq!(limits.with(text), Err(error.clone()), "{text}");
        }
        assert_eq!(
            OutputLimitError::WrongArity.to_string(),
            "Wrong number of arguments in buffer limit configuration."
        );
    }

    #[test]
    fn maxmemory_clients_takes_bytes_or_a_percentage() {
        assert_eq!(
            MaxMemoryClients::parse("5%"),
            Some(MaxMemoryClients::Percent(5))
        );
        assert_eq!(
            MaxMemoryClients::parse("1gb"),
            Some(MaxMemoryClients::Bytes(1 << 30))
        );
        assert_eq!(MaxMemoryClients::parse("0%"), None);
        assert_eq!(MaxMemoryClients::parse("101%"), None);
        assert_eq!(MaxMemoryClients::Percent(5).bytes(1000), 50);
        assert_eq!(MaxMemoryClients::Percent(5).bytes(0), 0);
        assert_eq!(MaxMemoryClients::Percent(5).render(), "5%");
    }

    /// Past the bound, the biggest clients are picked until the rest fits, and
    /// each is picked once; a closed client's bytes leave the total.
    #[test]
    fn eviction_picks_the_biggest_clients_once() {
        let limits = Arc::new(ClientLimits::default());
        let small = limits.track(1);
        let big = limits.track(2);
        let medium = limits.track(3);
        assert!(small.update(10, 1000).is_empty());
        assert!(big.update(700, 1000).is_empty());
        assert_eq!(medium.update(400, 1000), vec![2]);
        assert!(big.evicted() && !medium.evicted() && !small.evicted());
        assert!(
            medium.update(401, 1000).is_empty(),
            "the big one is already picked"
        );
        drop(big);
        assert_eq!(limits.total_bytes(), 411);
        assert!(small.update(10, 0).is_empty(), "0 means no bound");
    }
}
