fn main() {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // Before anything else, while husk is one thread (see cloned_binary.rs).
    if husk::cloned_binary::needed_for(&argv) {
        match husk::cloned_binary::running_from_sealed_copy() {
            Ok(true) => husk::cloned_binary::restore_name(&argv),
            Ok(false) => {
                let err = husk::cloned_binary::reexec_sealed(&argv);
                eprintln!("husk: {err}");
                std::process::exit(1);
            }
            Err(err) => {
                eprintln!("husk: {err}");
                std::process::exit(1);
            }
        }
    }
    let argv: Vec<String> = argv.iter().skip(1).map(|a| a.to_string_lossy().into_owned()).collect();
    std::process::exit(husk::cli::main(argv));
}
