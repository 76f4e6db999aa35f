//! Serving components over HTTP: one pre-instantiated component per manifest entry, a fresh instance
//! (store) per request, Spin variables and the outbound allowlist wired into each store.

use crate::compile;
use crate::files::{self, FilesDir};
use crate::guest_run::Running;
use crate::manifest::Manifest;
use crate::outbound::Allowlist;
use crate::postgres::{bindings as pg_bindings, PgAccess, PgPool, PgView};
use crate::router::{Router, WELL_KNOWN_PREFIX};
use crate::variables::{self, ComponentVariables};
use anyhow::{anyhow, Context, Result};
use edgeshell_core::api_error::{ApiError, ErrorCode};
use hyper::body::Incoming;
use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::net::TcpListener;
use wasmtime::component::{HasData, HasSelf, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store};
use wasmtime_wasi::sockets::SocketAddrUse;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

/// Host bindings for `fermyon:spin/variables@2.0.0`, the one Spin interface beyond WASI the components
/// import today. The interface is declared here, as the contract the host implements.
mod spin_variables {
    wasmtime::component::bindgen!({
        inline: r#"
            package fermyon:spin@2.0.0;

            interface variables {
                get: func(name: string) -> result<string, error>;

                variant error {
                    invalid-name(string),
                    undefined(string),
                    provider(string),
                    other(string),
                }
            }

            world host {
                import variables;
            }
        "#,
        world: "host",
    });
}

use spin_variables::fermyon::spin::variables as spin_vars;

/// Requests that may run at once by default (one component instance each).
pub const DEFAULT_MAX_INSTANCES: u32 = 256;
/// The most linear memory one instance may grow to.
const MAX_MEMORY_BYTES: usize = 256 << 20;
/// How much of a slot's linear memory is reset with `memset` (only the pages the request dirtied, found
/// with `PAGEMAP_SCAN` where the kernel has it) instead of `madvise`: a request of ours touches about
/// 1-2 MiB. Beyond this, memory is decommitted as before.
const KEEP_RESIDENT_BYTES: usize = 4 << 20;
/// Decommits (of memory beyond `KEEP_RESIDENT_BYTES`, tables, stacks) gathered into one batch.
const DECOMMIT_BATCH: usize = 16;

/// How often a running guest yields.
const EPOCH_TICK: std::time::Duration = std::time::Duration::from_millis(1);

/// What a request's store holds.
struct RequestState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    hooks: OutboundHooks,
    variables: ComponentVariables,
    pg: PgAccess,
}

/// Selects the Postgres view of a request's store for the generated bindings.
struct PgData;

impl HasData for PgData {
    type Data<'a> = PgView<'a>;
}

impl WasiView for RequestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl WasiHttpView for RequestState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { ctx: &mut self.http, table: &mut self.table, hooks: &mut self.hooks }
    }
}

impl spin_vars::Host for RequestState {
    fn get(&mut self, name: String) -> Result<String, spin_vars::Error> {
        let valid = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
            && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !valid {
            return Err(spin_vars::Error::InvalidName(name));
        }
        self.variables.get(&name).map(str::to_owned).ok_or(spin_vars::Error::Undefined(name))
    }
}

/// Outgoing requests are checked against the component's `allowed_outbound_hosts`.
struct OutboundHooks {
    allowlist: Arc<Allowlist>,
}

/// The I/O future `send_request` hands back with the response.
type IoFuture = Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>;
/// What `send_request` returns.
type SendFuture = Box<
    dyn Future<Output = Result<(http::Response<wasmtime_wasi_http::WasiBody>, IoFuture), wasmtime_wasi_http::Error>>
        + Send,
>;

impl WasiHttpHooks for OutboundHooks {
    fn send_request(
        &mut self,
        request: http::Request<wasmtime_wasi_http::WasiBody>,
        options: Option<wasmtime_wasi_http::RequestOptions>,
        fut: IoFuture,
    ) -> SendFuture {
        drop(fut);
        let uri = request.uri();
        let scheme = uri.scheme_str().unwrap_or("https").to_owned();
        let host = uri.host().unwrap_or_default().to_owned();
        let port = uri.port_u16().unwrap_or(if scheme == "https" { 443 } else { 80 });
        let allowed = self.allowlist.allows(&scheme, &host, port);
        Box::new(async move {
            use http_body_util::BodyExt;
            if !allowed {
                return Err(wasmtime_wasi_http::Error::HttpRequestDenied);
            }
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((response.map(BodyExt::boxed_unsync), Box::new(io) as IoFuture))
        })
    }
}

