fn main() -> std::process::ExitCode {
    tame_the_allocator();
    match fleetdeck::cli::run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("fleetdeck: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
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
