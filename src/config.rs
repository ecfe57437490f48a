//! The node's YAML config: the typed structs (serde-saphyr), their defaults, loading
//! from a file, command-line overrides, and validation.
//!
//! Every error names the file and the key at fault (`configs/node1.yaml: peers[1].id:
//! duplicate node id 2`), with line and column when the YAML parser knows them, so an
//! operator never has to guess which line is wrong. Unknown keys are refused
//! (`deny_unknown_fields`): a typo must not silently fall back to a default.
//!
//! This module only reads the config file; it never touches the network or the data dir.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Smallest InstallSnapshot chunk (smaller ones cost a request per few records).
pub const MIN_SNAPSHOT_CHUNK_BYTES: usize = 4096;
/// Largest InstallSnapshot chunk: well under the peer route's body cap (64 MiB).
pub const MAX_SNAPSHOT_CHUNK_BYTES: usize = 32 << 20;

/// How a follower treats a write from a client.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FollowerWrites {
    /// Forward to the leader over peer RPC and relay the reply (plain clients work).
    #[default]
    Forward,
    /// Answer `-MOVED 0 <leader resp addr>` (cluster-aware clients).
    Redirect,
}

/// One other cluster member.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    /// The peer's node id.
    pub id: u64,
    /// Where the peer serves RESP (reported to clients, e.g. in MOVED).
    pub resp_addr: SocketAddr,
    /// Where the peer serves HTTP (peer RPC).
    pub http_addr: SocketAddr,
}

/// Raft timings and batch bounds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RaftConfig {
    /// Length of one logical tick.
    pub tick_ms: u64,
    /// Lower bound of the randomized election timeout, in ticks.
    pub election_timeout_min_ticks: u32,
    /// Upper bound (exclusive), in ticks.
    pub election_timeout_max_ticks: u32,
    /// Leader heartbeat interval, in ticks.
    pub heartbeat_interval_ticks: u32,
    /// Most entries in one AppendEntries.
    pub max_entries_per_append: usize,
    /// Most payload bytes in one AppendEntries; also the largest single write.
    pub max_bytes_per_append: usize,
    /// Pre-vote (Raft thesis §9.6): a node rejoining after a partition does not
    /// raise the term and depose a healthy leader.
    pub pre_vote: bool,
    /// Check-quorum: a leader that has not heard from a majority within an
    /// election timeout steps down (and stops serving).
    pub check_quorum: bool,
    /// Leader-lease reads (thesis §6.4.1): skip the heartbeat round of a read
    /// while a majority acknowledged the leader recently. Relies on bounded clock
    /// drift; needs `check_quorum`.
    pub lease_reads: bool,
    /// How far (in ticks) two nodes' clocks may drift apart within an election
    /// timeout; the lease is shortened by it.
    pub clock_drift_bound_ticks: u32,
    /// Take a snapshot of the state machine (and compact the log behind it)
    /// once this many entries were applied since the last one; 0 never does.
    pub snapshot_every_entries: u64,
    /// ... and once the entries applied since then carry at least this
    /// percentage of the last snapshot's bytes (Redis's
    /// `auto-aof-rewrite-percentage`), so snapshot work stays in proportion
    /// to the writes; 0 drops this condition.
    pub snapshot_log_growth_percent: u64,
    /// Payload bytes per InstallSnapshot chunk streamed to a lagging follower.
    pub snapshot_chunk_bytes: usize,
    /// With pre-vote: the most a peer's message may raise the term in one step
    /// unless a majority of voters shows the higher term (0: no limit).
    pub max_term_jump: u64,
    /// Largest snapshot payload accepted from the leader, in bytes; a longer
    /// stream is refused.
    pub max_snapshot_receive_bytes: u64,
}

impl Default for RaftConfig {
    fn default() -> Self {
        RaftConfig {
            tick_ms: 10,
            election_timeout_min_ticks: 30,
            election_timeout_max_ticks: 60,
            heartbeat_interval_ticks: 5,
            max_entries_per_append: 512,
            max_bytes_per_append: 16 << 20,
            pre_vote: true,
            check_quorum: true,
            lease_reads: false,
            clock_drift_bound_ticks: 5,
            snapshot_every_entries: 100_000,
            snapshot_log_growth_percent: 100,
            snapshot_chunk_bytes: 1 << 20,
            max_term_jump: 1000,
            max_snapshot_receive_bytes: 16 << 30,
        }
    }
}

/// Bounds on client-facing resources.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Most simultaneous client connections (Redis: maxclients).
    pub max_clients: usize,
    /// Largest bulk string accepted from a client (Redis: proto-max-bulk-len).
    pub max_bulk_len_bytes: usize,
    /// Most elements in one request array.
    pub max_request_args: usize,
    /// Longest inline command line (Redis: 64 KiB).
    pub max_inline_len_bytes: usize,
    /// Proposals queued in the driver before clients get `-TRYAGAIN`.
    pub max_pending_proposals: usize,
    /// How long a request waits for a leader, a forward or a read index.
    pub request_timeout_ms: u64,
    /// Redis's `client-output-buffer-limit`, in Redis's syntax
    /// (`<class> <hard> <soft> <soft-seconds>` ..., sizes like `64mb`).
    pub client_output_buffer_limit: String,
    /// Redis's `client-query-buffer-limit`: a client whose unparsed input
    /// grows past this is closed (at least 1 MiB).
    pub client_query_buffer_limit_bytes: u64,
    /// Redis's `timeout`: a client idle this long is closed (0: never).
    pub client_idle_timeout_seconds: u64,
    /// Redis's `maxmemory-clients`: when all clients' buffers together pass
    /// this, the biggest clients are closed (0: no bound).
    pub maxmemory_clients_bytes: u64,
    /// Pending output at which a connection stops reading and running
    /// requests until its client reads, when no output limit bounds it.
    pub client_output_backpressure_bytes: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_clients: 10_000,
            max_bulk_len_bytes: 512 * 1024 * 1024,
            max_request_args: 1024 * 1024,
            max_inline_len_bytes: 64 * 1024,
            max_pending_proposals: 100_000,
            request_timeout_ms: 5_000,
            client_output_buffer_limit:
                "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60".to_string(),
            client_query_buffer_limit_bytes: 1 << 30,
            client_idle_timeout_seconds: 0,
            maxmemory_clients_bytes: 0,
            client_output_backpressure_bytes: 1 << 20,
        }
    }
}

/// Peer RPC over mutual TLS: the cluster CA and this node's certificate and key
/// (PEM files; relative paths resolve against the working directory).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerTlsConfig {
    /// The cluster CA certificate: peers must present a certificate it signed.
    pub ca_cert_path: PathBuf,
    /// This node's certificate (chain), naming its member id (`dkv-cli certs node`).
    pub cert_path: PathBuf,
    /// This node's private key.
    pub key_path: PathBuf,
}

/// Whether the TLS RESP listener asks clients for certificates (Redis's
/// `tls-auth-clients`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthClients {
    /// No client certificate is asked for.
    No,
    /// A client may present a certificate; one that is presented must be
    /// signed by `ca_cert_path`.
    Optional,
    /// Every client must present a certificate signed by `ca_cert_path`.
    #[default]
    Yes,
}

/// RESP over TLS on `tls_resp_addr`: the server's certificate and key, and
/// how clients are authenticated (PEM files; relative paths resolve against
/// the working directory).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientTlsConfig {
    /// The certificate (chain) presented to clients.
    pub cert_path: PathBuf,
    /// Its private key.
    pub key_path: PathBuf,
    /// The CA that signs client certificates; required unless `auth_clients: no`.
    #[serde(default)]
    pub ca_cert_path: Option<PathBuf>,
    /// Whether clients must present a certificate (`no`, `optional`, `yes`).
    #[serde(default)]
    pub auth_clients: AuthClients,
    /// How long a client may take to finish its TLS handshake before it is closed.
    #[serde(default = "default_handshake_timeout_ms")]
    pub handshake_timeout_ms: u64,
}

fn default_handshake_timeout_ms() -> u64 {
    5_000
}

