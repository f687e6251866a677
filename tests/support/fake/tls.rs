//! The fake's certificates: a CA made at run time (its PEM is the tests' CA_BUNDLE) and the
//! leaf it signs, valid or deliberately wrong.

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// The certificate the fake presents.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Cert {
    /// Valid for localhost and 127.0.0.1, signed by the run's CA.
    #[default]
    Valid,
    /// Signed by the run's CA but only for bitbucket.example.
    WrongName,
    /// Signed by the run's CA, for the right names, but expired in 2021.
    Expired,
}

/// A fresh CA's PEM and a server configuration presenting a leaf of `kind` signed by it.
pub(super) fn certificates(kind: &Cert) -> (String, rustls::ServerConfig) {
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "oauth-token-pipe test CA");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key).expect("CA cert");
    let issuer = Issuer::new(ca_params, ca_key);

    let leaf_key = KeyPair::generate().expect("leaf key");
    let names = match kind {
        Cert::WrongName => vec!["bitbucket.example".to_string()],
        // fake.test: a name that is not loopback, for the proxy tests (the test proxy
        // resolves it to 127.0.0.1; the client never resolves it itself).
        _ => vec![
            "localhost".to_string(),
            "127.0.0.1".to_string(),
            "fake.test".to_string(),
        ],
    };
    let mut leaf_params = CertificateParams::new(names).expect("leaf params");
    if *kind == Cert::Expired {
        leaf_params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        leaf_params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    }
    leaf_params
        .distinguished_name
        .push(DnType::CommonName, "fake bitbucket");
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
