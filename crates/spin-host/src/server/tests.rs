//! What a guest sees of the host: its environment, its files, its sockets; and what the host refuses
//! at load.

use super::*;

/// An allowlist that allows nothing.
fn nobody() -> Arc<Allowlist> {
    Arc::new(Allowlist::new(&[]).unwrap())
}

#[tokio::test]
async fn a_guest_connects_sockets_only_where_its_allowed_hosts_say_as_on_spin() {
    use wasmtime_wasi::p2::bindings::sockets::instance_network::Host as _;
    use wasmtime_wasi::p2::bindings::sockets::network::{IpAddressFamily, IpSocketAddress, Ipv4SocketAddress};
    use wasmtime_wasi::p2::bindings::sockets::tcp::HostTcpSocket as _;
    use wasmtime_wasi::p2::bindings::sockets::tcp_create_socket::Host as _;
    let open = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (allowed, other) = (open.local_addr().unwrap().port(), std::net::TcpListener::bind("127.0.0.1:0").unwrap());
    let other = other.local_addr().unwrap().port();
    let allowlist = Arc::new(Allowlist::new(&[format!("tcp://127.0.0.1:{allowed}")]).unwrap());
    let mut wasi = guest_wasi(&[], None, &allowlist);
    let mut table = ResourceTable::new();
    let mut view = wasmtime_wasi::sockets::WasiSocketsCtxView { ctx: wasi.sockets(), table: &mut table };
    let addr = |port| IpSocketAddress::Ipv4(Ipv4SocketAddress { port, address: (127, 0, 0, 1) });
    // Connecting: the check runs when the connection does; its verdict comes with `finish-connect`.
    async fn connect(view: &mut wasmtime_wasi::sockets::WasiSocketsCtxView<'_>, port: u16) -> Result<(), String> {
        let network = view.instance_network().unwrap();
        let socket = view.create_tcp_socket(IpAddressFamily::Ipv4).unwrap();
        let borrow = || wasmtime::component::Resource::new_borrow(socket.rep());
        let addr = IpSocketAddress::Ipv4(Ipv4SocketAddress { port, address: (127, 0, 0, 1) });
        view.start_connect(borrow(), network, addr).map_err(|e| format!("{e:?}"))?;
        for _ in 0..200 {
            match view.finish_connect(borrow()) {
                Ok(_) => return Ok(()),
                Err(e) if format!("{e:?}").contains("would-block") => {}
                Err(e) => return Err(format!("{e:?}")),
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        Err("never finished".into())
    }
    assert_eq!(connect(&mut view, allowed).await, Ok(()), "the allowed address");
    let denied = connect(&mut view, other).await.unwrap_err();
    assert!(denied.contains("access-denied"), "{denied}");
    // Listening is Spin's to refuse as well.
    let network = view.instance_network().unwrap();
    let socket = view.create_tcp_socket(IpAddressFamily::Ipv4).unwrap();
    let bound = view.start_bind(socket, network, addr(allowed)).await;
    assert!(bound.is_err(), "binding is refused");
}

#[test]
fn a_guest_sees_the_manifests_environment_and_nothing_of_the_hosts() {
    use wasmtime_wasi::p2::bindings::cli::environment::Host as _;
    std::env::set_var("EDGESHELL_HOST_ONLY", "secret");
    let mut wasi = guest_wasi(&[("PG_CONNECTION_STRING".into(), "host=db".into())], None, &nobody());
    let mut table = ResourceTable::new();
    let mut view = wasmtime_wasi::cli::WasiCliCtxView { ctx: wasi.cli(), table: &mut table };
    let seen = view.get_environment().unwrap();
    assert_eq!(seen, [("PG_CONNECTION_STRING".to_owned(), "host=db".to_owned())]);
}

#[tokio::test]
async fn a_guest_reads_its_files_at_the_root_and_cannot_write_them() {
    use wasmtime_wasi::p2::bindings::filesystem::preopens::Host as _;
    use wasmtime_wasi::p2::bindings::filesystem::types::{DescriptorFlags, HostDescriptor, OpenFlags, PathFlags};
    let dir = FilesDir::new().unwrap();
    let files = dir.component("c");
    std::fs::create_dir_all(files.join("www")).unwrap();
    std::fs::write(files.join("www/index.html"), "<h1>hi</h1>").unwrap();
    let mut wasi = guest_wasi(&[], Some(&files), &nobody());
    let mut table = ResourceTable::new();
    let mut view = wasmtime_wasi::filesystem::WasiFilesystemCtxView { ctx: wasi.filesystem(), table: &mut table };
    let mut preopens = view.get_directories().unwrap();
    assert_eq!(preopens.iter().map(|(_, p)| p.as_str()).collect::<Vec<_>>(), ["/"]);
    let (root, _) = preopens.remove(0);
    let borrow = |r: &wasmtime::component::Resource<_>| wasmtime::component::Resource::new_borrow(r.rep());
    let file = view
        .open_at(borrow(&root), PathFlags::empty(), "www/index.html".into(), OpenFlags::empty(), DescriptorFlags::READ)
        .await
        .unwrap();
    let (bytes, _) = view.read(file, 1024, 0).await.unwrap();
    assert_eq!(bytes, b"<h1>hi</h1>");
    let write = DescriptorFlags::READ | DescriptorFlags::WRITE;
    assert!(view
        .open_at(borrow(&root), PathFlags::empty(), "www/index.html".into(), OpenFlags::empty(), write)
        .await
        .is_err());
    assert!(view.open_at(borrow(&root), PathFlags::empty(), "new.txt".into(), OpenFlags::CREATE, write).await.is_err());
    assert!(view
        .open_at(borrow(&root), PathFlags::empty(), "../c".into(), OpenFlags::empty(), DescriptorFlags::READ)
        .await
        .is_err());
    assert!(!files.join("new.txt").exists());
    // Without files, nothing of the host's filesystem.
    let mut bare = guest_wasi(&[], None, &nobody());
    let mut view = wasmtime_wasi::filesystem::WasiFilesystemCtxView { ctx: bare.filesystem(), table: &mut table };
    assert!(view.get_directories().unwrap().is_empty());
}

#[test]
fn an_interface_the_host_does_not_provide_is_refused_at_load_by_name() {
    let dir = FilesDir::new().unwrap();
    let app = dir.component("app");
    std::fs::create_dir_all(&app).unwrap();
    // A component that needs Spin's key-value store, which this host does not carry.
    let kv = r#"(component
        (import "fermyon:spin/key-value@2.0.0" (instance (export "open" (func (param "name" string) (result u32))))))"#;
    std::fs::write(app.join("kv.wasm"), wat::parse_str(kv).unwrap()).unwrap();
    let manifest = "spin_manifest_version = 2\n[application]\nname = \"kv\"\n\
        [[trigger.http]]\nroute = \"/kv\"\ncomponent = \"kv\"\n[component.kv]\nsource = \"kv.wasm\"\n";
    std::fs::write(app.join("spin.toml"), manifest).unwrap();
    let config = HostConfig {
        manifest: app.join("spin.toml"),
        env_file: None,
        cache_dir: app.join("cache"),
        wasm_dir: None,
        max_instances: 1,
        limits: GuestLimits::DEFAULT,
    };
    let why = match Host::load(&config) {
        Ok(_) => panic!("loaded a component importing an interface the host does not provide"),
        Err(e) => format!("{e:#}"),
    };
    assert!(why.contains("linking component kv") && why.contains("fermyon:spin/key-value@2.0.0"), "{why}");
}