/// Where the host finds its inputs.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// The manifest.
    pub manifest: PathBuf,
    /// A dotenv file of variables, if any.
    pub env_file: Option<PathBuf>,
    /// Where precompiled components are cached.
    pub cache_dir: PathBuf,
    /// When set, component sources are looked up here by file name instead of the manifest's paths
    /// (tests and CI build into a shared cargo target directory).
    pub wasm_dir: Option<PathBuf>,
    /// Requests that may run at once; more get `503 overloaded` with `Retry-After`.
    pub max_instances: u32,
    /// What one request may take.
    pub limits: GuestLimits,
}

/// What one request may take of the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestLimits {
    /// Bytes of request body a guest can read: a larger `Content-Length` is refused with `413` before
    /// any guest runs, and a body that streams past it ends in an error for the guest.
    pub max_body_bytes: u64,
    /// How long a request's guest may run, answering included; then it is dropped (an answer not yet
    /// given becomes `500`), whatever it was waiting on.
    pub deadline: std::time::Duration,
}

impl GuestLimits {
    /// 16 MiB and 60 s: well beyond what the control functions need (their bodies are a few KiB, their
    /// slowest path a mint that waits on a pool), and a bound on a stuck or hostile guest.
    pub const DEFAULT: GuestLimits =
        GuestLimits { max_body_bytes: 16 * 1024 * 1024, deadline: std::time::Duration::from_secs(60) };
}

/// A guest that ran past its deadline.
#[derive(Debug, thiserror::Error)]
#[error("the function ran past the host's {0:?} deadline")]
struct DeadlineExceeded(std::time::Duration);

struct Loaded {
    /// The component's id in the manifest.
    id: Arc<str>,
    pre: ProxyPre<RequestState>,
    variables: ComponentVariables,
    allowlist: Arc<Allowlist>,
    /// The manifest's `environment`, as the guest's WASI environment.
    environment: Vec<(String, String)>,
    /// Its `files`, copied: what the guest sees, read-only, as `/`.
    files: Option<PathBuf>,
}

/// A loaded application, ready to serve.
pub struct Host {
    engine: Engine,
    manifest: Manifest,
    router: Router,
    components: BTreeMap<String, Loaded>,
    pg_pool: Arc<PgPool>,
    limits: GuestLimits,
    /// Where the components' `files` were copied (removed with the host).
    _files: Option<FilesDir>,
}

