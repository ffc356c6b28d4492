//! The rustls client configuration every upstream connection uses, built once at start-up from
//! [`TlsTrust`]: the built-in roots, only the CAs of a PEM bundle, or no verification at all.
//!
//! Contract: a bundle that cannot be read or holds no usable certificate is an error naming the file and the key
//! or variable that named it; nothing falls back silently to other roots. This module does no network I/O.

use std::{path::Path, sync::Arc};

use rustls::{
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::WebPkiSupportedAlgorithms,
    pki_types::{pem::PemObject, CertificateDer, ServerName, UnixTime},
    ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

use crate::config::{ConfigError, TlsTrust};

/// ALPN offers HTTP/1.1 only. Why: awc would offer `h2` first, but every relay behaviour (cut-off detection,
/// closing the upstream connection when the caller leaves, idle limits) is built and tested on HTTP/1.1, and
/// LiteLLM's httpx client speaks HTTP/1.1 by default too. Offering h2 needs its own tests first.
const ALPN: &[&[u8]] = &[b"http/1.1"];

/// Builds the shared client configuration. Errors name the source (`litellm_settings.ssl_verify`,
/// `SSL_CERT_FILE`, ...) as their path.
pub fn client_config(trust: &TlsTrust) -> Result<Arc<ClientConfig>, ConfigError> {
    // An explicit provider instead of the process default: no global state, and no panic if none is installed.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ConfigError::invalid("upstream TLS", e.to_string()))?;
    let mut config = match trust {
        TlsTrust::BuiltIn => builder.with_root_certificates(actix_tls::connect::rustls_0_23::webpki_roots_cert_store()),
        TlsTrust::Bundle { path, source } => builder.with_root_certificates(load_bundle(path, source)?),
        TlsTrust::Off { .. } => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider.signature_verification_algorithms))),
    }
    .with_no_client_auth();
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// Reads a PEM bundle into a root store. Certificates webpki cannot use are skipped (system bundles sometimes
/// carry a few), but a file with none usable is an error.
fn load_bundle(path: &Path, source: &str) -> Result<RootCertStore, ConfigError> {
    let shown = path.display();
    let bytes = std::fs::read(path)
        .map_err(|e| ConfigError::invalid(source, format!("cannot read CA bundle `{shown}`: {e}")))?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ConfigError::invalid(source, format!("CA bundle `{shown}` is not valid PEM: {e}")))?;
    let mut store = RootCertStore::empty();
    let (added, _skipped) = store.add_parsable_certificates(certs);
    if added == 0 {
        return Err(ConfigError::invalid(source, format!("CA bundle `{shown}` contains no usable PEM certificate")));
    }
    Ok(store)
}

/// `ssl_verify: false`: accepts any certificate for any name. Handshake signatures are still checked, so the
/// peer must at least hold the key of the certificate it shows.
#[derive(Debug)]
struct NoVerification(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    /// A PEM file in the temp dir, removed on drop.
    struct TempFile(std::path::PathBuf);

    impl TempFile {
        fn new(name: &str, contents: &[u8]) -> Self {
            let path = std::env::temp_dir().join(format!("tollgate-tls-{}-{name}", std::process::id()));
            let mut f = std::fs::File::create(&path).unwrap_or_else(|e| unreachable!("{e}"));
            f.write_all(contents).unwrap_or_else(|e| unreachable!("{e}"));
            Self(path)
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn error_for(contents: Option<&[u8]>, name: &str) -> String {
        let file = contents.map(|c| TempFile::new(name, c));
        let path = file.as_ref().map_or_else(|| std::path::PathBuf::from("/nonexistent/ca.pem"), |f| f.0.clone());
        let trust = TlsTrust::Bundle { path: path.clone(), source: "SSL_CERT_FILE" };
        match client_config(&trust) {
            Ok(_) => "no error".into(),
            Err(e) => {
                let text = e.to_string();
                assert!(text.contains(&path.display().to_string()), "names the file: {text}");
                text
            }
        }
    }

    #[test]
    fn bad_bundles_are_errors_naming_the_variable_and_file() {
        let cases: [(Option<&[u8]>, &str, &str); 4] = [
            (None, "missing", "cannot read CA bundle"),
            (Some(b""), "empty", "no usable PEM certificate"),
            (Some(b"not a certificate at all\n"), "text", "no usable PEM certificate"),
            (Some(b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n"), "garbled", "not valid PEM"),
        ];
        for (contents, name, want) in cases {
            let err = error_for(contents, name);
            assert!(err.starts_with("`SSL_CERT_FILE`: ") && err.contains(want), "{name}: {err}");
        }
    }

    #[test]
    fn built_in_and_disabled_trust_build_and_offer_http1_only() {
        for trust in [TlsTrust::BuiltIn, TlsTrust::Off { source: "litellm_settings.ssl_verify" }] {
            let config = client_config(&trust).unwrap_or_else(|e| unreachable!("{e}"));
            assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);
        }
    }
}