impl ClientTlsConfig {
    /// The client-certificate rule for [`crate::tls::server_config`].
    pub fn client_auth(&self) -> crate::tls::ClientAuth {
        match (self.auth_clients, &self.ca_cert_path) {
            (AuthClients::Yes, Some(ca)) => crate::tls::ClientAuth::Required(ca.clone()),
            (AuthClients::Optional, Some(ca)) => crate::tls::ClientAuth::Optional(ca.clone()),
            // Validation refuses `yes`/`optional` without a CA.
            _ => crate::tls::ClientAuth::None,
        }
    }
}

/// Smallest `http.header_read_timeout_ms`: hyper's header timer also runs on
/// an idle keep-alive connection, and peers keep idle connections pooled for up
/// to 900 ms (`transport`).
pub const MIN_HEADER_READ_TIMEOUT_MS: u64 = 1_000;

/// Bounds on the HTTP listeners (peer RPC and the operator port).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// How long a connection may take to send a request's headers (and, on the
    /// TLS listener, to finish its handshake) before it is closed; an idle
    /// keep-alive connection is closed after this too. At least 1000.
    pub header_read_timeout_ms: u64,
    /// Most open HTTP connections per listener; more are closed at accept.
    pub max_connections: usize,
    /// Largest request body on the operator routes (`/admin/*`).
    pub max_admin_body_bytes: usize,
    /// Refused requests are logged at most once per this interval, with a count.
    pub refused_log_interval_ms: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            header_read_timeout_ms: 5_000,
            max_connections: 1_024,
            max_admin_body_bytes: 4_096,
            refused_log_interval_ms: 10_000,
        }
    }
}

/// Client authentication (Redis's `requirepass`, `protected-mode`,
/// `aclfile`, `acllog-max-len`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// The default user's password. The users are cluster state: at start
    /// the node proposes it (once a leader is known) unless the replicated
    /// default user already has exactly this password.
    pub requirepass: Option<String>,
    /// Refuse clients from addresses other than 127.0.0.1 and ::1 while the
    /// default user needs no password (Redis's protected mode).
    pub protected_mode: bool,
    /// The file `ACL LOAD` reads and `ACL SAVE` writes (not read at start).
    pub aclfile: Option<PathBuf>,
    /// Entries kept in this node's ACL LOG.
    pub acl_log_max_entries: usize,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            requirepass: None,
            protected_mode: true,
            aclfile: None,
            acl_log_max_entries: 128,
        }
    }
}

/// A node's whole configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// This node's id (non-zero, unique in the cluster).
    pub id: u64,
    /// Cluster name; peers from another cluster are rejected.
    #[serde(default = "default_cluster_id")]
    pub cluster_id: String,
    /// RESP listen address.
    #[serde(default = "default_resp_addr")]
    pub resp_addr: SocketAddr,
    /// HTTP listen address (peer RPC, /metrics, /status, /health).
    #[serde(default = "default_http_addr")]
    pub http_addr: SocketAddr,
    /// Where the WAL lives.
    pub data_dir: PathBuf,
    /// Every other member (empty for a single-node cluster).
    pub peers: Vec<PeerConfig>,
    /// What a follower does with writes.
    #[serde(default)]
    pub follower_writes: FollowerWrites,
    /// Raft timings.
    #[serde(default)]
    pub raft: RaftConfig,
    /// Client limits.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// Peer RPC over mutual TLS (required unless `insecure_peer_rpc`).
    #[serde(default)]
    pub peer_tls: Option<PeerTlsConfig>,
    /// A second RESP listener speaking TLS (Redis's `tls-port`); needs `client_tls`.
    #[serde(default)]
    pub tls_resp_addr: Option<SocketAddr>,
    /// Certificates for `tls_resp_addr`.
    #[serde(default)]
    pub client_tls: Option<ClientTlsConfig>,
    /// Plain, unauthenticated peer RPC: anyone who reaches `http_addr` can act as
    /// a member. For tests and trusted networks only; logged loudly at start.
    #[serde(default)]
    pub insecure_peer_rpc: bool,
    /// A plain-HTTP listener for `/metrics`, `/health`, `/status` and `/admin/*`
    /// (no client certificate needed). With `peer_tls`, `http_addr` only takes
    /// mutually authenticated peers, so set this for Prometheus and `dkv-cli`.
    #[serde(default)]
    pub metrics_addr: Option<SocketAddr>,
    /// A file holding the admin bearer token that `/admin/*` requires; without
    /// it the admin routes are refused.
    #[serde(default)]
    pub admin_token_path: Option<PathBuf>,
    /// HTTP listener bounds.
    #[serde(default)]
    pub http: HttpConfig,
    /// Client authentication.
    #[serde(default)]
    pub auth: AuthConfig,
}

fn default_cluster_id() -> String {
    "dkv".to_string()
}
fn default_resp_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 6379))
}
fn default_http_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7379))
}

impl Config {
    /// A one-node cluster in `dir` for in-process tests: a 1 ms tick (fast
    /// elections) and a 10 s request timeout; placeholder listen addresses
    /// (the tests talk to the node directly).
    #[cfg(test)]
    pub(crate) fn single_node_for_tests(dir: &Path) -> Config {
        Config {
            id: 1,
            cluster_id: "test".to_string(),
            resp_addr: SocketAddr::from(([127, 0, 0, 1], 1)),
            http_addr: SocketAddr::from(([127, 0, 0, 1], 2)),
            data_dir: dir.to_path_buf(),
            peers: vec![],
            follower_writes: FollowerWrites::Forward,
            raft: RaftConfig {
                tick_ms: 1,
                ..RaftConfig::default()
            },
            limits: LimitsConfig {
                request_timeout_ms: 10_000,
                ..LimitsConfig::default()
            },
            peer_tls: None,
            tls_resp_addr: None,
            client_tls: None,
            insecure_peer_rpc: true,
            metrics_addr: None,
            admin_token_path: None,
            http: HttpConfig::default(),
            auth: AuthConfig::default(),
        }
    }
}

/// Values given on the command line; each one that is set replaces the file's value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `--id`
    pub id: Option<u64>,
    /// `--resp-addr`
    pub resp_addr: Option<SocketAddr>,
    /// `--http-addr`
    pub http_addr: Option<SocketAddr>,
    /// `--data-dir`
    pub data_dir: Option<PathBuf>,
    /// `--cluster-id`
    pub cluster_id: Option<String>,
}