impl Host {
    /// Loads the manifest, resolves variables (process environment, then the env file, then defaults),
    /// and compiles or loads every component.
    pub fn load(config: &HostConfig) -> Result<Host> {
        let manifest = Manifest::load(&config.manifest)?;
        let routes = manifest.routes.iter().filter_map(|r| Some((r.component.as_str(), r.pattern.as_deref()?)));
        let (router, warnings) = Router::build(routes)?;
        for warning in warnings {
            eprintln!("edgeshell-spin-host: {warning}");
        }
        let env: BTreeMap<String, String> = std::env::vars().collect();
        let file = match &config.env_file {
            Some(path) => variables::parse_env_file(
                &std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
            )?,
            None => BTreeMap::new(),
        };
        let mut resolved = variables::resolve(&manifest, &env, &file)?;
        let mut wasm_config = Config::new();
        // A guest busy with CPU work (RSA signing takes milliseconds) yields to other requests and to the
        // database connections sharing the runtime at every epoch tick, instead of holding a worker.
        wasm_config.epoch_interruption(true);
        // Instances come from a pool of preallocated slots that are reset and reused, instead of mapping
        // and unmapping memory per request (the on-demand allocator's munmap costs every thread a TLB
        // flush). Sized for `max_instances` requests in flight; beyond that a request gets a 503.
        // A slot's memory and tables are reset in place rather than given back with `madvise` (which
        // flushed every core's TLB per request, and the next request took a page fault per page it
        // touched again): the profile of a JTI check had 10% of its time there.
        let max = config.max_instances.max(1);
        let mut pool = wasmtime::PoolingAllocationConfig::default();
        pool.total_component_instances(max)
            .total_core_instances(max * 4)
            .total_memories(max * 2)
            .total_tables(max * 4)
            .total_stacks(max)
            .max_memory_size(MAX_MEMORY_BYTES)
            .linear_memory_keep_resident(KEEP_RESIDENT_BYTES)
            .table_keep_resident(KEEP_RESIDENT_BYTES / 64)
            .pagemap_scan(wasmtime::Enabled::Auto)
            .decommit_batch_size(DECOMMIT_BATCH);
        wasm_config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&wasm_config)?;
        let ticker = engine.weak();
        std::thread::Builder::new().name("epoch-ticker".into()).spawn(move || {
            while let Some(engine) = ticker.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })?;
        let mut linker: Linker<RequestState> = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        spin_vars::add_to_linker::<RequestState, HasSelf<RequestState>>(&mut linker, |s| s)?;
        pg_bindings::spin::postgres::postgres::add_to_linker::<RequestState, PgData>(&mut linker, |s| PgView {
            access: &s.pg,
            table: &mut s.table,
        })?;
        let mut components = BTreeMap::new();
        let files_dir = match manifest.components.values().any(|c| !c.files.is_empty()) {
            true => Some(FilesDir::new()?),
            false => None,
        };
        for (id, decl) in &manifest.components {
            let source = match &config.wasm_dir {
                Some(dir) => {
                    dir.join(decl.source.file_name().ok_or_else(|| anyhow!("component {id} has no file name"))?)
                }
                None => decl.source.clone(),
            };
            let component = compile::load(&engine, &source, &config.cache_dir)
                .with_context(|| format!("component {id} ({})", source.display()))?;
            let pre = ProxyPre::new(
                linker
                    .instantiate_pre(&component)
                    .map_err(anyhow::Error::from)
                    .with_context(|| format!("linking component {id}"))?,
            )?;
            let resolved = resolved.remove(id).unwrap_or_default();
            let allowlist =
                Arc::new(Allowlist::new(&resolved.allowed_outbound_hosts).map_err(|e| anyhow!("component {id}: {e}"))?);
            let variables = resolved.variables;
            let environment = decl.environment.clone().into_iter().collect();
            let files = match (&files_dir, decl.files.is_empty()) {
                (Some(dir), false) => {
                    let dest = dir.component(id);
                    files::assemble(&manifest.root, &decl.files, &decl.exclude_files, &dest)
                        .with_context(|| format!("component {id}: files"))?;
                    Some(dest)
                }
                _ => None,
            };
            let loaded = Loaded { id: id.as_str().into(), pre, variables, allowlist, environment, files };
            components.insert(id.clone(), loaded);
        }
        let pg_pool = Arc::new(PgPool::default());
        Ok(Host { engine, manifest, router, components, pg_pool, limits: config.limits, _files: files_dir })
    }

    /// Serves until the listener fails or the task is dropped.
    pub async fn serve(self: Arc<Self>, listener: TcpListener) -> Result<()> {
        // Connections are tasks of this future: stopping the server (dropping it) ends them too, so no
        // keep-alive connection goes on being served by a host that was replaced.
        let mut connections = tokio::task::JoinSet::new();
        loop {
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => accepted?,
                Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            };
            // A response leaves in more than one write (head, then the body the guest streams); with
            // Nagle's algorithm on, a write after an unacknowledged one waited for the client's delayed
            // ACK, and about one JTI check in fifty took 40 ms more.
            let _ = stream.set_nodelay(true);
            let host = self.clone();
            connections.spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let host = host.clone();
                    async move { Ok::<_, std::convert::Infallible>(host.handle(req, peer).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    }

    async fn handle(&self, mut req: hyper::Request<Incoming>, peer: SocketAddr) -> hyper::Response<HyperOutgoingBody> {
        // The `spin-*` headers are the host's word: what a client sent under those names is dropped
        // (Spin appends its own after the client's, so a guest reading the first could be lied to).
        let forged: Vec<_> = req.headers().keys().filter(|name| name.as_str().starts_with("spin-")).cloned().collect();
        for name in forged {
            req.headers_mut().remove(name);
        }
        let declared = req.headers().get("content-length").and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|n| n > self.limits.max_body_bytes) {
            let why = format!("a body of at most {} bytes is accepted", self.limits.max_body_bytes);
            return error_response(&ApiError::new(ErrorCode::BodyTooLarge, why));
        }
        if let Some(well_known) = req.uri().path().strip_prefix(WELL_KNOWN_PREFIX) {
            return self.well_known(well_known);
        }
        let Some(route) = self.router.route(req.uri().path()) else {
            return error_response(&ApiError::new(ErrorCode::NotFound, "no route for this path"));
        };
        let host = req.headers().get("host").and_then(|h| h.to_str().ok()).unwrap_or("localhost").to_owned();
        let path_and_query = req.uri().path_and_query().map_or("/", |p| p.as_str()).to_owned();
        for (name, value) in route.spin_headers(&host, &path_and_query, &peer.to_string()) {
            if let (Ok(name), Ok(value)) =
                (hyper::header::HeaderName::from_bytes(name.as_bytes()), hyper::header::HeaderValue::from_str(&value))
            {
                req.headers_mut().insert(name, value);
            }
        }
        let component = route.component().to_owned();
        let Some(loaded) = self.components.get(&component) else {
            return error_response(&ApiError::new(
                ErrorCode::InternalError,
                "route names a component that did not load",
            ));
        };
        match self.call(loaded, req).await {
            Ok(response) => response,
            Err(e) if e.chain().any(|c| c.is::<wasmtime::PoolConcurrencyLimitError>()) => {
                error_response(&ApiError::new(ErrorCode::Overloaded, "too many requests in flight; retry shortly"))
            }
            Err(e) if e.chain().any(|c| c.is::<DeadlineExceeded>()) => {
                eprintln!("edgeshell-spin-host: component {component}: {e:#}");
                error_response(&ApiError::new(ErrorCode::InternalError, format!("{e:#}")))
            }
            Err(e) => {
                eprintln!("edgeshell-spin-host: component {component} failed: {e:#}");
                error_response(&ApiError::new(ErrorCode::InternalError, "the function failed"))
            }
        }
    }

    /// A request's store: its own WASI context, resource table, variables and outbound allowlist.
    fn new_store(&self, loaded: &Loaded) -> Store<RequestState> {
        let state = RequestState {
            wasi: guest_wasi(&loaded.environment, loaded.files.as_deref(), &loaded.allowlist),
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            hooks: OutboundHooks { allowlist: loaded.allowlist.clone() },
            variables: loaded.variables.clone(),
            pg: PgAccess { pool: self.pg_pool.clone(), allowlist: loaded.allowlist.clone() },
        };
        let mut store = Store::new(&self.engine, state);
        store.epoch_deadline_async_yield_and_update(1);
        store
    }

    /// Creates one instance of `component` in a fresh store and drops it: what every request pays
    /// before its handler runs (for warm-up and the benchmarks).
    pub async fn instantiate(&self, component: &str) -> Result<()> {
        let loaded = self.components.get(component).ok_or_else(|| anyhow!("no component {component}"))?;
        let mut store = self.new_store(loaded);
        loaded.pre.instantiate_async(&mut store).await?;
        Ok(())
    }

    /// What Spin itself answers under `/.well-known/spin/`: `health` (`OK`) and `info` (the application's
    /// name and version), else 404.
    fn well_known(&self, name: &str) -> hyper::Response<HyperOutgoingBody> {
        use http_body_util::BodyExt;
        let (body, content_type) = match name {
            "health" => ("OK".to_owned(), "text/plain"),
            "info" => {
                let (app, version) = &self.manifest.application;
                let mut info = serde_json::json!({ "name": app });
                if let Some(version) = version {
                    info["version"] = serde_json::json!(version);
                }
                (serde_json::to_string_pretty(&info).unwrap_or_default(), "application/json")
            }
            _ => return error_response(&ApiError::new(ErrorCode::NotFound, "no such path under /.well-known/spin/")),
        };
        let body = http_body_util::Full::new(bytes::Bytes::from(body)).map_err(|never| match never {}).boxed_unsync();
        let mut response = hyper::Response::new(body);
        if let Ok(value) = hyper::header::HeaderValue::from_str(content_type) {
            response.headers_mut().insert(hyper::header::CONTENT_TYPE, value);
        }
        response
    }

    async fn call(&self, loaded: &Loaded, req: hyper::Request<Incoming>) -> Result<hyper::Response<HyperOutgoingBody>> {
        let mut store = self.new_store(loaded);
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let limit = self.limits.max_body_bytes;
        let req = req.map(|body| {
            http_body_util::BodyExt::map_err(http_body_util::Limited::new(body, limit as usize), move |e| {
                body_error(e, limit)
            })
        });
        let req = store.data_mut().http().new_incoming_request(Scheme::Http, req)?;
        let out = store.data_mut().http().new_response_outparam(sender)?;
        let pre = loaded.pre.clone();
        let deadline = self.limits.deadline;
        let guest = Box::pin(async move {
            let run = async {
                let proxy = pre.instantiate_async(&mut store).await?;
                proxy.wasi_http_incoming_handler().call_handle(&mut store, req, out).await?;
                anyhow::Ok(())
            };
            // A guest busy with CPU yields at every epoch tick, so the deadline also ends a loop.
            tokio::time::timeout(deadline, run).await.map_err(|_| anyhow!(DeadlineExceeded(deadline)))?
        });
        Running::new(loaded.id.clone(), guest).response(receiver).await
    }
}

