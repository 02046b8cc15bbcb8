//! Connections to Postgres, encrypted as the URL's `sslmode` says: `disable` is plain text;
//! `prefer` (the default) uses TLS when the server offers it and plain text when it offers none;
//! `require` insists on TLS. Over TLS (rustls) the server's certificate is always verified — its
//! name and its chain, to the system's roots or to the lab's CA (`--database-ca-file`, PEM) — so
//! a database on the network cannot be impersonated; a certificate that does not verify ends
//! the connection with that error.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio_postgres::Client;
use tokio_postgres_rustls::MakeRustlsConnect;

/// The TLS connector: the system's roots, and the CAs in `ca_file` when given.
pub fn connector(ca_file: Option<&Path>) -> anyhow::Result<MakeRustlsConnect> {
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        // A system certificate rustls cannot use is skipped, not fatal.
        let _ = roots.add(cert);
    }
    if let Some(path) = ca_file {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .with_context(|| format!("read the database CA file {}", path.display()))?
            .collect::<Result<_, _>>()
            .with_context(|| format!("{} is not PEM certificates", path.display()))?;
        if certs.is_empty() {
            anyhow::bail!("{} holds no certificate", path.display());
        }
        for cert in certs {
            roots.add(cert).with_context(|| format!("a certificate in {} is not a usable CA", path.display()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// Connects to `url` (TLS as its `sslmode` says); the connection runs in a task of its own,
/// returned to be aborted with the client.
pub async fn connect(
    url: &str,
    ca_file: Option<&Path>,
) -> anyhow::Result<(Client, tokio::task::JoinHandle<Result<(), tokio_postgres::Error>>)> {
    let (client, connection) = tokio_postgres::connect(url, connector(ca_file)?).await.context("Postgres")?;
    Ok((client, tokio::spawn(connection)))
}