/// Why a config could not be loaded. Every variant names the file (`path`) and, when
/// one is at fault, the key (`peers[1].id`), so the operator can go straight to it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{}: cannot read config file: {source}", .path.display())]
    Read {
        /// The config file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file holds no YAML document (empty, or only comments).
    #[error("{}: config file is empty (required keys: id, data_dir, peers)", .path.display())]
    Empty {
        /// The config file.
        path: PathBuf,
    },
    /// A key the config does not know (usually a typo).
    #[error("{}:{line}:{column}: {key}: unknown key (expected one of: {expected})\n{snippet}", .path.display())]
    UnknownKey {
        /// The config file.
        path: PathBuf,
        /// Full path of the unknown key, e.g. `raft.tick_msec`.
        key: String,
        /// The keys allowed at that place, comma-separated.
        expected: String,
        /// 1-based line.
        line: u64,
        /// 1-based column.
        column: u64,
        /// The offending lines, marked.
        snippet: String,
    },
    /// A required key is absent.
    #[error("{}:{line}:{column}: {key}: required key is missing\n{snippet}", .path.display())]
    MissingKey {
        /// The config file.
        path: PathBuf,
        /// Full path of the missing key, e.g. `peers[0].http_addr`.
        key: String,
        /// 1-based line of the mapping that lacks it.
        line: u64,
        /// 1-based column.
        column: u64,
        /// The offending lines, marked.
        snippet: String,
    },
    /// The YAML is malformed or a value has the wrong type.
    #[error("{}{}: {}{message}{}", .path.display(), fmt_location(*.line, *.column), fmt_key(.key), fmt_snippet(.snippet))]
    Parse {
        /// The config file.
        path: PathBuf,
        /// The key whose value is wrong, when it can be told.
        key: Option<String>,
        /// What serde-saphyr reported.
        message: String,
        /// 1-based line; 0 when unknown.
        line: u64,
        /// 1-based column; 0 when unknown.
        column: u64,
        /// The offending lines, marked (may be empty).
        snippet: String,
    },
    /// `id` or a peer's id is 0.
    #[error("{}: {key}: node id must be non-zero", .path.display())]
    ZeroNodeId {
        /// The config file.
        path: PathBuf,
        /// `id` or `peers[N].id`.
        key: String,
    },
    /// A peer has this node's own id.
    #[error("{}: peers[{index}].id: node id {id} is this node's own id (a node does not list itself in peers)", .path.display())]
    PeerIsSelf {
        /// The config file.
        path: PathBuf,
        /// Position in `peers`.
        index: usize,
        /// The id.
        id: u64,
    },
    /// Two peers share an id.
    #[error("{}: peers[{index}].id: duplicate node id {id} (also peers[{first_index}].id)", .path.display())]
    DuplicateNodeId {
        /// The config file.
        path: PathBuf,
        /// Position of the second occurrence in `peers`.
        index: usize,
        /// Position of the first occurrence.
        first_index: usize,
        /// The id.
        id: u64,
    },
    /// Two addresses in the cluster are the same socket address.
    #[error("{}: {key}: address {addr} is already used by {other_key}", .path.display())]
    DuplicateAddress {
        /// The config file.
        path: PathBuf,
        /// The key of the second occurrence, e.g. `peers[0].http_addr`.
        key: String,
        /// The key of the first occurrence, e.g. `resp_addr`.
        other_key: String,
        /// The address.
        addr: SocketAddr,
    },
    /// A peer's address cannot be connected to (unspecified IP or port 0).
    #[error("{}: {key}: {addr} is not an address other nodes can connect to ({reason})", .path.display())]
    UnreachablePeerAddress {
        /// The config file.
        path: PathBuf,
        /// e.g. `peers[1].resp_addr`.
        key: String,
        /// The address.
        addr: SocketAddr,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A value is outside its allowed range (raft timings, limits, empty strings).
    #[error("{}: {key}: {reason}", .path.display())]
    InvalidValue {
        /// The config file.
        path: PathBuf,
        /// e.g. `raft.heartbeat_interval_ticks`.
        key: String,
        /// What is wrong, with the value.
        reason: String,
    },
}

fn fmt_location(line: u64, column: u64) -> String {
    match (line, column) {
        (0, _) => String::new(),
        (line, 0) => format!(":{line}"),
        (line, column) => format!(":{line}:{column}"),
    }
}

fn fmt_key(key: &Option<String>) -> String {
    key.as_ref().map(|k| format!("{k}: ")).unwrap_or_default()
}

fn fmt_snippet(snippet: &str) -> String {
    if snippet.is_empty() {
        String::new()
    } else {
        format!("\n{snippet}")
    }
}

/// The name `validate()` uses for a config that did not come from a file.
const NO_FILE: &str = "<config>";

impl Config {
    /// Reads, parses and validates the config file at `path`.
    ///
    /// # Errors
    /// [`ConfigError`] naming `path` and the offending key: unreadable file, YAML
    /// syntax, unknown or missing key, wrong value type, or a failed [`Config::validate`] rule.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Self::load_with_overrides(path, Overrides::default())
    }

    /// Like [`Config::load`], but applies command-line `overrides` before validating,
    /// so a flag can fix (or cause) a conflict and the error still names the file.
    ///
    /// # Errors
    /// As [`Config::load`].
    pub fn load_with_overrides(path: &Path, overrides: Overrides) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut config = Self::parse(&text, path)?;
        config.apply_overrides(overrides);
        config.validate_for(path)?;
        Ok(config)
    }

    /// Parses YAML `text` (read from `path`, used in errors) without validating it.
    ///
    /// # Errors
    /// [`ConfigError::Empty`], [`ConfigError::UnknownKey`], [`ConfigError::MissingKey`] or
    /// [`ConfigError::Parse`].
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        if is_blank_yaml(text) {
            return Err(ConfigError::Empty {
                path: path.to_path_buf(),
            });
        }
        serde_saphyr::from_str::<Config>(text).map_err(|err| parse_error(&err, text, path))
    }

    /// Replaces every file value that has a command-line override. Call
    /// [`Config::validate`] afterwards ([`Config::load_with_overrides`] does).
    pub fn apply_overrides(&mut self, overrides: Overrides) {
        let Overrides {
            id,
            resp_addr,
            http_addr,
            data_dir,
            cluster_id,
        } = overrides;
        if let Some(id) = id {
            self.id = id;
        }
        if let Some(addr) = resp_addr {
            self.resp_addr = addr;
        }
        if let Some(addr) = http_addr {
            self.http_addr = addr;
        }
        if let Some(dir) = data_dir {
            self.data_dir = dir;
        }
        if let Some(cluster_id) = cluster_id {
            self.cluster_id = cluster_id;
        }
    }

    /// Checks the rules serde cannot express; errors name the file as `<config>`.
    ///
    /// # Errors
    /// See [`Config::validate_for`].
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_for(Path::new(NO_FILE))
    }

    /// Checks the rules serde cannot express, naming `path` in errors:
    /// non-zero, unique node ids (a node is not its own peer); no two listen or peer
    /// addresses the same; peer addresses connectable; `raft.tick_ms >= 1`,
    /// `1 <= heartbeat < election_min < election_max`, non-zero batch bounds;
    /// non-zero limits; non-empty `cluster_id` and `data_dir`.
    ///
    /// # Errors
    /// The first rule broken, as a [`ConfigError`] naming the key.
    pub fn validate_for(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |key: &str, reason: String| ConfigError::InvalidValue {
            path: path.to_path_buf(),
            key: key.to_string(),
            reason,
        };

        if self.id == 0 {
            return Err(ConfigError::ZeroNodeId {
                path: path.to_path_buf(),
                key: "id".to_string(),
            });
        }
        if self.cluster_id.trim().is_empty() {
            return Err(invalid("cluster_id", "must not be empty".to_string()));
        }
        if self.data_dir.as_os_str().is_empty() {
            return Err(invalid("data_dir", "must not be empty".to_string()));
        }

        self.validate_peer_ids(path)?;
        self.validate_addresses(path)?;
        self.validate_peer_security(path)?;
        self.validate_client_tls(path)?;

        let raft = &self.raft;
        if raft.tick_ms == 0 {
            return Err(invalid("raft.tick_ms", "must be at least 1".to_string()));
        }
        if raft.heartbeat_interval_ticks == 0 {
            return Err(invalid(
                "raft.heartbeat_interval_ticks",
                "must be at least 1".to_string(),
            ));
        }
        if raft.heartbeat_interval_ticks >= raft.election_timeout_min_ticks {
            return Err(invalid(
                "raft.heartbeat_interval_ticks",
                format!(
                    "{} must be less than raft.election_timeout_min_ticks ({}), or followers \
                     start elections under a healthy leader",
                    raft.heartbeat_interval_ticks, raft.election_timeout_min_ticks
                ),
            ));
        }
        if raft.election_timeout_min_ticks >= raft.election_timeout_max_ticks {
            return Err(invalid(
                "raft.election_timeout_max_ticks",
                format!(
                    "{} must be greater than raft.election_timeout_min_ticks ({}): the timeout \
                     is drawn from [min, max) to avoid split votes",
                    raft.election_timeout_max_ticks, raft.election_timeout_min_ticks
                ),
            ));
        }
        if raft.max_entries_per_append == 0 {
            return Err(invalid(
                "raft.max_entries_per_append",
                "must be at least 1".to_string(),
            ));
        }
        if raft.max_bytes_per_append == 0 {
            return Err(invalid(
                "raft.max_bytes_per_append",
                "must be at least 1".to_string(),
            ));
        }
        // The leader refuses a write whose entry is over max_bytes_per_append
        // (the client gets an error); one under it must fit a WAL record, or
        // the WAL write fails and the node stops.
        if raft.max_bytes_per_append > crate::store::wal::MAX_ENTRY_DATA_BYTES {
            return Err(invalid(
                "raft.max_bytes_per_append",
                format!(
                    "{} is above {}, the largest entry a WAL record holds ({} bytes less \
                     its encoding overhead): one write that large would stop the node",
                    raft.max_bytes_per_append,
                    crate::store::wal::MAX_ENTRY_DATA_BYTES,
                    crate::store::wal::MAX_RECORD_PAYLOAD_BYTES
                ),
            ));
        }
        if raft.max_snapshot_receive_bytes == 0 {
            return Err(invalid(
                "raft.max_snapshot_receive_bytes",
                "must be at least 1".to_string(),
            ));
        }
        if raft.lease_reads && !raft.check_quorum {
            return Err(invalid(
                "raft.lease_reads",
                "needs raft.check_quorum: true (a leader must step down before its lease \
                 could outlive its leadership)"
                    .to_string(),
            ));
        }
        if raft.lease_reads && raft.clock_drift_bound_ticks >= raft.election_timeout_min_ticks {
            return Err(invalid(
                "raft.clock_drift_bound_ticks",
                format!(
                    "{} must be less than raft.election_timeout_min_ticks ({}) for lease reads",
                    raft.clock_drift_bound_ticks, raft.election_timeout_min_ticks
                ),
            ));
        }
        if !(MIN_SNAPSHOT_CHUNK_BYTES..=MAX_SNAPSHOT_CHUNK_BYTES)
            .contains(&raft.snapshot_chunk_bytes)
        {
            return Err(invalid(
                "raft.snapshot_chunk_bytes",
                format!(
                    "{} must be between {MIN_SNAPSHOT_CHUNK_BYTES} and {MAX_SNAPSHOT_CHUNK_BYTES}",
                    raft.snapshot_chunk_bytes
                ),
            ));
        }

        let limits = &self.limits;
        let limit_values: [(&str, u64); 6] = [
            ("limits.max_clients", limits.max_clients as u64),
            (
                "limits.max_bulk_len_bytes",
                limits.max_bulk_len_bytes as u64,
            ),
            ("limits.max_request_args", limits.max_request_args as u64),
            (
                "limits.max_inline_len_bytes",
                limits.max_inline_len_bytes as u64,
            ),
            (
                "limits.max_pending_proposals",
                limits.max_pending_proposals as u64,
            ),
            ("limits.request_timeout_ms", limits.request_timeout_ms),
        ];
        for (key, value) in limit_values {
            if value == 0 {
                return Err(invalid(key, "must be non-zero".to_string()));
            }
        }
        self.validate_client_limits(path)
    }

    /// The client limits Redis also checks, with Redis's words.
    fn validate_client_limits(&self, path: &Path) -> Result<(), ConfigError> {
        use crate::server::client_limits::{
            OutputLimits, MAX_IDLE_TIMEOUT_SECONDS, MIN_QUERY_BUFFER_LIMIT_BYTES,
        };
        let invalid = |key: &str, reason: String| ConfigError::InvalidValue {
            path: path.to_path_buf(),
            key: key.to_string(),
            reason,
        };
        let limits = &self.limits;
        if let Err(error) = OutputLimits::default().with(&limits.client_output_buffer_limit) {
            return Err(invalid(
                "limits.client_output_buffer_limit",
                error.to_string(),
            ));
        }
        if limits.client_query_buffer_limit_bytes < MIN_QUERY_BUFFER_LIMIT_BYTES {
            return Err(invalid(
                "limits.client_query_buffer_limit_bytes",
                format!("must be at least {MIN_QUERY_BUFFER_LIMIT_BYTES}"),
            ));
        }
        if limits.client_idle_timeout_seconds > MAX_IDLE_TIMEOUT_SECONDS {
            return Err(invalid(
                "limits.client_idle_timeout_seconds",
                format!("must be at most {MAX_IDLE_TIMEOUT_SECONDS}"),
            ));
        }
        if limits.client_output_backpressure_bytes == 0 {
            return Err(invalid(
                "limits.client_output_backpressure_bytes",
                "must be non-zero".to_string(),
            ));
        }
        Ok(())
    }

    /// Peer RPC is either mutually authenticated (`peer_tls`) or explicitly
    /// insecure; a cluster config that says neither is refused, so no node ends
    /// up open to forged peer messages by omission. HTTP bounds are non-zero.
    fn validate_peer_security(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |key: &str, reason: &str| ConfigError::InvalidValue {
            path: path.to_path_buf(),
            key: key.to_string(),
            reason: reason.to_string(),
        };
        match (&self.peer_tls, self.insecure_peer_rpc) {
            (Some(_), true) => {
                return Err(invalid(
                    "insecure_peer_rpc",
                    "cannot be true together with peer_tls (choose one)",
                ))
            }
            (None, false) if !self.peers.is_empty() => {
                return Err(invalid(
                    "peer_tls",
                    "required: set peer_tls { ca_cert_path, cert_path, key_path } \
                     (make them with `dkv-cli certs`), or insecure_peer_rpc: true \
                     to accept unauthenticated peer RPC",
                ))
            }
            _ => {}
        }
        if let Some(tls) = &self.peer_tls {
            for (key, file) in [
                ("peer_tls.ca_cert_path", &tls.ca_cert_path),
                ("peer_tls.cert_path", &tls.cert_path),
                ("peer_tls.key_path", &tls.key_path),
            ] {
                if file.as_os_str().is_empty() {
                    return Err(invalid(key, "must not be empty"));
                }
            }
        }
        if self
            .admin_token_path
            .as_ref()
            .is_some_and(|p| p.as_os_str().is_empty())
        {
            return Err(invalid("admin_token_path", "must not be empty"));
        }
        let http = &self.http;
        if http.header_read_timeout_ms < MIN_HEADER_READ_TIMEOUT_MS {
            return Err(invalid(
                "http.header_read_timeout_ms",
                &format!(
                    "{} is below the minimum of {MIN_HEADER_READ_TIMEOUT_MS} (it also closes \
                     idle keep-alive connections, which peers pool for up to 900 ms)",
                    http.header_read_timeout_ms
                ),
            ));
        }
        for (key, value) in [
            ("http.header_read_timeout_ms", http.header_read_timeout_ms),
            ("http.max_connections", http.max_connections as u64),
            (
                "http.max_admin_body_bytes",
                http.max_admin_body_bytes as u64,
            ),
            ("http.refused_log_interval_ms", http.refused_log_interval_ms),
        ] {
            if value == 0 {
                return Err(invalid(key, "must be non-zero"));
            }
        }
        Ok(())
    }

    /// `tls_resp_addr` and `client_tls` come together; client certificates
    /// need a CA to check them against; no path is empty; the handshake
    /// timeout is non-zero. (The files themselves are read at start, and a
    /// missing or bad one fails the start naming the file.)
    fn validate_client_tls(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |key: &str, reason: &str| ConfigError::InvalidValue {
            path: path.to_path_buf(),
            key: key.to_string(),
            reason: reason.to_string(),
        };
        let tls = match (&self.client_tls, self.tls_resp_addr) {
            (None, None) => return Ok(()),
            (None, Some(_)) => {
                return Err(invalid(
                    "client_tls",
                    "required with tls_resp_addr: set client_tls { cert_path, key_path, \
                     ca_cert_path, auth_clients }",
                ))
            }
            (Some(_), None) => {
                return Err(invalid(
                    "tls_resp_addr",
                    "required with client_tls (the port TLS clients connect to)",
                ))
            }
            (Some(tls), Some(_)) => tls,
        };
        for (key, file) in [
            ("client_tls.cert_path", Some(&tls.cert_path)),
            ("client_tls.key_path", Some(&tls.key_path)),
            ("client_tls.ca_cert_path", tls.ca_cert_path.as_ref()),
        ] {
            if file.is_some_and(|f| f.as_os_str().is_empty()) {
                return Err(invalid(key, "must not be empty"));
            }
        }
        if tls.auth_clients != AuthClients::No && tls.ca_cert_path.is_none() {
            return Err(invalid(
                "client_tls.ca_cert_path",
                "required unless auth_clients is no (client certificates are checked \
                 against this CA)",
            ));
        }
        if tls.handshake_timeout_ms == 0 {
            return Err(invalid(
                "client_tls.handshake_timeout_ms",
                "must be non-zero",
            ));
        }
        Ok(())
    }

    fn validate_peer_ids(&self, path: &Path) -> Result<(), ConfigError> {
        for (index, peer) in self.peers.iter().enumerate() {
            if peer.id == 0 {
                return Err(ConfigError::ZeroNodeId {
                    path: path.to_path_buf(),
                    key: format!("peers[{index}].id"),
                });
            }
            if peer.id == self.id {
                return Err(ConfigError::PeerIsSelf {
                    path: path.to_path_buf(),
                    index,
                    id: peer.id,
                });
            }
            if let Some(first_index) = self.peers[..index].iter().position(|p| p.id == peer.id) {
                return Err(ConfigError::DuplicateNodeId {
                    path: path.to_path_buf(),
                    index,
                    first_index,
                    id: peer.id,
                });
            }
        }
        Ok(())
    }

    fn validate_addresses(&self, path: &Path) -> Result<(), ConfigError> {
        // (key, address, belongs to this node)
        let mut seen: Vec<(String, SocketAddr, bool)> = vec![
            ("resp_addr".to_string(), self.resp_addr, true),
            ("http_addr".to_string(), self.http_addr, true),
        ];
        if let Some(addr) = self.tls_resp_addr {
            seen.push(("tls_resp_addr".to_string(), addr, true));
        }
        if let Some(addr) = self.metrics_addr {
            seen.push(("metrics_addr".to_string(), addr, true));
        }
        for (index, peer) in self.peers.iter().enumerate() {
            for (name, addr) in [("resp_addr", peer.resp_addr), ("http_addr", peer.http_addr)] {
                let key = format!("peers[{index}].{name}");
                let reason = if addr.ip().is_unspecified() {
                    Some("unspecified IP")
                } else if addr.port() == 0 {
                    Some("port 0")
                } else {
                    None
                };
                if let Some(reason) = reason {
                    return Err(ConfigError::UnreachablePeerAddress {
                        path: path.to_path_buf(),
                        key,
                        addr,
                        reason,
                    });
                }
                seen.push((key, addr, false));
            }
        }
        for (i, (key, addr, own)) in seen.iter().enumerate() {
            // Port 0 lets the OS pick (tests); it never collides.
            if addr.port() == 0 {
                continue;
            }
            let clash = seen[..i].iter().find(|(_, other, other_own)| {
                other.port() == addr.port()
                    && (other.ip() == addr.ip()
                        // Both are this node's listeners: 0.0.0.0:P also holds 127.0.0.1:P.
                        || (*own && *other_own
                            && (other.ip().is_unspecified() || addr.ip().is_unspecified())))
            });
            if let Some((other_key, _, _)) = clash {
                return Err(ConfigError::DuplicateAddress {
                    path: path.to_path_buf(),
                    key: key.clone(),
                    other_key: other_key.clone(),
                    addr: *addr,
                });
            }
        }
        Ok(())
    }

    /// Every voter's id, this node's included, ascending.
    pub fn voter_ids(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = std::iter::once(self.id)
            .chain(self.peers.iter().map(|p| p.id))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// The peer with this id, if it is one (this node itself is not a peer).
    pub fn peer(&self, id: u64) -> Option<&PeerConfig> {
        self.peers.iter().find(|p| p.id == id)
    }
}