/// A guest's WASI context: stderr to the host's, the manifest's `environment`, its `files` read-only
/// as `/`, and `wasi:sockets` as Spin allows them: TCP connections and UDP to the addresses its
/// `allowed_outbound_hosts` name (`tcp://`, `udp://`, `*://`), no listening, no name lookup. Nothing
/// else of the host.
fn guest_wasi(environment: &[(String, String)], files: Option<&Path>, allowlist: &Arc<Allowlist>) -> WasiCtx {
    let mut builder = WasiCtx::builder();
    builder.inherit_stderr().envs(environment);
    let allowlist = allowlist.clone();
    builder.allow_tcp(true).allow_udp(true).allow_ip_name_lookup(false);
    builder.socket_addr_check(move |addr, used| {
        let allowed = match used {
            // wasmtime checks the ephemeral bind a connect makes on its own (Spin's wasmtime does not):
            // that one is allowed; binding to an address of the guest's choice, and listening, are not.
            SocketAddrUse::TcpBind => addr.ip().is_unspecified() && addr.port() == 0,
            SocketAddrUse::TcpListen | SocketAddrUse::TcpAccept => false,
            SocketAddrUse::TcpConnect => allowlist.allows("tcp", &addr.ip().to_string(), addr.port()),
            SocketAddrUse::UdpBind | SocketAddrUse::UdpSend => {
                allowlist.allows("udp", &addr.ip().to_string(), addr.port())
            }
            // Spin checks what a guest sends, not what reaches a socket it was allowed to open.
            SocketAddrUse::UdpReceive => true,
        };
        Box::pin(async move { allowed })
    });
    if let Some(dir) = files {
        // The directory was made at load; failing to open it now (removed under the host) leaves the
        // guest without files, and it says so when it looks.
        if let Err(e) = builder.preopened_dir(dir, "/", FsPerms::ReadOnly) {
            eprintln!("edgeshell-spin-host: opening {}: {e}", dir.display());
        }
    }
    builder.build()
}

/// What a guest reading the body sees when it breaks: its size limit, or the connection's error.
fn body_error(
    error: Box<dyn std::error::Error + Send + Sync>,
    limit: u64,
) -> wasmtime_wasi_http::p2::bindings::http::types::ErrorCode {
    use wasmtime_wasi_http::p2::bindings::http::types::ErrorCode as Code;
    if error.is::<http_body_util::LengthLimitError>() {
        return Code::HttpRequestBodySize(Some(limit));
    }
    match error.downcast::<hyper::Error>() {
        Ok(hyper) => Code::from(*hyper),
        Err(other) => Code::InternalError(Some(other.to_string())),
    }
}

/// Every error the host itself answers is one of the core's table, in its JSON shape, like the
/// functions' own errors.
fn error_response(error: &ApiError) -> hyper::Response<HyperOutgoingBody> {
    use http_body_util::BodyExt;
    edgeshell_platform::http::error(error).map(|body| body.map_err(|never| match never {}).boxed_unsync())
}

#[cfg(test)]
mod tests;
