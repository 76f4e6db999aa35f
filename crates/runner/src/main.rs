//! `edgeshell-runner`: runs one session, or installs a verified CLI bundle (see [`edgeshell_runner::cli`]).

fn main() {
    std::process::exit(edgeshell_runner::cli::main(std::env::args().skip(1).collect()));
}