/// True when `text` holds nothing but whitespace, comments and document markers.
fn is_blank_yaml(text: &str) -> bool {
    text.lines().all(|line| {
        let line = line.trim();
        line.is_empty() || line.starts_with('#') || line == "---" || line == "..."
    })
}

/// Turns a serde-saphyr error into a [`ConfigError`] naming the file and the key.
fn parse_error(err: &serde_saphyr::Error, text: &str, path: &Path) -> ConfigError {
    use serde_saphyr::MessageFormatter;

    let source_name = path.display().to_string();
    let rendered = err.render_with_options(serde_saphyr::render_options! {
        source_name: Some(source_name.as_str()),
    });
    // The first rendered line repeats the message; keep the marked snippet only.
    let snippet = match rendered.split_once('\n') {
        Some((_, rest)) if rendered.starts_with("error:") => rest.trim_end().to_string(),
        _ => String::new(),
    };
    let location = err
        .location()
        .filter(|l| *l != serde_saphyr::Location::UNKNOWN);
    let (line, column) = match location {
        Some(l) => (Some(l.line()), Some(l.column())),
        None => (None, None),
    };
    let key_at = |line: u64| key_path_at(text, line as usize);

    match (err.without_snippet(), line, column) {
        (
            serde_saphyr::Error::SerdeUnknownField {
                field, expected, ..
            },
            Some(line),
            Some(column),
        ) => {
            // The location is the unknown key itself.
            let mut segments = key_at(line);
            if segments.last().is_some_and(|s| s == field) {
                segments.pop();
            }
            segments.push(field.clone());
            ConfigError::UnknownKey {
                path: path.to_path_buf(),
                key: join_key_path(&segments),
                expected: expected.join(", "),
                line,
                column,
                snippet,
            }
        }
        (serde_saphyr::Error::SerdeMissingField { field, .. }, Some(line), Some(column)) => {
            // The location is a key of the mapping that lacks the field.
            let mut segments = key_at(line);
            if matches!(segments.last(), Some(s) if !s.starts_with('[')) {
                segments.pop();
            }
            segments.push(field.to_string());
            ConfigError::MissingKey {
                path: path.to_path_buf(),
                key: join_key_path(&segments),
                line,
                column,
                snippet,
            }
        }
        (serde_saphyr::Error::SerdeMissingField { field, .. }, _, _) => ConfigError::MissingKey {
            path: path.to_path_buf(),
            key: field.to_string(),
            line: 0,
            column: 0,
            snippet,
        },
        (other, line, column) => {
            let key = line
                .map(key_at)
                .filter(|s| !s.is_empty())
                .map(|s| join_key_path(&s));
            let message = serde_saphyr::DefaultMessageFormatter
                .format_message(other)
                .into_owned();
            ConfigError::Parse {
                path: path.to_path_buf(),
                key,
                message,
                line: line.unwrap_or(0),
                column: column.unwrap_or(0),
                snippet,
            }
        }
    }
}

