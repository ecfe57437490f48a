//! TLS material: PEM loading, rustls configurations, and the cluster's
//! certificate authority (generation of a CA and of node certificates).
//!
//! This module owns:
//! - reading certificate chains, private keys and trust anchors from PEM files,
//!   every failure naming the file ([`TlsError`]);
//! - building rustls [`ServerConfig`]s and [`ClientConfig`]s on the `ring`
//!   provider (TLS 1.2 and 1.3, rustls's safe defaults);
//! - the peer identity rule: a node's certificate names its member id as the
//!   DNS name [`peer_name`] (`node-<id>.dkv`), so peers are authenticated by
//!   cluster CA + member id and never by the address they were reached at (test
//!   proxies and NAT put other addresses between peers);
//! - generating a cluster CA and node certificates (rcgen), written with keys
//!   readable by the owner only (mode 0600).
//!
//! Invariants: nothing here trusts the system roots; a peer configuration
//! trusts exactly the cluster CA file it was given. Nothing here does network
//! I/O; the only file I/O is reading and writing the PEM files named by the
//! caller.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::crypto::CryptoProvider;
use rustls::server::danger::ClientCertVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use crate::raft::NodeId;

/// File name of the cluster CA certificate in a certificate directory.
pub const CA_CERT_FILE: &str = "ca.pem";
/// File name of the cluster CA private key in a certificate directory.
pub const CA_KEY_FILE: &str = "ca-key.pem";

/// File name of node `id`'s certificate in a certificate directory.
pub fn node_cert_file(id: NodeId) -> String {
    format!("node{id}.pem")
}

/// File name of node `id`'s private key in a certificate directory.
pub fn node_key_file(id: NodeId) -> String {
    format!("node{id}-key.pem")
}

/// Why TLS material could not be loaded, built or written.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or parsed as PEM.
    #[error("{path}: {reason}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// A PEM file held no item of the expected kind.
    #[error("{path}: no {what} found in PEM file")]
    Missing {
        /// The file.
        path: PathBuf,
        /// What was expected ("certificate", "private key").
        what: &'static str,
    },
    /// A CA file held a certificate rustls refused as a trust anchor.
    #[error("{path}: not a usable CA certificate: {source}")]
    BadCa {
        /// The file.
        path: PathBuf,
        /// rustls's reason.
        source: rustls::Error,
    },
    /// rustls refused the certificate chain and key (e.g. a key that does not
    /// match the certificate, or an unsupported key type).
    #[error("certificate {cert} with key {key}: {source}")]
    BadIdentity {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// rustls's reason.
        source: rustls::Error,
    },
    /// The client-certificate verifier could not be built from the CA file.
    #[error("{path}: cannot verify client certificates with this CA: {reason}")]
    Verifier {
        /// The CA file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Certificate or key generation failed.
    #[error("generating {what}: {source}")]
    Generate {
        /// What was being generated.
        what: String,
        /// rcgen's reason.
        source: rcgen::Error,
    },
    /// A generated file could not be written.
    #[error("{path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// The crypto provider every configuration here uses.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_pem(path: &Path) -> Result<Vec<u8>, TlsError> {
    fs::read(path).map_err(|err| TlsError::Pem {
        path: path.to_path_buf(),
        reason: err.to_string(),
    })
}

/// Reads every certificate of a PEM file, leaf first as written (a chain).
///
/// # Errors
/// When the file cannot be read, is not PEM, or holds no certificate.
pub fn load_cert_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read_pem(path)?;
    let chain = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| TlsError::Pem {
            path: path.to_path_buf(),
            reason: err.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::Missing {
            path: path.to_path_buf(),
            what: "certificate",
        });
    }
    Ok(chain)
}

/// Reads the first private key (PKCS#8, PKCS#1 or SEC1) of a PEM file.
///
/// # Errors
/// When the file cannot be read, is not PEM, or holds no private key.
pub fn load_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read_pem(path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|err| match err {
        rustls_pki_types::pem::Error::NoItemsFound => TlsError::Missing {
            path: path.to_path_buf(),
            what: "private key",
        },
        other => TlsError::Pem {
            path: path.to_path_buf(),
            reason: other.to_string(),
        },
    })
}

