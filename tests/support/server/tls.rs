//! A fake's certificates: a CA made at run time (its PEM is the tests' CA_BUNDLE) and the
//! leaf it signs.

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// What the certificates name.
pub struct Names<'a> {
    /// The CA's common name. Each fake names its own: two CAs of one subject name in one
    /// bundle are more than OpenSSL-based clients can tell apart.
    pub ca: &'a str,
    /// The leaf's common name, if any.
    pub leaf: Option<&'a str>,
    /// The leaf's subject alternative names.
    pub hosts: &'a [&'a str],
    /// Make the leaf expired (valid only in 2020).
    pub expired: bool,
}

/// A fresh CA's PEM and a server configuration presenting a leaf for `names` signed by it
/// (the chain sent is the leaf and the CA).
pub fn certificates(names: &Names) -> (String, rustls::ServerConfig) {
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, names.ca);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key).expect("CA cert");
    let issuer = Issuer::new(ca_params, ca_key);

    let leaf_key = KeyPair::generate().expect("leaf key");
    let hosts: Vec<String> = names.hosts.iter().map(|h| (*h).to_owned()).collect();
    let mut leaf_params = CertificateParams::new(hosts).expect("leaf params");
    if names.expired {
        leaf_params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        leaf_params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    }
    if let Some(name) = names.leaf {
        leaf_params
            .distinguished_name
            .push(DnType::CommonName, name);
    }
    let leaf = leaf_params
        .signed_by(&leaf_key, &issuer)
        .expect("leaf cert");

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocols")
        .with_no_client_auth()
        .with_single_cert(
            vec![
                CertificateDer::from(leaf.der().to_vec()),
                CertificateDer::from(ca_cert.der().to_vec()),
            ],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
        )
        .expect("server config");
    (ca_cert.pem(), config)
}

/// [`certificates`] for a fake at `localhost` and `127.0.0.1`, its leaf valid now.
pub fn localhost(ca: &str, leaf: Option<&str>) -> (String, rustls::ServerConfig) {
    certificates(&Names {
        ca,
        leaf,
        hosts: &["localhost", "127.0.0.1"],
        expired: false,
    })
}
