//! A stand-in for a node's relay (HAProxy on a real node) in front of a
//! plain test engine: TLS with a self-signed certificate made by `openssl`
//! (as bootstrap.sh makes it), and the relay key checked as HAProxy checks
//! it (its SHA-256 against the allowed ones) on the first request of each
//! connection; a connection without it gets 401 and is closed, one with it
//! is then passed through to the engine byte for byte.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const KEY_HEADER: &str = "x-inventiv-relay-key";
const MAX_HEAD: usize = 64 * 1024;

/// A certificate and its private key (DER), and the pin: the SHA-256 of
/// the certificate.
#[derive(Clone)]
pub struct Certificate {
    pub cert_der: Vec<u8>,
    pub key_der: Vec<u8>,
    pub sha256: [u8; 32],
}

impl Certificate {
    /// A fresh self-signed P-256 certificate, `CN=inventiv-node`.
    pub fn generate() -> Certificate {
        let dir = std::env::temp_dir().join(format!("inventiv-relay-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let (key_pem, cert_der, key_der) = (
            dir.join("key.pem"),
            dir.join("cert.der"),
            dir.join("key.der"),
        );
        let made = std::process::Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
            .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "3650"])
            .args(["-subj", "/CN=inventiv-node", "-outform", "DER", "-keyout"])
            .arg(&key_pem)
            .arg("-out")
            .arg(&cert_der)
            .output()
            .expect("openssl (Debian: apt-get install openssl)");
        assert!(made.status.success(), "openssl req: {made:?}");
        let converted = std::process::Command::new("openssl")
            .args(["pkcs8", "-topk8", "-nocrypt", "-outform", "DER", "-in"])
            .arg(&key_pem)
            .arg("-out")
            .arg(&key_der)
            .output()
            .unwrap();
        assert!(converted.status.success(), "openssl pkcs8: {converted:?}");
        let cert_der = std::fs::read(&cert_der).unwrap();
        let key_der = std::fs::read(&key_der).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let sha256 = Sha256::digest(&cert_der).into();
        Certificate {
            cert_der,
            key_der,
            sha256,
        }
    }
}

/// A running stand-in relay; stops when dropped.
pub struct Relay {
    pub port: u16,
    pub certificate: Certificate,
    allowed: Arc<Mutex<HashSet<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Relay {
    /// Accepts the key whose SHA-256 (hex) is `key_sha256`, as the node's
    /// configuration does.
    pub fn allow(&self, key_sha256: &str) {
        self.allowed
            .lock()
            .unwrap()
            .insert(key_sha256.to_lowercase());
    }
}

/// Starts a relay on a free loopback port in front of `127.0.0.1:backend`.
pub async fn start(backend: u16, certificate: Certificate) -> Relay {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![CertificateDer::from(certificate.cert_der.clone())],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certificate.key_der.clone())),
    )
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let allowed: Arc<Mutex<HashSet<String>>> = Arc::default();
    let task = {
        let allowed = allowed.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                // As HAProxy does: small writes (SSE events) leave at once
                // instead of waiting ~40 ms for Nagle and a delayed ACK.
                let _ = tcp.set_nodelay(true);
                let (acceptor, allowed) = (acceptor.clone(), allowed.clone());
                tokio::spawn(async move {
                    if let Ok(tls) = acceptor.accept(tcp).await {
                        relay(tls, backend, &allowed).await;
                    }
                });
            }
        })
    };
    Relay {
        port,
        certificate,
        allowed,
        task,
    }
}

async fn relay(
    mut tls: tokio_rustls::server::TlsStream<TcpStream>,
    backend: u16,
    allowed: &Mutex<HashSet<String>>,
) {
    let mut head = Vec::new();
    let mut buf = [0u8; 8192];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match tls.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
        if head.len() > MAX_HEAD {
            return;
        }
    }
    let text = String::from_utf8_lossy(&head);
    let key_sha256 = text.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case(KEY_HEADER)
            .then(|| hex::encode(Sha256::digest(value.trim().as_bytes())))
    });
    let ok = key_sha256.is_some_and(|k| allowed.lock().unwrap().contains(&k));
    if !ok {
        let body =
            r#"{"error":{"code":"relay_unauthorized","message":"missing or invalid relay key"}}"#;
        let answer = format!(
            "HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = tls.write_all(answer.as_bytes()).await;
        let _ = tls.shutdown().await;
        return;
    }
    let Ok(mut engine) = TcpStream::connect(("127.0.0.1", backend)).await else {
        return;
    };
    let _ = engine.set_nodelay(true);
    if engine.write_all(&head).await.is_ok() {
        let _ = tokio::io::copy_bidirectional(&mut tls, &mut engine).await;
    }
}
