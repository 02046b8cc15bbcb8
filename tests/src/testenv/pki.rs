//! Throwaway PKI for the test control plane: one CA that signs the apiserver's serving
//! certificate and the client certificates, and a service-account signing key.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

use super::{TestEnvError, real_node};

/// Paths of everything the PKI wrote, and the CA to issue client certificates with.
pub struct Pki {
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    pub serving_cert: PathBuf,
    pub serving_key: PathBuf,
    pub sa_key: PathBuf,
    pub sa_pub: PathBuf,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pki").field("ca_cert", &self.ca_cert).finish_non_exhaustive()
    }
}

/// A client identity signed by the CA, as PEM.
#[derive(Debug, Clone)]
pub struct ClientCert {
    pub cert_pem: String,
    pub key_pem: String,
}

fn pki_err(what: &str, e: rcgen::Error) -> TestEnvError {
    TestEnvError::Setup(format!("{what}: {e}"))
}

fn write(path: &Path, text: &str) -> Result<(), TestEnvError> {
    std::fs::write(path, text).map_err(|e| TestEnvError::io(format!("write {}", path.display()), e))
}

fn name(common_name: &str, organization: Option<&str>) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    if let Some(org) = organization {
        dn.push(DnType::OrganizationName, org);
    }
    dn
}

impl Pki {
    /// Creates the CA, the apiserver's serving certificate and the service-account key in `dir`.
    pub fn create(dir: &Path) -> Result<Pki, TestEnvError> {
        std::fs::create_dir_all(dir).map_err(|e| TestEnvError::io("create pki dir", e))?;
        let ca_key = KeyPair::generate().map_err(|e| pki_err("CA key", e))?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(|e| pki_err("CA params", e))?;
        ca_params.distinguished_name = name("spore-test-ca", None);
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca_params.self_signed(&ca_key).map_err(|e| pki_err("CA cert", e))?;

        write(&dir.join("ca.crt"), &ca_cert.pem())?;
        write(&dir.join("ca.key"), &ca_key.serialize_pem())?;
        let issuer = Issuer::new(ca_params, ca_key);
        let pki = Pki {
            ca_cert: dir.join("ca.crt"),
            ca_key: dir.join("ca.key"),
            serving_cert: dir.join("apiserver.crt"),
            serving_key: dir.join("apiserver.key"),
            sa_key: dir.join("sa.key"),
            sa_pub: dir.join("sa.pub"),
            issuer,
        };
        let serving_key = KeyPair::generate().map_err(|e| pki_err("serving key", e))?;
        let mut serving = CertificateParams::new(vec![
            "localhost".to_string(),
            "kubernetes".into(),
            "kubernetes.default".into(),
            "kubernetes.default.svc".into(),
            "kubernetes.default.svc.cluster.local".into(),
        ])
        .map_err(|e| pki_err("serving params", e))?;
        for ip in ["127.0.0.1", "10.0.0.1", real_node::NODE_IP] {
            serving
                .subject_alt_names
                .push(SanType::IpAddress(ip.parse().map_err(|_| TestEnvError::Setup(format!("bad IP {ip}")))?));
        }
        serving.distinguished_name = name("kube-apiserver", None);
        serving.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let serving_cert = serving.signed_by(&serving_key, &pki.issuer).map_err(|e| pki_err("serving cert", e))?;
        write(&pki.serving_cert, &serving_cert.pem())?;
        write(&pki.serving_key, &serving_key.serialize_pem())?;

        let sa_key = KeyPair::generate().map_err(|e| pki_err("service-account key", e))?;
        write(&pki.sa_key, &sa_key.serialize_pem())?;
        write(&pki.sa_pub, &sa_key.public_key_pem())?;
        Ok(pki)
    }

    /// A client certificate for `user`, in `group` if given (the certificate's O).
    pub fn client_cert(&self, user: &str, group: Option<&str>) -> Result<ClientCert, TestEnvError> {
        let key = KeyPair::generate().map_err(|e| pki_err("client key", e))?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(|e| pki_err("client params", e))?;
        params.distinguished_name = name(user, group);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &self.issuer).map_err(|e| pki_err("client cert", e))?;
        Ok(ClientCert { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
    }
}
