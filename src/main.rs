fn main() -> std::process::ExitCode {
    tame_the_allocator();
    quiet_on_a_closed_pipe();
    match fleetdeck::cli::run() {
        Ok(code) => code,
        Err(e) if closed_pipe(&e) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fleetdeck: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// A reader that stops early (`fleetdeck man | head`) closes the pipe: that is the normal end
/// of the output, not an error. Rust ignores SIGPIPE, so the write fails with EPIPE instead,
/// either as an error the command returns or as `println!`'s panic; both end quietly with 0.
fn closed_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// `println!` panics when stdout is a closed pipe ("failed printing to stdout: Broken pipe");
/// that panic alone exits 0 without a message. Every other panic goes to the usual hook (the
/// cockpit installs its own on top, which restores the terminal first).
fn quiet_on_a_closed_pipe() {
    let usual = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if message.starts_with("failed printing to std") && message.contains("Broken pipe") {
            std::process::exit(0);
        }
        usual(info);
    }));
}

/// glibc's malloc gives every thread that allocates its own 64 MiB arena and raises its mmap
/// threshold after the first large free, so the DCGM bodies (100 MB at 20,000 GPUs) parsed every
/// 10 s on worker threads stay resident long after they are dropped: the cockpit on a
/// 150,000-pod fleet held 808 MiB where two arenas and a fixed threshold hold about 520 MiB
/// (benches/cockpit_scale.rs). Set before any thread starts; `MALLOC_ARENA_MAX` and
/// `MALLOC_MMAP_THRESHOLD_` in the environment still win.
fn tame_the_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let unset = |name: &str| std::env::var_os(name).is_none();
        // SAFETY: mallopt only sets allocator parameters; called before any other thread exists.
        unsafe {
            if unset("MALLOC_ARENA_MAX") {
                libc::mallopt(libc::M_ARENA_MAX, 2);
            }
            if unset("MALLOC_MMAP_THRESHOLD_") {
                libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
            }
        }
    }
}
