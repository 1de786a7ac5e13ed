//! The raw model: the YAML file as written, every value paired with where it was written.
//!
//! These types only describe the shape of the file (`deny_unknown_fields` everywhere, so a
//! misspelt key is an error, not a silently ignored setting). Enumerations, durations and
//! addresses stay strings here: [`crate::compile`] parses them so that it can say precisely
//! what is wrong and suggest the right spelling.

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_saphyr::Spanned;

/// A value with the line and column it was written at.
pub type S<T> = Spanned<T>;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawConfig {
    #[serde(default)]
    pub gateways: Vec<S<RawGateway>>,
    #[serde(default)]
    pub backends: Vec<S<RawBackend>>,
    #[serde(default)]
    pub routes: Vec<S<RawRoute>>,
    #[serde(default)]
    pub forwards: Vec<S<RawForward>>,
    #[serde(default)]
    pub settings: Option<S<RawSettings>>,
    #[serde(default)]
    pub gateway_api: Option<S<RawGatewayApi>>,
    #[serde(default)]
    pub dns: Option<S<RawDns>>,
    #[serde(default)]
    pub pools: Vec<S<RawPool>>,
    #[serde(default)]
    pub vrrp: Vec<S<RawVrrp>>,
    /// Present (even empty: `admin:` or `admin: {}`) turns the admin endpoint on.
    #[serde(default, deserialize_with = "present")]
    pub admin: Option<S<RawAdmin>>,
    /// Present (even empty) turns the Kubernetes provider on.
    #[serde(default, deserialize_with = "present")]
    pub kubernetes: Option<S<RawKubernetes>>,
}

/// `kubernetes`: the cluster to watch for LoadBalancer Services and Gateway API objects.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawKubernetes {
    #[serde(default)]
    pub kubeconfig: Option<S<String>>,
    #[serde(default)]
    pub context: Option<S<String>>,
    #[serde(default)]
    pub namespaces: Vec<S<String>>,
    #[serde(default)]
    pub label_selector: Option<S<String>>,
    #[serde(default)]
    pub load_balancer_class: Option<S<String>>,
    #[serde(default)]
    pub pool: Option<S<String>>,
    #[serde(default)]
    pub gateway_class_name: Option<S<String>>,
    #[serde(default)]
    pub endpoints: Option<S<String>>,
    #[serde(default)]
    pub dns_zone: Option<S<String>>,
    #[serde(default)]
    pub cache_file: Option<S<String>>,
}

/// `admin`: the HTTP endpoint for health, readiness, metrics and status.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawAdmin {
    #[serde(default)]
    pub listen: Option<S<Scalar>>,
    #[serde(default)]
    pub token: Option<S<String>>,
}

/// A section that means something when present even with nothing under it: `admin:` (null)
/// is read as `admin: {}`. Only called when the key is there.
fn present<'de, D, T>(deserializer: D) -> Result<Option<S<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    let s: S<Option<T>> = Spanned::deserialize(deserializer)?;
    Ok(Some(Spanned::new(
        s.value.unwrap_or_default(),
        s.referenced,
        s.defined,
    )))
}

/// An address pool.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawPool {
    pub name: S<String>,
    #[serde(default)]
    pub addresses: Vec<S<Scalar>>,
    #[serde(default)]
    pub prefix: Option<S<i64>>,
}

/// A VRRP instance.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawVrrp {
    pub name: S<String>,
    #[serde(default)]
    pub interface: Option<S<String>>,
    #[serde(default)]
    pub interface_pattern: Option<S<String>>,
    pub vrid: S<i64>,
    #[serde(default)]
    pub priority: Option<S<i64>>,
    #[serde(default)]
    pub advert_interval: Option<S<Scalar>>,
    #[serde(default)]
    pub preempt: Option<S<bool>>,
    #[serde(default)]
    pub preempt_delay: Option<S<Scalar>>,
    #[serde(default)]
    pub addresses: Vec<S<Scalar>>,
    #[serde(default)]
    pub unicast_peers: Vec<S<Scalar>>,
    #[serde(default)]
    pub checksum: Option<S<String>>,
    #[serde(default)]
    pub announce: Option<S<RawAnnounce>>,
    #[serde(default)]
    pub track: Vec<S<RawTrack>>,
}

/// Gratuitous ARP / NA settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawAnnounce {
    #[serde(default)]
    pub count: Option<S<i64>>,
    #[serde(default)]
    pub interval: Option<S<Scalar>>,
    #[serde(default)]
    pub repeat_after: Option<S<Scalar>>,
}