/// Joins `["peers", "[1]", "id"]` into `peers[1].id`.
fn join_key_path(segments: &[String]) -> String {
    let mut out = String::new();
    for segment in segments {
        if !out.is_empty() && !segment.starts_with('[') {
            out.push('.');
        }
        out.push_str(segment);
    }
    out
}

/// Best-effort key path (`["peers", "[1]", "http_addr"]`) of the block-style YAML
/// line `target_line` (1-based), from indentation. Used only to name keys in errors;
/// flow collections on one line yield the key that owns the line.
fn key_path_at(text: &str, target_line: usize) -> Vec<String> {
    enum Frame {
        Key { indent: usize, name: String },
        Item { indent: usize, index: usize },
    }
    impl Frame {
        fn indent(&self) -> usize {
            match self {
                Frame::Key { indent, .. } | Frame::Item { indent, .. } => *indent,
            }
        }
    }

    let mut stack: Vec<Frame> = Vec::new();
    for (number, raw) in text.lines().enumerate() {
        if number + 1 > target_line {
            break;
        }
        let mut indent = raw.len() - raw.trim_start_matches(' ').len();
        let mut rest = raw.trim_start_matches(' ');
        if rest.is_empty() || rest.starts_with('#') {
            continue;
        }
        // Sequence items, possibly several on one line (`- - x`) or holding a key.
        while rest == "-" || rest.starts_with("- ") {
            while stack.last().is_some_and(|f| f.indent() > indent) {
                stack.pop();
            }
            let index = match stack.last() {
                Some(Frame::Item {
                    indent: i,
                    index: n,
                }) if *i == indent => {
                    let next = n + 1;
                    stack.pop();
                    next
                }
                _ => 0,
            };
            stack.push(Frame::Item { indent, index });
            let after = &rest[1..];
            let trimmed = after.trim_start_matches(' ');
            indent += 1 + after.len() - trimmed.len();
            rest = trimmed;
        }
        if let Some(name) = leading_key(rest) {
            while stack.last().is_some_and(|f| f.indent() >= indent) {
                stack.pop();
            }
            stack.push(Frame::Key { indent, name });
        }
    }
    stack
        .into_iter()
        .map(|f| match f {
            Frame::Key { name, .. } => name,
            Frame::Item { index, .. } => format!("[{index}]"),
        })
        .collect()
}

