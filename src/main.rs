//! The `vmsift` binary (also installed as `makedumpfile`): all logic lives in the library.

fn main() {
    std::process::exit(vmsift::app::main(std::env::args_os()));
}