/// Something an instance's priority follows.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawTrack {
    #[serde(default)]
    pub backend: Option<S<String>>,
    #[serde(default)]
    pub listener: Option<S<String>>,
    #[serde(default)]
    pub weight: Option<S<i64>>,
}

/// `dns`: the DNS server, its local zones and where other names go.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawDns {
    #[serde(default)]
    pub listen: Vec<S<Scalar>>,
    #[serde(default)]
    pub auto_ttl: Option<S<Scalar>>,
    #[serde(default)]
    pub zones: Vec<S<RawZone>>,
    #[serde(default)]
    pub forwarders: Vec<S<Scalar>>,
    #[serde(default)]
    pub forward_zones: Vec<S<RawForwardZone>>,
    #[serde(default)]
    pub recursion: Option<S<RawRecursion>>,
    #[serde(default)]
    pub cache_size: Option<S<i64>>,
}

/// A local zone.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawZone {
    pub name: S<String>,
    #[serde(default)]
    pub ttl: Option<S<Scalar>>,
    #[serde(default)]
    pub ns: Vec<S<String>>,
    #[serde(default)]
    pub hostmaster: Option<S<String>>,
    #[serde(default)]
    pub auto: Option<S<bool>>,
    #[serde(default)]
    pub records: Vec<S<RawRecord>>,
}

/// A static record.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawRecord {
    pub name: S<String>,
    #[serde(rename = "type")]
    pub kind: S<String>,
    pub value: S<Scalar>,
    #[serde(default)]
    pub ttl: Option<S<Scalar>>,
}

/// A zone forwarded to its own resolvers.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawForwardZone {
    pub zone: S<String>,
    #[serde(default)]
    pub to: Vec<S<Scalar>>,
}

/// Who may have names forwarded.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawRecursion {
    #[serde(default)]
    pub allow: Vec<S<String>>,
}

/// `gatewayApi`: Kubernetes Gateway API manifests to read, and how their references to
/// Kubernetes objects (Services, Secrets) map to Gatehouse's own config.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawGatewayApi {
    #[serde(default)]
    pub manifests: Vec<S<String>>,
    /// `NAMESPACE/NAME:PORT` -> a backend name.
    #[serde(default)]
    pub services: KeyedList<S<String>>,
    /// `NAMESPACE/NAME` -> certificate and key files.
    #[serde(default)]
    pub secrets: KeyedList<S<RawCertificate>>,
    /// `NAMESPACE/NAME` -> listen addresses.
    #[serde(default)]
    pub addresses: KeyedList<Vec<S<Scalar>>>,
}

/// A mapping read in file order with each key's position (a map type would lose both).
#[derive(Debug)]
pub struct KeyedList<V>(pub Vec<(S<String>, V)>);

impl<V> Default for KeyedList<V> {
    fn default() -> Self {
        KeyedList(Vec::new())
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for KeyedList<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyedVisitor<V>(std::marker::PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for KeyedVisitor<V> {
            type Value = KeyedList<V>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a mapping")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<KeyedList<V>, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry::<S<String>, V>()? {
                    out.push((k, v));
                }
                Ok(KeyedList(out))
            }
        }
        deserializer.deserialize_map(KeyedVisitor(std::marker::PhantomData))
    }
}

/// A gateway: a set of listeners sharing addresses (Gateway API `Gateway`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawGateway {
    pub name: S<String>,
    #[serde(default)]
    pub addresses: Vec<S<Scalar>>,
    #[serde(default)]
    pub listeners: Vec<S<RawListener>>,
}

/// One listener of a gateway (Gateway API `Listener`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawListener {
    pub name: S<String>,
    #[serde(default)]
    pub address: Option<S<Scalar>>,
    pub port: S<i64>,
    #[serde(default)]
    pub protocol: Option<S<String>>,
    #[serde(default)]
    pub hostname: Option<S<String>>,
    #[serde(default)]
    pub tls: Option<S<RawListenerTls>>,
    #[serde(default)]
    pub backend: Option<S<String>>,
    #[serde(default)]
    pub max_connections: Option<S<i64>>,
    #[serde(default)]
    pub idle_timeout: Option<S<Scalar>>,
    #[serde(default)]
    pub http: Option<S<RawHttpSettings>>,
    #[serde(default)]
    pub udp: Option<S<RawUdpSettings>>,
    #[serde(default)]
    pub allow: Vec<S<String>>,
    #[serde(default)]
    pub deny: Vec<S<String>>,
    #[serde(default)]
    pub proxy_protocol: Option<S<RawAcceptProxy>>,
    #[serde(default)]
    pub dns_name: Option<S<String>>,
    #[serde(default)]
    pub dns_names: Vec<S<String>>,
}

