//! Modules of each kind Spin meets, made here: what is converted runs, what is refused says why.

use super::*;
use wasm_encoder::Section;
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, Store};
use wasmtime_wasi::{ResourceTable, WasiCtx, WasiCtxView, WasiView};

/// A module exporting `hello: func() -> u32` (answering 42), with `memory` and `cabi_realloc` as
/// wit-bindgen writes them.
const HELLO: &str = r#"(module
    (memory (export "memory") 1)
    (func (export "hello") (result i32) i32.const 42)
    (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) i32.const 1024))"#;

/// `HELLO` with the `component-type` section wit-bindgen writes for `world hello { export hello: func()
/// -> u32; }`, naming `tool` at `version` as its maker.
fn made_by(tool: &str, version: &str) -> Vec<u8> {
    let mut resolve = wit_parser::Resolve::default();
    let package =
        resolve.push_str("hello.wit", "package test:hello; world hello { export hello: func() -> u32; }").unwrap();
    let world = resolve.select_world(&[package], Some("hello")).unwrap();
    let mut producers = wasm_metadata::Producers::empty();
    producers.add("processed-by", tool, version);
    let section =
        wit_component::metadata::encode(&resolve, world, wit_component::StringEncoding::UTF8, Some(&producers))
            .unwrap();
    let mut module = wat::parse_str(HELLO).unwrap();
    wasm_encoder::CustomSection { name: "component-type:hello".into(), data: section.into() }.append_to(&mut module);
    module
}

/// `wat` with a `producers` section naming `clang` at `version`.
fn compiled_by_clang(wat: &str, version: &str) -> Vec<u8> {
    let mut producers = wasm_metadata::Producers::empty();
    producers.add("processed-by", "clang", version);
    producers.add_to_wasm(&wat::parse_str(wat).unwrap()).unwrap()
}

/// A WASI 0.1 command: `_start` writes "hi\n" to stdout with `fd_write`.
const COMMAND: &str = r#"(module
    (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
    (memory (export "memory") 1)
    (data (i32.const 16) "hi\n")
    (func (export "_start")
        (i32.store (i32.const 0) (i32.const 16))
        (i32.store (i32.const 4) (i32.const 3))
        (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#;

struct Host {
    wasi: WasiCtx,
    table: ResourceTable,
}

impl WasiView for Host {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

fn engine() -> Engine {
    Engine::new(&Config::new()).unwrap()
}

fn store(engine: &Engine, stdout: wasmtime_wasi::p2::pipe::MemoryOutputPipe) -> Store<Host> {
    let wasi = WasiCtx::builder().stdout(stdout).build();
    Store::new(engine, Host { wasi, table: ResourceTable::new() })
}

#[test]
fn a_component_is_used_as_it_is() {
    let component = wat::parse_str("(component)").unwrap();
    assert!(matches!(if_necessary(&component).unwrap(), Cow::Borrowed(b) if b == component.as_slice()));
}

#[tokio::test]
async fn a_wit_bindgen_module_becomes_a_component_that_runs() {
    let converted = if_necessary(&made_by("wit-bindgen-rust", "0.41.0")).unwrap().into_owned();
    assert_eq!(encoding(&converted).unwrap(), Encoding::Component);
    let engine = engine();
    let component = Component::new(&engine, &converted).unwrap();
    let mut linker = Linker::<Host>::new(&engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).unwrap();
    let mut store = store(&engine, wasmtime_wasi::p2::pipe::MemoryOutputPipe::new(64));
    let instance = linker.instantiate_async(&mut store, &component).await.unwrap();
    let hello = instance.get_typed_func::<(), (u32,)>(&mut store, "hello").unwrap();
    assert_eq!(hello.call_async(&mut store, ()).await.unwrap(), (42,));
    // Spin's version rule: 0.5 onwards, `major.minor` alone too.
    for version in ["0.5", "0.5.0", "0.46.0"] {
        assert!(if_necessary(&made_by("wit-bindgen-c", version)).is_ok(), "{version}");
    }
}

#[tokio::test]
async fn a_wasi_command_module_becomes_a_command_that_runs() {
    let converted = if_necessary(&wat::parse_str(COMMAND).unwrap()).unwrap().into_owned();
    let engine = engine();
    let component = Component::new(&engine, &converted).unwrap();
    let mut linker = Linker::<Host>::new(&engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).unwrap();
    let stdout = wasmtime_wasi::p2::pipe::MemoryOutputPipe::new(64);
    let mut store = store(&engine, stdout.clone());
    let command =
        wasmtime_wasi::p2::bindings::Command::instantiate_async(&mut store, &component, &linker).await.unwrap();
    assert_eq!(command.wasi_cli_run().call_run(&mut store).await.unwrap(), Ok(()));
    assert_eq!(stdout.contents().as_ref(), b"hi\n");
    // A clang from wasi-sdk 19 or later is fine; an older one is refused, as Spin refuses it.
    assert!(
        if_necessary(&compiled_by_clang(COMMAND, "15.0.7 (https://github.com/llvm/llvm-project 8dfdcc7b7bf6)")).is_ok()
    );
    let old = if_necessary(&compiled_by_clang(COMMAND, "15.0.6-wasi-sdk")).unwrap_err();
    assert!(format!("{old:#}").contains("wasi-sdk before 19 (clang 15.0.6-wasi-sdk)"), "{old:#}");
}

#[test]
fn modules_spin_cannot_adapt_are_refused_with_the_reason() {
    let refusal = |bytes: &[u8]| format!("{:#}", if_necessary(bytes).unwrap_err());
    for version in ["0.4.0", "0.2", "1.0.0", "0.5.0.1", "zero"] {
        let why = refusal(&made_by("wit-bindgen-rust", version));
        assert!(why.contains(&format!("wit-bindgen-rust {version}")) && why.contains("0.5 to 0.x"), "{why}");
    }
    // A module with wit-bindgen's realloc and no metadata (wit-bindgen 0.2, Spin 1's SDKs).
    let why = refusal(&wat::parse_str(HELLO).unwrap());
    assert!(why.contains("wit-bindgen 0.2") && why.contains("rebuild it with a current Spin SDK"), "{why}");
    // A `component-type` section that does not decode: the reason says so.
    let mut garbled = wat::parse_str(HELLO).unwrap();
    wasm_encoder::CustomSection { name: "component-type:x".into(), data: b"\x01garbage".into() }
        .append_to(&mut garbled);
    assert!(refusal(&garbled).contains("component-type sections do not decode"));
    assert!(refusal(b"not wasm at all").contains("not a WebAssembly binary"));
}