/// Reads the trust anchors (CA certificates) of a PEM file.
///
/// # Errors
/// When the file cannot be read, holds no certificate, or a certificate is not
/// usable as a trust anchor.
pub fn load_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in load_cert_chain(path)? {
        roots.add(cert).map_err(|source| TlsError::BadCa {
            path: path.to_path_buf(),
            source,
        })?;
    }
    Ok(roots)
}

/// Whether a server asks its clients for certificates.
#[derive(Clone, Debug)]
pub enum ClientAuth {
    /// No client certificates are asked for.
    None,
    /// Clients may present a certificate; one that is presented must chain to
    /// the CA file's anchors.
    Optional(PathBuf),
    /// Clients must present a certificate chaining to the CA file's anchors.
    Required(PathBuf),
}

fn client_verifier(
    ca_path: &Path,
    optional: bool,
) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    let roots = Arc::new(load_roots(ca_path)?);
    let builder = WebPkiClientVerifier::builder_with_provider(roots, provider());
    let builder = if optional {
        builder.allow_unauthenticated()
    } else {
        builder
    };
    builder.build().map_err(|err| TlsError::Verifier {
        path: ca_path.to_path_buf(),
        reason: err.to_string(),
    })
}

/// A server configuration presenting the chain in `cert_path` with the key in
/// `key_path`, asking clients for certificates as `client_auth` says.
///
/// # Errors
/// When a file cannot be loaded, or rustls refuses the chain and key.
pub fn server_config(
    cert_path: &Path,
    key_path: &Path,
    client_auth: &ClientAuth,
) -> Result<ServerConfig, TlsError> {
    let chain = load_cert_chain(cert_path)?;
    let key = load_private_key(key_path)?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|source| TlsError::BadIdentity {
            cert: cert_path.to_path_buf(),
            key: key_path.to_path_buf(),
            source,
        })?;
    let builder = match client_auth {
        ClientAuth::None => builder.with_no_client_auth(),
        ClientAuth::Optional(ca) => builder.with_client_cert_verifier(client_verifier(ca, true)?),
        ClientAuth::Required(ca) => builder.with_client_cert_verifier(client_verifier(ca, false)?),
    };
    builder
        .with_single_cert(chain, key)
        .map_err(|source| TlsError::BadIdentity {
            cert: cert_path.to_path_buf(),
            key: key_path.to_path_buf(),
            source,
        })
}

/// A client configuration trusting only the anchors in `ca_path`, presenting
/// the chain and key of `identity` (cert path, key path) when given.
///
/// # Errors
/// When a file cannot be loaded, or rustls refuses the chain and key.
pub fn client_config(
    ca_path: &Path,
    identity: Option<(&Path, &Path)>,
) -> Result<ClientConfig, TlsError> {
    let roots = load_roots(ca_path)?;
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|source| TlsError::BadCa {
            path: ca_path.to_path_buf(),
            source,
        })?
        .with_root_certificates(roots);
    match identity {
        None => Ok(builder.with_no_client_auth()),
        Some((cert_path, key_path)) => {
            let chain = load_cert_chain(cert_path)?;
            let key = load_private_key(key_path)?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|source| TlsError::BadIdentity {
                    cert: cert_path.to_path_buf(),
                    key: key_path.to_path_buf(),
                    source,
                })
        }
    }
}

/// The DNS name a node's certificate carries to name member `id`.
pub fn peer_name_string(id: NodeId) -> String {
    format!("node-{id}.dkv")
}

/// The name a client asks for (SNI and verification) when it means to reach
/// member `id`: the server's certificate must be valid for this name.
pub fn peer_name(id: NodeId) -> ServerName<'static> {
    // "node-<decimal>.dkv" is always a valid DNS name.
    ServerName::try_from(peer_name_string(id)).expect("node-<u64>.dkv is a valid DNS name")
}