/// A UDP listener's `udp`: flow settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawUdpSettings {
    #[serde(default)]
    pub idle_timeout: Option<S<Scalar>>,
    #[serde(default)]
    pub max_flows: Option<S<i64>>,
}

/// A listener's `proxyProtocol`: PROXY headers accepted from trusted sources.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawAcceptProxy {
    #[serde(default)]
    pub trusted_sources: Vec<S<String>>,
    #[serde(default)]
    pub timeout: Option<S<Scalar>>,
}

/// An HTTP or HTTPS listener's `http`: limits on reading requests.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawHttpSettings {
    #[serde(default)]
    pub header_timeout: Option<S<Scalar>>,
    #[serde(default)]
    pub max_header_bytes: Option<S<i64>>,
    #[serde(default)]
    pub max_headers: Option<S<i64>>,
    #[serde(default)]
    pub keepalive_timeout: Option<S<Scalar>>,
}

/// A listener's `tls`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawListenerTls {
    #[serde(default)]
    pub mode: Option<S<String>>,
    #[serde(default)]
    pub certificates: Vec<S<RawCertificate>>,
    /// `None` when absent, so that an HTTPS listener can tell "the default" from `alpn: []`.
    #[serde(default)]
    pub alpn: Option<Vec<S<String>>>,
    #[serde(default)]
    pub min_version: Option<S<Scalar>>,
    #[serde(default)]
    pub handshake_timeout: Option<S<Scalar>>,
}

/// A certificate chain and key, as two PEM files.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawCertificate {
    pub cert_file: S<String>,
    pub key_file: S<String>,
}

/// A route (Gateway API `TLSRoute` or `HTTPRoute`): host names on some listeners, sent to
/// backends. One shape for both kinds, so that a key of the other kind is explained by
/// `compile` ("`rules` only applies to HTTPRoutes") rather than refused as unknown.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawRoute {
    pub name: S<String>,
    pub kind: S<String>,
    #[serde(default)]
    pub parent_refs: Vec<S<RawParentRef>>,
    #[serde(default)]
    pub hostnames: Vec<S<String>>,
    #[serde(default)]
    pub backend: Option<S<String>>,
    #[serde(default)]
    pub rules: Option<S<Vec<S<RawHttpRule>>>>,
    #[serde(default)]
    pub allow: Vec<S<String>>,
    #[serde(default)]
    pub deny: Vec<S<String>>,
}

/// One rule of an HTTPRoute (Gateway API `HTTPRouteRule`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawHttpRule {
    #[serde(default)]
    pub matches: Vec<S<RawHttpMatch>>,
    #[serde(default)]
    pub filters: Vec<S<RawHttpFilter>>,
    #[serde(default)]
    pub backend_refs: Vec<S<RawBackendRef>>,
    #[serde(default)]
    pub timeouts: Option<S<RawHttpTimeouts>>,
}

/// Gateway API `HTTPRouteMatch`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawHttpMatch {
    #[serde(default)]
    pub path: Option<S<RawPathMatch>>,
    #[serde(default)]
    pub headers: Vec<S<RawValueMatch>>,
    #[serde(default)]
    pub query_params: Vec<S<RawValueMatch>>,
    #[serde(default)]
    pub method: Option<S<String>>,
}

/// Gateway API `HTTPPathMatch`: both keys default (`PathPrefix`, `/`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawPathMatch {
    #[serde(default, rename = "type")]
    pub kind: Option<S<String>>,
    #[serde(default)]
    pub value: Option<S<String>>,
}

/// A header or query parameter condition (Gateway API `HTTPHeaderMatch`,
/// `HTTPQueryParamMatch`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawValueMatch {
    #[serde(default, rename = "type")]
    pub kind: Option<S<String>>,
    pub name: S<String>,
    pub value: S<String>,
}

