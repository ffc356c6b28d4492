//! A throw-away certificate authority for TLS tests: a CA generated at test time and a leaf certificate for
//! `localhost` and `127.0.0.1` signed by it. Tests exercise real certificate verification with nothing secret
//! or expiring checked into the repository.

use std::{
    path::PathBuf,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
};

use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

/// A CA whose certificate tests hand to the gateway as its trust bundle. Files written by
/// [`TestCa::write_pem`] are removed when it drops.
pub struct TestCa {
    cert: rcgen::Certificate,
    key: KeyPair,
    files: Mutex<Vec<PathBuf>>,
}

impl Default for TestCa {
    fn default() -> Self {
        Self::new("tollgate test CA")
    }
}

impl TestCa {
    /// A new CA with its own key; two CAs never trust each other's leaves.
    pub fn new(name: &str) -> TestCa {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).expect("CA certificate");
        TestCa { cert, key, files: Mutex::new(Vec::new()) }
    }

    /// The CA certificate in PEM.
    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    /// Writes the CA certificate to a new file in the temp dir and returns its path.
    pub fn write_pem(&self) -> PathBuf {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("tollgate-test-ca-{}-{n}.pem", std::process::id()));
        std::fs::write(&path, self.pem()).expect("write CA bundle");
        self.files.lock().unwrap_or_else(|p| p.into_inner()).push(path.clone());
        path
    }

    /// A TLS server configuration presenting a leaf for `localhost` and `127.0.0.1`, signed by this CA.
    pub fn server_config(&self) -> rustls::ServerConfig {
        let key = KeyPair::generate().expect("leaf key");
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).expect("leaf params");
        params.distinguished_name.push(DnType::CommonName, "localhost");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let leaf = params.signed_by(&key, &self.cert, &self.key).expect("leaf certificate");
        let private = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(vec![leaf.der().clone()], private)
            .expect("server certificate")
    }
}

impl Drop for TestCa {
    fn drop(&mut self) {
        for path in self.files.lock().unwrap_or_else(|p| p.into_inner()).drain(..) {
            let _ = std::fs::remove_file(path);
        }
    }
}