/// Whether `cert` (a leaf already verified to chain to the cluster CA) names
/// member `id`.
pub fn cert_names_node(cert: &CertificateDer<'_>, id: NodeId) -> bool {
    let Ok(end_entity) = webpki::EndEntityCert::try_from(cert) else {
        return false;
    };
    end_entity
        .verify_is_valid_for_subject_name(&peer_name(id))
        .is_ok()
}

/// The rustls configurations a node uses for peer RPC: a server that requires
/// client certificates from the cluster CA, and a client that presents the
/// node's certificate and trusts only the cluster CA.
#[derive(Clone)]
pub struct PeerTls {
    /// For the peer listener.
    pub server: Arc<ServerConfig>,
    /// For outbound peer connections.
    pub client: Arc<ClientConfig>,
}

impl std::fmt::Debug for PeerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PeerTls { .. }")
    }
}

impl PeerTls {
    /// Loads the node's peer TLS material.
    ///
    /// # Errors
    /// When a file cannot be loaded or rustls refuses it; the error names the file.
    pub fn load(ca_cert_path: &Path, cert_path: &Path, key_path: &Path) -> Result<Self, TlsError> {
        let mut server = server_config(
            cert_path,
            key_path,
            &ClientAuth::Required(ca_cert_path.to_path_buf()),
        )?;
        server.alpn_protocols = vec![b"http/1.1".to_vec()];
        let mut client = client_config(ca_cert_path, Some((cert_path, key_path)))?;
        client.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(PeerTls {
            server: Arc::new(server),
            client: Arc::new(client),
        })
    }
}

/// A certificate and its private key, PEM-encoded.
#[derive(Clone)]
pub struct PemPair {
    /// The certificate.
    pub cert_pem: String,
    /// The private key (PKCS#8).
    pub key_pem: String,
}

impl std::fmt::Debug for PemPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PemPair")
            .field("cert_pem", &self.cert_pem)
            .finish_non_exhaustive()
    }
}

/// The validity window of a generated certificate: from a day ago (clock skew
/// between nodes) for `valid_days` days.
fn validity(params: &mut CertificateParams, valid_days: u32) {
    let now_secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let day = 86_400i64;
    let now = rcgen::date_time_ymd(1970, 1, 1) + time_secs(now_secs as i64);
    params.not_before = now - time_secs(day);
    params.not_after = now + time_secs(day * i64::from(valid_days));
}

fn time_secs(secs: i64) -> std::time::Duration {
    std::time::Duration::from_secs(secs.max(0) as u64)
}

fn generated(what: impl Into<String>) -> impl FnOnce(rcgen::Error) -> TlsError {
    let what = what.into();
    move |source| TlsError::Generate { what, source }
}