/// The key at the start of `content` if it is `key:` followed by a space or the end.
fn leading_key(content: &str) -> Option<String> {
    let colon = content.find(':')?;
    let after = &content[colon + 1..];
    if !(after.is_empty() || after.starts_with(' ') || after.starts_with('\t')) {
        return None;
    }
    let key = content[..colon].trim();
    let key = key
        .strip_prefix('"')
        .and_then(|k| k.strip_suffix('"'))
        .or_else(|| key.strip_prefix('\'').and_then(|k| k.strip_suffix('\'')))
        .unwrap_or(key);
    let plain = key
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.');
    (plain && !key.is_empty()).then(|| key.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "\
id: 1
cluster_id: test
resp_addr: 127.0.0.1:7001
http_addr: 127.0.0.1:8001
data_dir: run/node1
peers:
  - id: 2
    resp_addr: 127.0.0.1:7002
    http_addr: 127.0.0.1:8002
  - id: 3
    resp_addr: 127.0.0.1:7003
    http_addr: 127.0.0.1:8003
insecure_peer_rpc: true
";

    type RaftEdit = fn(&mut RaftConfig);
    type LimitsEdit = fn(&mut LimitsConfig);

    fn file() -> &'static Path {
        Path::new("configs/test.yaml")
    }

    fn parse(text: &str) -> Result<Config, ConfigError> {
        let config = Config::parse(text, file())?;
        config.validate_for(file())?;
        Ok(config)
    }

    fn valid() -> Config {
        parse(VALID).expect("VALID parses")
    }

    /// Validates `config` and returns the error text, which must name the file.
    fn error_of(config: &Config) -> String {
        let err = config
            .validate_for(file())
            .expect_err("config should be rejected");
        let text = err.to_string();
        assert!(text.starts_with("configs/test.yaml"), "{text}");
        text
    }

    fn parse_error_of(text: &str) -> (ConfigError, String) {
        let err = parse(text).expect_err("yaml should be rejected");
        let shown = err.to_string();
        assert!(shown.starts_with("configs/test.yaml"), "{shown}");
        (err, shown)
    }

    #[test]
    fn valid_config_parses_with_defaults() {
        let config = valid();
        assert_eq!(config.id, 1);
        assert_eq!(config.peers.len(), 2);
        assert_eq!(config.follower_writes, FollowerWrites::Forward);
        assert_eq!(config.raft, RaftConfig::default());
        assert_eq!(config.limits, LimitsConfig::default());
    }

    /// The integration harness writes flow-style peers and JSON-quoted strings.
    #[test]
    fn flow_style_yaml_parses() {
        let text = "id: 1\ninsecure_peer_rpc: true\ncluster_id: \"test\"\nresp_addr: 127.0.0.1:7001\n\
            http_addr: 127.0.0.1:8001\ndata_dir: \"/tmp/d 1\"\npeers:\n\
            \x20 - { id: 2, resp_addr: 127.0.0.1:7002, http_addr: 127.0.0.1:8002 }\n\
            raft: { tick_ms: 5, election_timeout_min_ticks: 30, election_timeout_max_ticks: 60, heartbeat_interval_ticks: 5 }\n\
            limits: { max_clients: 10000, request_timeout_ms: 100 }\n";
        let config = parse(text).expect("valid");
        assert_eq!(config.data_dir, PathBuf::from("/tmp/d 1"));
        assert_eq!(config.peer(2).map(|p| p.http_addr.port()), Some(8002));
        assert_eq!(config.raft.tick_ms, 5);
        assert_eq!(config.limits.request_timeout_ms, 100);
        assert_eq!(config.limits.max_inline_len_bytes, 64 * 1024);
    }

    #[test]
    fn minimal_single_node_config_uses_defaults() {
        let config = parse("id: 7\ndata_dir: /tmp/x\npeers: []\n").expect("valid");
        assert_eq!(config.cluster_id, "dkv");
        assert_eq!(config.resp_addr, default_resp_addr());
        assert_eq!(config.http_addr, default_http_addr());
        assert_eq!(config.voter_ids(), vec![7]);
    }

    #[test]
    fn every_file_in_configs_loads() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
        let mut loaded = 0;
        for entry in std::fs::read_dir(&dir).expect("configs/ exists") {
            let path = entry.expect("dir entry").path();
            if path.extension().is_some_and(|e| e == "yaml") {
                Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
                loaded += 1;
            }
        }
        assert!(
            loaded >= 5,
            "expected node1..3, single and example, got {loaded}"
        );
    }

    #[test]
    fn local_cluster_configs_agree_with_each_other() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
        let nodes: Vec<Config> = (1..=3)
            .map(|n| Config::load(&dir.join(format!("node{n}.yaml"))).expect("loads"))
            .collect();
        for node in &nodes {
            assert_eq!(node.voter_ids(), vec![1, 2, 3]);
            assert_eq!(node.cluster_id, "dkv-local");
            for other in &nodes {
                if let Some(peer) = node.peer(other.id) {
                    assert_eq!(peer.resp_addr, other.resp_addr);
                    assert_eq!(peer.http_addr, other.http_addr);
                }
            }
        }
        assert_eq!(nodes[0].resp_addr.port(), 7001);
        assert_eq!(nodes[2].http_addr.port(), 8003);
    }

    #[test]
    fn example_sets_every_key() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
        let text = std::fs::read_to_string(dir.join("example.yaml")).expect("example exists");
        for key in [
            "id:",
            "cluster_id:",
            "resp_addr:",
            "http_addr:",
            "data_dir:",
            "peers:",
            "follower_writes:",
            // `requirepass` and `aclfile` are shown commented out: no value
            // is a safe example of them.
            "protected_mode:",
            "acl_log_max_entries:",
            "tick_ms:",
            "election_timeout_min_ticks:",
            "election_timeout_max_ticks:",
            "heartbeat_interval_ticks:",
            "max_entries_per_append:",
            "max_bytes_per_append:",
            "max_term_jump:",
            "snapshot_log_growth_percent:",
            "max_snapshot_receive_bytes:",
            "max_clients:",
            "max_bulk_len_bytes:",
            "max_request_args:",
            "max_inline_len_bytes:",
            "max_pending_proposals:",
            "request_timeout_ms:",
            "peer_tls:",
            "ca_cert_path:",
            "cert_path:",
            "key_path:",
            "insecure_peer_rpc:",
            "metrics_addr:",
            "admin_token_path:",
            "header_read_timeout_ms:",
            "max_connections:",
            "max_admin_body_bytes:",
            "refused_log_interval_ms:",
        ] {
            assert!(
                text.lines().any(|l| l.trim_start().starts_with(key)),
                "{key}"
            );
        }
    }

    #[test]
    fn missing_file_is_named() {
        let err = Config::load(Path::new("/nonexistent/dkv.yaml")).expect_err("no file");
        assert!(matches!(err, ConfigError::Read { .. }));
        assert!(err
            .to_string()
            .starts_with("/nonexistent/dkv.yaml: cannot read"));
    }

    #[test]
    fn load_names_the_file_in_validation_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("bad.yaml");
        std::fs::write(&path, VALID.replace("id: 3", "id: 2")).expect("write");
        let err = Config::load(&path).expect_err("duplicate id");
        assert_eq!(
            err.to_string(),
            format!(
                "{}: peers[1].id: duplicate node id 2 (also peers[0].id)",
                path.display()
            )
        );
    }

    #[test]
    fn empty_file_is_refused() {
        let (err, text) = parse_error_of("# nothing here\n\n");
        assert!(matches!(err, ConfigError::Empty { .. }), "{text}");
        assert!(text.contains("id, data_dir, peers"), "{text}");
    }

    #[test]
    fn unknown_top_level_key_is_named_with_line() {
        let (err, text) =
            parse_error_of(&VALID.replace("resp_addr: 127.0.0.1:7001", "resp_adr: 127.0.0.1:7001"));
        match err {
            ConfigError::UnknownKey {
                key, line, column, ..
            } => {
                assert_eq!((key.as_str(), line, column), ("resp_adr", 3, 1));
            }
            other => panic!("{other:?}"),
        }
        assert!(
            text.starts_with("configs/test.yaml:3:1: resp_adr: unknown key"),
            "{text}"
        );
        assert!(text.contains("resp_addr"), "expected keys listed: {text}");
    }

    #[test]
    fn unknown_nested_key_is_named_with_its_path() {
        let (err, text) = parse_error_of(&format!("{VALID}raft:\n  tick_msec: 5\n"));
        assert!(
            matches!(&err, ConfigError::UnknownKey { key, line: 15, .. } if key == "raft.tick_msec"),
            "{text}"
        );
        let (_, text) = parse_error_of(&VALID.replace(
            "    http_addr: 127.0.0.1:8003",
            "    http_addr: 127.0.0.1:8003\n    weight: 2",
        ));
        assert!(
            text.starts_with("configs/test.yaml:13:5: peers[1].weight: unknown key"),
            "{text}"
        );
    }

    #[test]
    fn missing_required_keys_are_named() {
        for key in ["id", "data_dir", "peers"] {
            let text: String = VALID
                .lines()
                .filter(|l| !(l.starts_with(key) || (key == "peers" && l.starts_with(' '))))
                .map(|l| format!("{l}\n"))
                .collect();
            let (err, shown) = parse_error_of(&text);
            assert!(
                matches!(&err, ConfigError::MissingKey { key: k, .. } if k == key),
                "{key}: {shown}"
            );
            assert!(
                shown.contains(&format!(": {key}: required key is missing")),
                "{shown}"
            );
        }
    }

    #[test]
    fn missing_peer_key_is_named_with_its_path() {
        let (err, text) = parse_error_of(&VALID.replace("    http_addr: 127.0.0.1:8003\n", ""));
        assert!(
            matches!(&err, ConfigError::MissingKey { key, .. } if key == "peers[1].http_addr"),
            "{text}"
        );
    }

    #[test]
    fn bad_value_names_the_key_and_position() {
        let (err, text) =
            parse_error_of(&VALID.replace("resp_addr: 127.0.0.1:7002", "resp_addr: localhost"));
        assert!(matches!(err, ConfigError::Parse { line: 8, .. }), "{text}");
        assert!(
            text.starts_with("configs/test.yaml:8:16: peers[0].resp_addr: "),
            "{text}"
        );
        let (_, text) = parse_error_of(&VALID.replace("id: 1", "id: -1"));
        assert!(text.starts_with("configs/test.yaml:1:5: id: "), "{text}");
        let (_, text) = parse_error_of(&format!("{VALID}follower_writes: proxy\n"));
        assert!(text.contains("follower_writes: "), "{text}");
    }

    #[test]
    fn duplicate_yaml_key_is_refused() {
        let (_, text) = parse_error_of(&format!("{VALID}id: 4\n"));
        assert!(
            text.starts_with("configs/test.yaml:14:1: id: duplicate mapping key"),
            "{text}"
        );
    }

    #[test]
    fn zero_id_is_refused() {
        let mut config = valid();
        config.id = 0;
        assert_eq!(
            error_of(&config),
            "configs/test.yaml: id: node id must be non-zero"
        );
        let mut config = valid();
        config.peers[1].id = 0;
        assert_eq!(
            error_of(&config),
            "configs/test.yaml: peers[1].id: node id must be non-zero"
        );
    }

    #[test]
    fn duplicate_peer_id_is_refused() {
        let mut config = valid();
        config.peers[1].id = 2;
        assert_eq!(
            error_of(&config),
            "configs/test.yaml: peers[1].id: duplicate node id 2 (also peers[0].id)"
        );
    }

    #[test]
    fn peer_with_own_id_is_refused() {
        let mut config = valid();
        config.peers[0].id = 1;
        assert!(matches!(
            config.validate_for(file()),
            Err(ConfigError::PeerIsSelf {
                index: 0,
                id: 1,
                ..
            })
        ));
        assert!(error_of(&config)
            .starts_with("configs/test.yaml: peers[0].id: node id 1 is this node's own id"));
    }

    #[test]
    fn own_addresses_must_differ() {
        let mut config = valid();
        config.http_addr = config.resp_addr;
        assert_eq!(
            error_of(&config),
            "configs/test.yaml: http_addr: address 127.0.0.1:7001 is already used by resp_addr"
        );
        let mut config = valid();
        config.resp_addr = "0.0.0.0:7001".parse().expect("addr");
        config.http_addr = "127.0.0.1:7001".parse().expect("addr");
        assert!(error_of(&config)
            .contains("http_addr: address 127.0.0.1:7001 is already used by resp_addr"));
    }

    #[test]
    fn peer_address_equal_to_another_is_refused() {
        let mut config = valid();
        config.peers[1].http_addr = "127.0.0.1:8002".parse().expect("addr");
        assert_eq!(
            error_of(&config),
            "configs/test.yaml: peers[1].http_addr: address 127.0.0.1:8002 is already used by peers[0].http_addr"
        );
        let mut config = valid();
        config.peers[0].resp_addr = "127.0.0.1:8001".parse().expect("addr");
        assert!(error_of(&config)
            .contains("peers[0].resp_addr: address 127.0.0.1:8001 is already used by http_addr"));
    }

    #[test]
    fn same_port_on_different_hosts_is_allowed() {
        let mut config = valid();
        config.resp_addr = "0.0.0.0:7001".parse().expect("addr");
        config.peers[0].resp_addr = "10.0.0.2:7001".parse().expect("addr");
        config.peers[1].resp_addr = "10.0.0.3:7001".parse().expect("addr");
        config.validate_for(file()).expect("distinct hosts");
    }

    #[test]
    fn port_zero_own_addresses_do_not_collide() {
        let mut config = valid();
        config.resp_addr = "127.0.0.1:0".parse().expect("addr");
        config.http_addr = "127.0.0.1:0".parse().expect("addr");
        config.validate_for(file()).expect("OS picks the ports");
    }

    #[test]
    fn unconnectable_peer_address_is_refused() {
        let mut config = valid();
        config.peers[0].http_addr = "0.0.0.0:8002".parse().expect("addr");
        assert!(error_of(&config).contains("peers[0].http_addr: 0.0.0.0:8002 is not an address"));
        let mut config = valid();
        config.peers[1].resp_addr = "127.0.0.1:0".parse().expect("addr");
        assert!(error_of(&config).contains("peers[1].resp_addr: 127.0.0.1:0 is not an address"));
    }

    #[test]
    fn raft_timings_are_checked() {
        let cases: [(RaftEdit, &str); 9] = [
            (|r| r.tick_ms = 0, "raft.tick_ms: must be at least 1"),
            (
                |r| r.heartbeat_interval_ticks = 0,
                "raft.heartbeat_interval_ticks: must be at least 1",
            ),
            (
                |r| r.heartbeat_interval_ticks = 30,
                "raft.heartbeat_interval_ticks: 30 must be less than raft.election_timeout_min_ticks (30)",
            ),
            (
                |r| r.election_timeout_max_ticks = 30,
                "raft.election_timeout_max_ticks: 30 must be greater than raft.election_timeout_min_ticks (30)",
            ),
            (
                |r| r.election_timeout_min_ticks = 70,
                "raft.election_timeout_max_ticks: 60 must be greater than",
            ),
            (
                |r| r.max_entries_per_append = 0,
                "raft.max_entries_per_append: must be at least 1",
            ),
            (
                |r| r.max_bytes_per_append = 0,
                "raft.max_bytes_per_append: must be at least 1",
            ),
            // One write of that size could not be logged: it would stop the node.
            (
                |r| r.max_bytes_per_append = 64 << 20,
                "raft.max_bytes_per_append: 67108864 is above 67108833, the largest entry",
            ),
            (
                |r| r.max_snapshot_receive_bytes = 0,
                "raft.max_snapshot_receive_bytes: must be at least 1",
            ),
        ];
        for (mutate, expected) in cases {
            let mut config = valid();
            mutate(&mut config.raft);
            let text = error_of(&config);
            assert!(
                text.starts_with(&format!("configs/test.yaml: {expected}")),
                "{text}"
            );
        }
    }

    #[test]
    fn limits_must_be_non_zero() {
        let cases: [(LimitsEdit, &str); 6] = [
            (|l| l.max_clients = 0, "limits.max_clients"),
            (|l| l.max_bulk_len_bytes = 0, "limits.max_bulk_len_bytes"),
            (|l| l.max_request_args = 0, "limits.max_request_args"),
            (
                |l| l.max_inline_len_bytes = 0,
                "limits.max_inline_len_bytes",
            ),
            (
                |l| l.max_pending_proposals = 0,
                "limits.max_pending_proposals",
            ),
            (|l| l.request_timeout_ms = 0, "limits.request_timeout_ms"),
        ];
        for (mutate, key) in cases {
            let mut config = valid();
            mutate(&mut config.limits);
            assert_eq!(
                error_of(&config),
                format!("configs/test.yaml: {key}: must be non-zero")
            );
        }
    }

    #[test]
    fn cluster_id_and_data_dir_must_not_be_empty() {
        let mut config = valid();
        config.cluster_id = " ".to_string();
        assert_eq!(
            error_of(&config),
            "configs/test.yaml: cluster_id: must not be empty"
        );
        let mut config = valid();
        config.data_dir = PathBuf::new();
        assert_eq!(
            error_of(&config),
            "configs/test.yaml: data_dir: must not be empty"
        );
    }

    #[test]
    fn validate_without_a_file_says_so() {
        let mut config = valid();
        config.id = 0;
        assert!(config
            .validate()
            .expect_err("zero id")
            .to_string()
            .starts_with("<config>: id:"));
    }

    #[test]
    fn overrides_replace_file_values() {
        let mut config = valid();
        config.apply_overrides(Overrides {
            id: Some(9),
            resp_addr: Some("127.0.0.1:9001".parse().expect("addr")),
            http_addr: Some("127.0.0.1:9002".parse().expect("addr")),
            data_dir: Some(PathBuf::from("/tmp/n9")),
            cluster_id: Some("other".to_string()),
        });
        assert_eq!(config.id, 9);
        assert_eq!(config.resp_addr.port(), 9001);
        assert_eq!(config.http_addr.port(), 9002);
        assert_eq!(config.data_dir, PathBuf::from("/tmp/n9"));
        assert_eq!(config.cluster_id, "other");
        assert_eq!(config.voter_ids(), vec![2, 3, 9]);
        config.validate().expect("still valid");
    }

    #[test]
    fn empty_overrides_change_nothing() {
        let mut config = valid();
        config.apply_overrides(Overrides::default());
        assert_eq!(config, valid());
    }

    #[test]
    fn overrides_are_validated_against_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("node1.yaml");
        std::fs::write(&path, VALID).expect("write");
        let overrides = Overrides {
            id: Some(2),
            ..Overrides::default()
        };
        let err = Config::load_with_overrides(&path, overrides).expect_err("id 2 is a peer");
        assert!(
            matches!(err, ConfigError::PeerIsSelf { id: 2, .. }),
            "{err}"
        );
        let overrides = Overrides {
            http_addr: Some("127.0.0.1:9999".parse().expect("addr")),
            ..Overrides::default()
        };
        let config = Config::load_with_overrides(&path, overrides).expect("valid");
        assert_eq!(config.http_addr.port(), 9999);
    }

    #[test]
    fn voter_ids_and_peer_lookup() {
        let mut config = valid();
        config.id = 5;
        assert_eq!(config.voter_ids(), vec![2, 3, 5]);
        assert_eq!(config.peer(3).map(|p| p.http_addr.port()), Some(8003));
        assert!(config.peer(5).is_none());
        assert!(config.peer(4).is_none());
    }

    #[test]
    fn key_path_follows_indentation() {
        let text =
            "a: 1\npeers:\n- id: 1\n  x: 2\n- id: 3\n  y:\n    - 1\n    - 2\nraft:\n  tick_ms: 1\n";
        let path = |line| join_key_path(&key_path_at(text, line));
        assert_eq!(path(1), "a");
        assert_eq!(path(4), "peers[0].x");
        assert_eq!(path(5), "peers[1].id");
        assert_eq!(path(8), "peers[1].y[1]");
        assert_eq!(path(10), "raft.tick_ms");
    }

    #[test]
    fn a_cluster_config_must_choose_mtls_or_say_insecure() {
        let mut config = valid();
        config.insecure_peer_rpc = false;
        let text = error_of(&config);
        assert!(text.contains("peer_tls: required"), "{text}");
        config.peer_tls = Some(PeerTlsConfig {
            ca_cert_path: "certs/ca.pem".into(),
            cert_path: "certs/node1.pem".into(),
            key_path: "certs/node1-key.pem".into(),
        });
        config.validate_for(file()).expect("mTLS alone is valid");
        config.insecure_peer_rpc = true;
        let text = error_of(&config);
        assert!(
            text.contains("insecure_peer_rpc: cannot be true together with peer_tls"),
            "{text}"
        );
        // A single node has no peers to authenticate.
        let single = parse("id: 7\ndata_dir: /tmp/x\npeers: []\n").expect("valid");
        assert!(single.peer_tls.is_none() && !single.insecure_peer_rpc);
    }

    #[test]
    fn client_tls_needs_its_port_a_ca_for_client_certs_and_a_free_address() {
        let text = "id: 7\ndata_dir: /tmp/x\npeers: []\ntls_resp_addr: 127.0.0.1:6380\n\
                    client_tls: { cert_path: s.pem, key_path: s-key.pem, ca_cert_path: ca.pem }\n";
        let mut config = parse(text).expect("valid");
        let tls = config.client_tls.clone().expect("client_tls parsed");
        assert_eq!(tls.auth_clients, AuthClients::Yes, "Redis's default");
        assert_eq!(tls.handshake_timeout_ms, 5_000);
        assert!(matches!(
            tls.client_auth(),
            crate::tls::ClientAuth::Required(ca) if ca == Path::new("ca.pem")
        ));
        config.validate_for(file()).expect("valid");

        let mut no_port = config.clone();
        no_port.tls_resp_addr = None;
        assert!(error_of(&no_port).contains("tls_resp_addr: required with client_tls"));
        let mut no_tls = config.clone();
        no_tls.client_tls = None;
        assert!(error_of(&no_tls).contains("client_tls: required with tls_resp_addr"));

        let edit = |f: fn(&mut ClientTlsConfig)| {
            let mut c = config.clone();
            f(c.client_tls.as_mut().expect("set"));
            c
        };
        let optional_without_ca = edit(|t| {
            t.auth_clients = AuthClients::Optional;
            t.ca_cert_path = None;
        });
        assert!(error_of(&optional_without_ca)
            .contains("client_tls.ca_cert_path: required unless auth_clients is no"));
        let no_without_ca = edit(|t| {
            t.auth_clients = AuthClients::No;
            t.ca_cert_path = None;
        });
        no_without_ca
            .validate_for(file())
            .expect("no client certs, no CA");
        assert!(matches!(
            no_without_ca.client_tls.expect("set").client_auth(),
            crate::tls::ClientAuth::None
        ));
        let empty_key = edit(|t| t.key_path = PathBuf::new());
        assert!(error_of(&empty_key).contains("client_tls.key_path: must not be empty"));
        let zero_timeout = edit(|t| t.handshake_timeout_ms = 0);
        assert!(
            error_of(&zero_timeout).contains("client_tls.handshake_timeout_ms: must be non-zero")
        );

        config.tls_resp_addr = Some(config.resp_addr);
        assert!(error_of(&config).contains(&format!(
            "tls_resp_addr: address {} is already used by resp_addr",
            config.resp_addr
        )));
        let bad = parse(&text.replace("ca_cert_path: ca.pem", "auth_clients: maybe"));
        assert!(bad.is_err(), "unknown auth_clients value accepted");
    }

    #[test]
    fn http_bounds_are_non_zero_and_metrics_addr_is_not_shared() {
        type HttpEdit = fn(&mut HttpConfig);
        let edits: [(HttpEdit, &str); 4] = [
            (
                |h| h.header_read_timeout_ms = 999,
                "http.header_read_timeout_ms: 999 is below the minimum of 1000",
            ),
            (
                |h| h.max_connections = 0,
                "http.max_connections: must be non-zero",
            ),
            (
                |h| h.max_admin_body_bytes = 0,
                "http.max_admin_body_bytes: must be non-zero",
            ),
            (
                |h| h.refused_log_interval_ms = 0,
                "http.refused_log_interval_ms: must be non-zero",
            ),
        ];
        for (edit, expected) in edits {
            let mut config = valid();
            edit(&mut config.http);
            let text = error_of(&config);
            assert!(text.contains(expected), "{text}");
        }
        let mut config = valid();
        config.metrics_addr = Some(config.http_addr);
        let text = error_of(&config);
        assert!(
            text.contains("metrics_addr: address 127.0.0.1:8001 is already used by http_addr"),
            "{text}"
        );
    }
}