/// Gateway API `HTTPRouteFilter`. The keys of filter types this version does not implement
/// are read (and ignored) so that `compile` can say which type is not supported instead of
/// calling its key unknown.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawHttpFilter {
    #[serde(rename = "type")]
    pub kind: S<String>,
    #[serde(default)]
    pub request_redirect: Option<S<RawRedirect>>,
    #[serde(default)]
    pub request_header_modifier: Option<S<RawHeaderModifier>>,
    #[serde(default)]
    pub response_header_modifier: Option<S<RawHeaderModifier>>,
    #[serde(default)]
    pub url_rewrite: Option<S<RawUrlRewrite>>,
    #[serde(default)]
    pub request_mirror: Option<S<de::IgnoredAny>>,
    #[serde(default)]
    pub cors: Option<S<de::IgnoredAny>>,
    #[serde(default)]
    pub external_auth: Option<S<de::IgnoredAny>>,
    #[serde(default)]
    pub extension_ref: Option<S<de::IgnoredAny>>,
}

/// Gateway API `HTTPRequestRedirectFilter`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawRedirect {
    #[serde(default)]
    pub scheme: Option<S<String>>,
    #[serde(default)]
    pub hostname: Option<S<String>>,
    #[serde(default)]
    pub port: Option<S<i64>>,
    #[serde(default)]
    pub path: Option<S<RawPathModifier>>,
    #[serde(default)]
    pub status_code: Option<S<i64>>,
}

/// Gateway API `HTTPURLRewriteFilter`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawUrlRewrite {
    #[serde(default)]
    pub hostname: Option<S<String>>,
    #[serde(default)]
    pub path: Option<S<RawPathModifier>>,
}

/// Gateway API `HTTPPathModifier`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawPathModifier {
    #[serde(rename = "type")]
    pub kind: S<String>,
    #[serde(default)]
    pub replace_full_path: Option<S<String>>,
    #[serde(default)]
    pub replace_prefix_match: Option<S<String>>,
}

/// Gateway API `HTTPHeaderFilter`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawHeaderModifier {
    #[serde(default)]
    pub set: Vec<S<RawHeader>>,
    #[serde(default)]
    pub add: Vec<S<RawHeader>>,
    #[serde(default)]
    pub remove: Vec<S<String>>,
}

/// A header name and value.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawHeader {
    pub name: S<String>,
    pub value: S<String>,
}

/// Gateway API `HTTPBackendRef`, naming a Gatehouse backend.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawBackendRef {
    pub name: S<String>,
    #[serde(default)]
    pub weight: Option<S<i64>>,
    /// Refused by `compile`: a Gatehouse backend has its own ports.
    #[serde(default)]
    pub port: Option<S<i64>>,
}

/// Gateway API `HTTPRouteTimeouts`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawHttpTimeouts {
    #[serde(default)]
    pub request: Option<S<Scalar>>,
    #[serde(default)]
    pub backend_request: Option<S<Scalar>>,
}