/// Generates a cluster CA (ECDSA P-256), valid `valid_days` days, whose
/// subject names `cluster_id`.
///
/// # Errors
/// When rcgen fails.
pub fn generate_ca(cluster_id: &str, valid_days: u32) -> Result<PemPair, TlsError> {
    let key = KeyPair::generate().map_err(generated("the CA key"))?;
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, format!("dkv cluster CA {cluster_id}"));
    name.push(DnType::OrganizationName, "dkv");
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    validity(&mut params, valid_days);
    let cert = params
        .self_signed(&key)
        .map_err(generated("the CA certificate"))?;
    Ok(PemPair {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// Generates the certificate of member `id`, signed by the CA in `ca`, valid
/// `valid_days` days, for both server and client authentication. It carries the
/// DNS name [`peer_name_string`] and every name of `extra_names` (DNS names or
/// IP addresses, for clients that verify the host they connect to).
///
/// # Errors
/// When the CA cannot be parsed, a name is invalid, or rcgen fails.
pub fn generate_node_cert(
    ca: &PemPair,
    id: NodeId,
    extra_names: &[String],
    valid_days: u32,
) -> Result<PemPair, TlsError> {
    let ca_key = KeyPair::from_pem(&ca.key_pem).map_err(generated("the CA key (parse)"))?;
    let issuer = Issuer::from_ca_cert_pem(&ca.cert_pem, ca_key)
        .map_err(generated("the CA certificate (parse)"))?;
    let mut names = vec![peer_name_string(id)];
    names.extend(extra_names.iter().cloned());
    let mut params =
        CertificateParams::new(names).map_err(generated(format!("node {id}'s names")))?;
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, format!("dkv node {id}"));
    name.push(DnType::OrganizationName, "dkv");
    params.distinguished_name = name;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    validity(&mut params, valid_days);
    debug_assert!(params
        .subject_alt_names
        .iter()
        .any(|san| matches!(san, SanType::DnsName(_))));
    let key = KeyPair::generate().map_err(generated(format!("node {id}'s key")))?;
    let cert = params
        .signed_by(&key, &issuer)
        .map_err(generated(format!("node {id}'s certificate")))?;
    Ok(PemPair {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// Writes `contents` to `path` with file mode `mode` (e.g. 0o600 for keys).
/// Refuses to replace an existing file unless `overwrite`.
///
/// # Errors
/// When the file exists (and `overwrite` is false) or cannot be written.
pub fn write_file(path: &Path, contents: &str, mode: u32, overwrite: bool) -> Result<(), TlsError> {
    let wrap = |source| TlsError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut options = fs::OpenOptions::new();
    options.write(true).mode(mode);
    if overwrite {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let mut file = options.open(path).map_err(wrap)?;
    // `mode` applies only to a file this call creates; an overwritten file
    // gets it too, so a key never stays world-readable.
    fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(mode)).map_err(wrap)?;
    file.write_all(contents.as_bytes()).map_err(wrap)?;
    file.sync_all().map_err(wrap)
}

/// Reads a CA (certificate and key) written by [`write_ca`] from `dir`.
///
/// # Errors
/// When a file cannot be read.
pub fn read_ca(dir: &Path) -> Result<PemPair, TlsError> {
    let read = |name: &str| {
        let path = dir.join(name);
        fs::read_to_string(&path).map_err(|err| TlsError::Pem {
            path,
            reason: err.to_string(),
        })
    };
    Ok(PemPair {
        cert_pem: read(CA_CERT_FILE)?,
        key_pem: read(CA_KEY_FILE)?,
    })
}

/// Writes a CA into `dir` as [`CA_CERT_FILE`] (0644) and [`CA_KEY_FILE`] (0600).
///
/// # Errors
/// When `dir` cannot be created or a file cannot be written.
pub fn write_ca(dir: &Path, ca: &PemPair, overwrite: bool) -> Result<(), TlsError> {
    fs::create_dir_all(dir).map_err(|source| TlsError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    write_file(&dir.join(CA_CERT_FILE), &ca.cert_pem, 0o644, overwrite)?;
    write_file(&dir.join(CA_KEY_FILE), &ca.key_pem, 0o600, overwrite)
}

/// Writes node `id`'s certificate (0644) and key (0600) into `dir` under
/// [`node_cert_file`] and [`node_key_file`]; returns their paths.
///
/// # Errors
/// When `dir` cannot be created or a file cannot be written.
pub fn write_node(
    dir: &Path,
    id: NodeId,
    node: &PemPair,
    overwrite: bool,
) -> Result<(PathBuf, PathBuf), TlsError> {
    fs::create_dir_all(dir).map_err(|source| TlsError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    let cert = dir.join(node_cert_file(id));
    let key = dir.join(node_key_file(id));
    write_file(&cert, &node.cert_pem, 0o644, overwrite)?;
    write_file(&key, &node.key_pem, 0o600, overwrite)?;
    Ok((cert, key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn cluster(dir: &Path, ids: &[u64]) {
        let ca = generate_ca("test", 30).unwrap();
        write_ca(dir, &ca, false).unwrap();
        for &id in ids {
            let node = generate_node_cert(&ca, NodeId(id), &["127.0.0.1".to_string()], 30).unwrap();
            write_node(dir, NodeId(id), &node, false).unwrap();
        }
    }

    #[test]
    fn generated_node_cert_chains_to_its_ca_and_names_only_its_id() {
        let dir = tempfile::tempdir().unwrap();
        cluster(dir.path(), &[1, 2]);
        let cert = &load_cert_chain(&dir.path().join(node_cert_file(NodeId(1)))).unwrap()[0];
        assert!(cert_names_node(cert, NodeId(1)));
        assert!(!cert_names_node(cert, NodeId(2)));
        assert!(!cert_names_node(cert, NodeId(11)));
        // The chain verifies against the CA as a client certificate.
        let verifier = client_verifier(&dir.path().join(CA_CERT_FILE), false).unwrap();
        let now = rustls_pki_types::UnixTime::now();
        verifier
            .verify_client_cert(cert, &[], now)
            .expect("node cert chains to the cluster CA");
        // ...and not against another cluster's CA.
        let other = tempfile::tempdir().unwrap();
        cluster(other.path(), &[]);
        let foreign = client_verifier(&other.path().join(CA_CERT_FILE), false).unwrap();
        assert!(foreign.verify_client_cert(cert, &[], now).is_err());
    }

    #[test]
    fn keys_are_written_owner_only_and_never_overwritten_by_default() {
        let dir = tempfile::tempdir().unwrap();
        cluster(dir.path(), &[3]);
        for name in [CA_KEY_FILE.to_string(), node_key_file(NodeId(3))] {
            let mode = fs::metadata(dir.path().join(&name))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{name}");
        }
        let ca = read_ca(dir.path()).unwrap();
        let err = write_ca(dir.path(), &ca, false).unwrap_err();
        assert!(err.to_string().contains(CA_CERT_FILE), "{err}");
        write_ca(dir.path(), &ca, true).unwrap();
    }

    #[test]
    fn peer_configs_load_and_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        cluster(dir.path(), &[1]);
        let ca = dir.path().join(CA_CERT_FILE);
        let cert = dir.path().join(node_cert_file(NodeId(1)));
        let key = dir.path().join(node_key_file(NodeId(1)));
        PeerTls::load(&ca, &cert, &key).unwrap();

        let missing = dir.path().join("nope.pem");
        let err = PeerTls::load(&ca, &cert, &missing).unwrap_err();
        assert!(err.to_string().contains("nope.pem"), "{err}");
        // A certificate file given where a key is expected.
        let err = PeerTls::load(&ca, &cert, &cert).unwrap_err();
        assert!(
            err.to_string().contains("no private key found")
                && err.to_string().contains("node1.pem"),
            "{err}"
        );
        // A key that does not match the certificate.
        cluster(&dir.path().join("other"), &[1]);
        let other_key = dir.path().join("other").join(node_key_file(NodeId(1)));
        let err = PeerTls::load(&ca, &cert, &other_key).unwrap_err();
        assert!(matches!(err, TlsError::BadIdentity { .. }), "{err}");
    }

    /// A full handshake in memory: each side verifies the other's certificate
    /// against the cluster CA, the client asks for the member it means to reach.
    #[tokio::test]
    async fn mutual_handshake_succeeds_for_the_right_member_and_fails_for_another() {
        let dir = tempfile::tempdir().unwrap();
        cluster(dir.path(), &[1, 2]);
        let load = |id: u64| {
            PeerTls::load(
                &dir.path().join(CA_CERT_FILE),
                &dir.path().join(node_cert_file(NodeId(id))),
                &dir.path().join(node_key_file(NodeId(id))),
            )
            .unwrap()
        };
        let (server_tls, client_tls) = (load(2), load(1));
        for (target, ok) in [(2u64, true), (3u64, false)] {
            let (client_io, server_io) = tokio::io::duplex(64 * 1024);
            let acceptor = tokio_rustls::TlsAcceptor::from(server_tls.server.clone());
            let connector = tokio_rustls::TlsConnector::from(client_tls.client.clone());
            let server = tokio::spawn(async move { acceptor.accept(server_io).await });
            let client = connector
                .connect(peer_name(NodeId(target)), client_io)
                .await;
            assert_eq!(client.is_ok(), ok, "reaching node {target}");
            if ok {
                let stream = server.await.unwrap().unwrap();
                let presented = stream.get_ref().1.peer_certificates().unwrap();
                assert!(cert_names_node(&presented[0], NodeId(1)));
            } else {
                server.abort();
            }
        }
    }
}
