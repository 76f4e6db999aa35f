//! `edgeshell-files`: files out of an edgeshell session (see [`edgeshell_runner::files::client`]).

fn main() {
    std::process::exit(edgeshell_runner::files::client::main(std::env::args().skip(1).collect()));
}