/// Where a route attaches: `GATEWAY`, `GATEWAY/LISTENER`, or the Gateway API mapping
/// `{name: GATEWAY, sectionName: LISTENER, port: PORT}`.
#[derive(Debug)]
pub struct RawParentRef {
    pub gateway: S<String>,
    pub listener: Option<S<String>>,
    pub port: Option<S<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawParentRefMap {
    name: S<String>,
    #[serde(default)]
    section_name: Option<S<String>>,
    #[serde(default)]
    port: Option<S<i64>>,
}

impl<'de> Deserialize<'de> for RawParentRef {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ParentVisitor;
        impl<'de> Visitor<'de> for ParentVisitor {
            type Value = RawParentRef;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(
                    "\"GATEWAY\", \"GATEWAY/LISTENER\" or a mapping with `name` and `sectionName`",
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawParentRef, E> {
                let unknown = || {
                    Spanned::new(
                        String::new(),
                        serde_saphyr::Location::UNKNOWN,
                        serde_saphyr::Location::UNKNOWN,
                    )
                };
                let (gateway, listener) = match v.split_once('/') {
                    Some((g, l)) => (g, Some(l)),
                    None => (v, None),
                };
                let mut g = unknown();
                g.value = gateway.to_owned();
                Ok(RawParentRef {
                    gateway: g,
                    listener: listener.map(|l| {
                        let mut s = unknown();
                        s.value = l.to_owned();
                        s
                    }),
                    port: None,
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawParentRef, A::Error> {
                let m = RawParentRefMap::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(RawParentRef {
                    gateway: m.name,
                    listener: m.section_name,
                    port: m.port,
                })
            }
        }
        deserializer.deserialize_any(ParentVisitor)
    }
}

/// A named pool of endpoints with its balancing and health checking.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawBackend {
    pub name: S<String>,
    #[serde(default)]
    pub balance: Option<S<String>>,
    #[serde(default)]
    pub endpoints: Vec<S<RawEndpoint>>,
    #[serde(default)]
    pub connect_timeout: Option<S<Scalar>>,
    #[serde(default)]
    pub retries: Option<S<i64>>,
    #[serde(default)]
    pub resolve_interval: Option<S<Scalar>>,
    #[serde(default)]
    pub passive: Option<S<RawPassive>>,
    #[serde(default)]
    pub health_check: Option<S<RawHealthCheck>>,
    #[serde(default)]
    pub tls: Option<S<RawBackendTls>>,
    #[serde(default)]
    pub proxy_protocol: Option<S<Scalar>>,
}

/// TLS towards a backend's endpoints.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawBackendTls {
    #[serde(default)]
    pub ca_file: Option<S<String>>,
    #[serde(default)]
    pub server_name: Option<S<String>>,
    #[serde(default)]
    pub insecure_skip_verify: Option<S<bool>>,
}

/// An endpoint: either `"host:port"` or `{ address: "host:port", weight: 3 }`.
#[derive(Debug)]
pub struct RawEndpoint {
    pub address: S<String>,
    pub weight: Option<S<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawEndpointMap {
    address: S<String>,
    #[serde(default)]
    weight: Option<S<i64>>,
}

impl<'de> Deserialize<'de> for RawEndpoint {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EndpointVisitor;
        impl<'de> Visitor<'de> for EndpointVisitor {
            type Value = RawEndpoint;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("\"host:port\" or a mapping with `address` and `weight`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawEndpoint, E> {
                Ok(RawEndpoint {
                    address: Spanned::new(
                        v.to_owned(),
                        serde_saphyr::Location::UNKNOWN,
                        serde_saphyr::Location::UNKNOWN,
                    ),
                    weight: None,
                })
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<RawEndpoint, A::Error> {
                Err(de::Error::custom(
                    "expected \"host:port\" or a mapping, found a list (YAML reads an unquoted `[...]` as a list: quote an IPv6 endpoint, e.g. \"[::1]:8080\")",
                ))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawEndpoint, A::Error> {
                let m = RawEndpointMap::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(RawEndpoint {
                    address: m.address,
                    weight: m.weight,
                })
            }
        }
        deserializer.deserialize_any(EndpointVisitor)
    }
}

/// Passive health: eject an endpoint whose connects fail.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawPassive {
    #[serde(default)]
    pub max_fails: Option<S<i64>>,
    #[serde(default)]
    pub fail_timeout: Option<S<Scalar>>,
}

/// Active health checks.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawHealthCheck {
    #[serde(default)]
    pub protocol: Option<S<String>>,
    #[serde(default)]
    pub interval: Option<S<Scalar>>,
    #[serde(default)]
    pub timeout: Option<S<Scalar>>,
    #[serde(default)]
    pub rise: Option<S<i64>>,
    #[serde(default)]
    pub fall: Option<S<i64>>,
    #[serde(default)]
    pub path: Option<S<String>>,
    #[serde(default)]
    pub host: Option<S<String>>,
    #[serde(default)]
    pub expect_status: Option<S<Scalar>>,
    #[serde(default)]
    pub port: Option<S<i64>>,
    #[serde(default)]
    pub send: Option<S<String>>,
    #[serde(default)]
    pub send_hex: Option<S<String>>,
    #[serde(default)]
    pub expect: Option<S<String>>,
    #[serde(default)]
    pub expect_hex: Option<S<String>>,
}

/// A port forward: a TCP listener with one backend, in two lines.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawForward {
    #[serde(default)]
    pub name: Option<S<String>>,
    pub listen: S<Scalar>,
    pub to: S<String>,
    #[serde(default)]
    pub idle_timeout: Option<S<Scalar>>,
    #[serde(default)]
    pub max_connections: Option<S<i64>>,
    #[serde(default)]
    pub allow: Vec<S<String>>,
    #[serde(default)]
    pub deny: Vec<S<String>>,
}

/// Process-wide settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawSettings {
    #[serde(default)]
    pub drain_timeout: Option<S<Scalar>>,
}

/// A scalar read as text whatever its YAML type, so that `interval: 2` can be answered with
/// "a duration needs a unit" rather than a type error, and `address: 8080` still parses.
#[derive(Debug, Clone)]
pub struct Scalar(pub String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ScalarVisitor;
        impl Visitor<'_> for ScalarVisitor {
            type Value = Scalar;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a scalar value")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar(v.to_owned()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
        }
        deserializer.deserialize_any(ScalarVisitor)
    }
}
