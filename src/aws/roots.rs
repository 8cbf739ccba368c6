//! The HTTPS client of kiln's Lambdas: the SDK's default (rustls with
//! aws-lc, the proxy from the environment), trusting the Mozilla root
//! certificates compiled in (`webpki-root-certs`) instead of the system's.
//!
//! Loading the system's roots reads and parses every file of the system's
//! certificate bundle and directory on each cold start (9 ms of a 17 ms
//! init on Debian, where the directory holds one file per root; how much
//! elsewhere depends on the image). The compiled-in set costs the same on
//! every image and holds the roots AWS's endpoints chain to (Amazon Trust
//! Services, Starfield). Where `SSL_CERT_FILE` or `SSL_CERT_DIR` is set (a
//! TLS-inspecting proxy's root), the system's roots are used as they name
//! them. The CLI always uses the system's.

use aws_smithy_http_client::tls::rustls_provider::CryptoMode;
use aws_smithy_http_client::tls::{Provider, TlsContext, TrustStore};
use aws_smithy_http_client::{Builder, ConnectorBuilder, proxy::ProxyConfig};
use aws_smithy_runtime_api::client::http::SharedHttpClient;

/// The client, or `None` for the SDK's default (the system's roots, as
/// `SSL_CERT_FILE`/`SSL_CERT_DIR` name them).
pub(super) fn http_client() -> Option<SharedHttpClient> {
    if ["SSL_CERT_FILE", "SSL_CERT_DIR"]
        .iter()
        .any(|name| std::env::var_os(name).is_some())
    {
        return None;
    }
    let tls = TlsContext::builder()
        .with_trust_store(TrustStore::empty().with_pem_certificate(compiled_in_pem()))
        .build()
        .ok()?;
    Some(
        Builder::new().build_with_connector_fn(move |settings, runtime_components| {
            let mut connector = ConnectorBuilder::default()
                .tls_provider(Provider::Rustls(CryptoMode::AwsLc))
                .tls_context(tls.clone());
            connector.set_connector_settings(settings.cloned());
            if let Some(components) = runtime_components {
                connector.set_sleep_impl(components.sleep_impl());
            }
            connector.set_proxy_config(Some(ProxyConfig::from_env()));
            connector.build()
        }),
    )
}

/// The compiled-in roots as one PEM bundle (the form the SDK's trust store takes).
fn compiled_in_pem() -> String {
    webpki_root_certs::TLS_SERVER_ROOT_CERTS
        .iter()
        .map(|der| {
            format!(
                "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
                aws_smithy_types::base64::encode(der.as_ref())
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use aws_smithy_http_client::tls::TlsContext;

    use super::*;

    #[test]
    fn every_compiled_in_root_goes_into_the_bundle_and_it_parses() {
        let pem = compiled_in_pem();
        assert_eq!(
            pem.matches("-----BEGIN CERTIFICATE-----").count(),
            webpki_root_certs::TLS_SERVER_ROOT_CERTS.len()
        );
        assert!(webpki_root_certs::TLS_SERVER_ROOT_CERTS.len() > 100);
        let store = TrustStore::empty().with_pem_certificate(pem);
        assert!(
            TlsContext::builder()
                .with_trust_store(store)
                .build()
                .is_ok()
        );
    }
}
