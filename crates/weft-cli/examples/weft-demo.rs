//! weft-demo: a small program instrumented with weft-probe, to try weft on
//! (`weft record -- weft-demo markers 5`) and to test it. Each scenario
//! prints what it did, so a test can compare with the trace.

use std::io::Write;
use std::time::Duration;

weft_probe::define_event!(TICK = "demo":"tick" { n: u64, thread: u32 });
weft_probe::define_event!(NOTE = "demo":"note" { text: &str, value: i64, ratio: f64, ok: bool });

fn usage() -> ! {
    eprintln!(
        "usage: weft-demo SCENARIO [ARGS]\n\
         scenarios:\n\
         \x20 markers N          N markers, each just before a munmap of a fresh page\n\
         \x20 threads T N        T threads writing N demo:tick events each\n\
         \x20 wave T N G         T threads started G ms apart, each writing N demo:tick at once\n\
         \x20 fork N             N ticks in the parent, then in a forked child, then exec `markers 2`\n\
         \x20 spin               tick every millisecond until killed\n\
         \x20 scribble N         4 threads tick N times; one then scribbles over its own buffer and ticks again\n\
         \x20 longjmp N          N ticks while a timer's handler writes events and siglongjmps out of the interrupted write\n\
         \x20 flight N           N ticks (for overwrite mode)\n\
         \x20 span               one span around a sleep\n\
         \x20 forkexec           fork a child that outlives the parent, then exec `markers 2`\n\
         \x20 forkenv N          fork N children (each exits at once) while another thread keeps changing\n\
         \x20                    the environment; prints how many children hung\n\
         \x20 forklater N        once attached and then detached again, fork N children that exit at once;\n\
         \x20                    prints the slowest fork-to-exit in ms\n\
         \x20 late N             once attached, wait for a line on stdin, register N new events late:evK,\n\
         \x20                    then wait until they are enabled and emit each once\n\
         \x20 storm N K          fork N children that are all alive at once; each writes K demo:tick (thread = its\n\
         \x20                    index) and exits once all have written\n\
         \x20 gate T N           once attached, print `ready`, wait for a line on stdin, then T threads write N\n\
         \x20                    demo:tick each as fast as they can; prints `wrote T x N`\n\
         \x20 forkmany T F K    T threads each fork F children in turn; parent and children write K demo:tick,\n\
         \x20                    the parent with thread = its index, each child with thread = 1000 + its number\n\
         \x20 chaosloop MS       3 threads tick while a 4th, for MS ms, writes and flips random bytes of its own\n\
         \x20                    buffers (control page and sub-buffers) between its writes\n\
         \x20 latency S         one thread writes a demo:tick every 20 us for S seconds, timing each write;\n\
         \x20                    prints the count and the p50, p99, p99.99 and max write time in ns\n\
         \x20 torture KIND N    a thread writes N demo:tick; mid-stream a SIGUSR1 handler writes and then\n\
         \x20                    ends the thread (KIND threadexit), the process (exit, status 3), or nests\n\
         \x20                    200 deep (nest, every 1000 writes), or writes from an alternate signal\n\
         \x20                    stack every 50 us (altstack; altstack-above: one mapped above the thread's\n\
         \x20                    stack) or from another context it switches to and back (swapcontext);\n\
         \x20                    prints the writes attempted\n\
         \x20 punch N            3 threads tick N times; a 4th ticks N times, tries to shrink the buffer memfd, punches\n\
         \x20                    a hole in its sub-buffers and MADV_REMOVEs a page, then ticks N times more\n\
         \x20 chaos KIND N       3 threads tick N times; a 4th ticks N times, damages its control page (KIND: zero,\n\
         \x20                    counters, tid, gen or time), then ticks N times more, slowly; prints the tids\n\
         \x20 bench N [T]        cost of demo:tick (two u64 fields): N events in each of T threads (default 1);\n\
         \x20                    prints the median ns per event over 15 batches, and events/s"
    );
    std::process::exit(2)
}

fn arg(i: usize, default: u64) -> u64 {
    std::env::args().nth(i).and_then(|a| a.parse().ok()).unwrap_or(default)
}

fn main() {
    let scenario = std::env::args().nth(1).unwrap_or_default();
    let mut out = std::io::stdout();
    match scenario.as_str() {
        "markers" => {
            for i in 0..arg(2, 3) {
                // SAFETY: mapping and unmapping a fresh anonymous page.
                let p = unsafe {
                    libc::mmap(
                        std::ptr::null_mut(),
                        4096,
                        libc::PROT_READ | libc::PROT_WRITE,
                        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                        -1,
                        0,
                    )
                };
                weft_probe::marker("before-munmap", i as i64);
                // SAFETY: p was mapped just above.
                unsafe { libc::munmap(p, 4096) };
                let _ = writeln!(out, "marker {i} {:#x}", p as usize);
            }
        }
        "threads" => {
            let (t, n) = (arg(2, 4), arg(3, 1000));
            tick_threads(t, n);
            let _ = writeln!(out, "threads {t} x {n}");
        }
        "wave" => {
            let (t, n, gap) = (arg(2, 24), arg(3, 1000), arg(4, 10));
            wave(t, n, gap);
            let _ = writeln!(out, "wave {t} x {n}");
        }
        "fork" => {
            let n = arg(2, 10);
            for i in 0..n {
                weft_probe::emit!(TICK(i, 0));
            }
            // SAFETY: fork in a single-threaded program (besides weft-probe's listener).
            let child = unsafe { libc::fork() };
            if child == 0 {
                for i in 0..n {
                    weft_probe::emit!(TICK(100 + i, 1));
                }
                let me = std::env::current_exe().unwrap_or_default();
                let err = std::process::Command::new(me).args(["markers", "2"]).status();
                let _ = err;
                // SAFETY: leaving the child without running the parent's atexit handlers.
                unsafe { libc::_exit(0) };
            }
            let mut st = 0;
            // SAFETY: waiting for our child.
            unsafe { libc::waitpid(child, &mut st, 0) };
            let _ = writeln!(out, "fork child {child}");
        }
        "forkexec" => {
            // The parent forks a child that outlives it, then execs: the new
            // image must get a session although the child still runs.
            for i in 0..3 {
                weft_probe::emit!(TICK(i, 0));
            }
            // SAFETY: fork; the child only sleeps and exits.
            if unsafe { libc::fork() } == 0 {
                std::thread::sleep(Duration::from_millis(1500));
                // SAFETY: leaving the child without the parent's atexit handlers.
                unsafe { libc::_exit(0) };
            }
            let me = std::env::current_exe().unwrap_or_default();
            let err = std::os::unix::process::CommandExt::exec(std::process::Command::new(me).args(["markers", "2"]));
            let _ = writeln!(out, "exec failed: {err}");
        }
        "spin" => {
            let _ = writeln!(out, "ready");
            let _ = out.flush();
            let mut i = 0;
            loop {
                weft_probe::emit!(TICK(i, 0));
                i += 1;
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        "scribble" => scribble(arg(2, 1000)),
        "late" => late(arg(2, 300)),
        "forkenv" => forkenv(arg(2, 100)),
        "forklater" => forklater(arg(2, 5)),
        "longjmp" => longjmp(arg(2, 200_000)),
        "flight" => {
            for i in 0..arg(2, 100_000) {
                weft_probe::emit!(TICK(i, 0));
            }
        }
        "bench" => bench(arg(2, 1_000_000), arg(3, 1)),
        "storm" => storm(arg(2, 100), arg(3, 10)),
        "punch" => punch(arg(2, 2000)),
        "torture" => torture(&std::env::args().nth(2).unwrap_or_default(), arg(3, 100_000)),
        "latency" => latency(arg(2, 10)),
        "forkmany" => forkmany(arg(2, 4), arg(3, 25), arg(4, 10)),
        "chaosloop" => chaosloop(arg(2, 1000)),
        "gate" => {
            let (t, n) = (arg(2, 8), arg(3, 100_000));
            // Attached before saying so, however long a loaded machine takes.
            if std::env::var_os("WEFT_PROBE_WAIT_MS").is_some() {
                wait_until(|| TICK.enabled(), Duration::from_secs(30));
            }
            let _ = writeln!(out, "ready");
            let _ = out.flush();
            let mut line = String::new();
            let _ = std::io::stdin().read_line(&mut line);
            tick_threads(t, n);
            let _ = writeln!(out, "wrote {t} x {n}");
        }
        "chaos" => chaos(&std::env::args().nth(2).unwrap_or_default(), arg(3, 2000)),
        "span" => {
            let s = weft_probe::span("sleepy");
            std::thread::sleep(Duration::from_millis(20));
            drop(s);
            weft_probe::emit!(NOTE("done", -5, 0.25, true));
        }
        _ => usage(),
    }
}

fn scribble(n: u64) {
    let bad = std::thread::spawn(move || {
        for i in 0..n {
            weft_probe::emit!(TICK(i, 9));
        }
        // Let the recorder read all of it first: the scribble must still
        // be seen, though it hits no unread record.
        std::thread::sleep(Duration::from_millis(100));
        // Overwrite this thread's whole buffer with pseudo-random bytes.
        let mut x: u64 = 0x1234_5678_9abc_def1;
        for (addr, len) in weft_probe::debug::thread_buffers() {
            for off in (0..len).step_by(8) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                // SAFETY: inside our own thread's buffer mapping (that is the point of the test).
                unsafe { ((addr + off) as *mut u64).write_volatile(x) };
            }
        }
        for i in 0..n {
            weft_probe::emit!(TICK(1_000_000 + i, 9));
        }
    });
    let good: Vec<_> = (0..3)
        .map(|k| {
            std::thread::spawn(move || {
                for i in 0..n {
                    weft_probe::emit!(TICK(i, k));
                    if i % 64 == 0 {
                        std::thread::yield_now();
                    }
                }
            })
        })
        .collect();
    let _ = bad.join();
    for h in good {
        let _ = h.join();
    }
    println!("scribbled");
}

// siglongjmp out of a handler that interrupted a write.
#[repr(C, align(16))]
struct JmpBuf([u64; 64]);
static mut JB: JmpBuf = JmpBuf([0; 64]);
static JUMPS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

extern "C" {
    #[link_name = "__sigsetjmp"]
    fn sigsetjmp(env: *mut JmpBuf, savemask: i32) -> i32;
    fn siglongjmp(env: *mut JmpBuf, val: i32) -> !;
}

extern "C" fn on_alarm(_: i32) {
    weft_probe::emit!(NOTE("in handler", 1, 0.5, false));
    JUMPS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    // SAFETY: JB was filled by sigsetjmp in the loop below, whose frame is live.
    unsafe { siglongjmp(std::ptr::addr_of_mut!(JB), 1) }
}

fn longjmp(n: u64) {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
    // Statics: locals changed after sigsetjmp are indeterminate after the jump.
    static I: AtomicU64 = AtomicU64::new(0);
    static ARMED: AtomicBool = AtomicBool::new(false);
    // SAFETY: the handler jumps back here; all state lives in statics.
    unsafe {
        sigsetjmp(std::ptr::addr_of_mut!(JB), 1);
    }
    // The timer only once JB is filled: armed first, a thread preempted for
    // 50 µs before its sigsetjmp (a loaded machine) jumped to a zeroed
    // buffer and crashed.
    if !ARMED.swap(true, Relaxed) {
        // SAFETY: installing a handler and a 50 µs profiling-style timer.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_alarm as *const () as usize;
            sa.sa_flags = libc::SA_NODEFER;
            libc::sigaction(libc::SIGALRM, &sa, std::ptr::null_mut());
            let it = libc::itimerval {
                it_interval: libc::timeval { tv_sec: 0, tv_usec: 50 },
                it_value: libc::timeval { tv_sec: 0, tv_usec: 50 },
            };
            libc::setitimer(libc::ITIMER_REAL, &it, std::ptr::null_mut());
        }
    }
    while I.load(Relaxed) < n {
        weft_probe::emit!(TICK(I.load(Relaxed), 0));
        I.fetch_add(1, Relaxed);
    }
    // SAFETY: stop the timer, and block SIGALRM (sigset on our stack).
    unsafe {
        let it = libc::itimerval {
            it_interval: libc::timeval { tv_sec: 0, tv_usec: 0 },
            it_value: libc::timeval { tv_sec: 0, tv_usec: 0 },
        };
        libc::setitimer(libc::ITIMER_REAL, &it, std::ptr::null_mut());
        // One may still be pending: it must not jump out of the println.
        let mut alrm: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut alrm);
        libc::sigaddset(&mut alrm, libc::SIGALRM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &alrm, std::ptr::null_mut());
    }
    println!("longjmp jumps {}", JUMPS.load(std::sync::atomic::Ordering::Relaxed));
}

/// Per-event cost of `demo:tick`: median over batches, so a preemption does
/// not count. Disabled when run alone; enabled under `weft record`.
fn bench(n: u64, threads: u64) {
    const BATCHES: u64 = 15;
    let per = (n / BATCHES).max(1);
    let run = move |k: u64| {
        let mut ns = Vec::new();
        for _ in 0..BATCHES {
            let t0 = std::time::Instant::now();
            for i in 0..per {
                weft_probe::emit!(TICK(std::hint::black_box(i), k as u32));
            }
            ns.push(t0.elapsed().as_nanos() as f64 / per as f64);
        }
        ns.sort_by(|a, b| a.total_cmp(b));
        ns[ns.len() / 2]
    };
    let t0 = std::time::Instant::now();
    let hs: Vec<_> = (0..threads).map(|k| std::thread::spawn(move || run(k))).collect();
    let medians: Vec<f64> = hs.into_iter().map(|h| h.join().unwrap_or(f64::NAN)).collect();
    let secs = t0.elapsed().as_secs_f64();
    let total = per * BATCHES * threads;
    println!(
        "enabled={} threads={threads} events={total} median_ns_per_event={:.2} events_per_sec={:.0}",
        TICK.enabled(),
        medians.iter().sum::<f64>() / medians.len() as f64,
        total as f64 / secs
    );
}

/// Events registered while a session is attached (as a library loaded late
/// would): registering never waits for the collector; each event is enabled
/// once the collector was told about it.
fn late(n: u64) {
    let mut out = std::io::stdout();
    // Started by weft record (it sets this): wait for it; otherwise nobody
    // will enable anything.
    let wait = if std::env::var_os("WEFT_PROBE_WAIT_MS").is_some() {
        1
    } else {
        0
    };
    wait_until(|| TICK.enabled(), Duration::from_secs(10 * wait));
    let _ = writeln!(out, "ready");
    let _ = out.flush();
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    static FIELDS: [weft_probe::FieldDesc; 1] = [weft_probe::FieldDesc {
        name: c"k".as_ptr(),
        ty: weft_probe::FieldType::U64 as u32,
    }];
    let t0 = std::time::Instant::now();
    let mut slowest = Duration::ZERO;
    let events: Vec<&'static weft_probe::Event> = (0..n)
        .map(|k| {
            let name = std::ffi::CString::new(format!("ev{k}")).unwrap_or_default();
            let e: &'static weft_probe::Event = Box::leak(Box::new(weft_probe::Event::new(
                c"late",
                Box::leak(name.into_boxed_c_str()),
                &FIELDS,
            )));
            let t = std::time::Instant::now();
            weft_probe::register(e);
            slowest = slowest.max(t.elapsed());
            e
        })
        .collect();
    let _ = writeln!(
        out,
        "registered {n} in {} ms, slowest {} ms",
        t0.elapsed().as_millis(),
        slowest.as_millis()
    );
    let _ = out.flush();
    wait_until(|| events.iter().all(|e| e.enabled()), Duration::from_secs(20 * wait));
    let enabled = events.iter().filter(|e| e.enabled()).count();
    for (k, e) in events.iter().enumerate() {
        if e.enabled() {
            let args = [weft_probe::capi::WeftArg { u: k as u64 }];
            // SAFETY: a registered event with one u64 field, one argument.
            unsafe { weft_probe::capi::weft_emit(*e, args.as_ptr(), 1) };
        }
    }
    let _ = writeln!(out, "enabled {enabled} of {n}");
}

/// Forks while another thread holds the environment's lock much of the time:
/// weft-probe's fork handler runs in each child, and must not wait on a lock
/// the child inherited held.
fn forkenv(n: u64) {
    static STOP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    let hammer = std::thread::spawn(|| {
        // Two values only: glibc keeps every value string it was given.
        for v in ["a", "b"].iter().cycle() {
            if STOP.load(std::sync::atomic::Ordering::Relaxed) {
                break;
            }
            // SAFETY: no other thread of this program reads the environment
            // while this runs (weft-probe read it once, at start-up).
            unsafe { std::env::set_var("WEFT_DEMO_NOISE", v) };
        }
    });
    let mut hung = 0;
    let mut failed = false;
    // One hung child is enough to know.
    for _ in 0..n {
        if failed {
            break;
        }
        // SAFETY: the child only returns from the fork handlers and exits.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: leaving the child without running the parent's atexit handlers.
            unsafe { libc::_exit(0) };
        }
        if pid < 0 {
            break;
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let mut status = 0;
            // SAFETY: waiting for our own child.
            if unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) } != 0 {
                break;
            }
            if std::time::Instant::now() > deadline {
                hung += 1;
                failed = true;
                // SAFETY: killing and reaping our own child.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                    libc::waitpid(pid, &mut status, 0);
                }
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    STOP.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = hammer.join();
    println!("forks {n} hung {hung}");
}

/// A program that outlives its recording and then forks: its children must
/// not wait for a collector that is gone.
fn forklater(n: u64) {
    wait_until(|| TICK.enabled(), Duration::from_secs(10));
    wait_until(|| !TICK.enabled(), Duration::from_secs(10));
    let mut slowest = Duration::ZERO;
    for _ in 0..n {
        let t = std::time::Instant::now();
        // SAFETY: the child only returns from the fork handlers and exits.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: leaving the child without the parent's atexit handlers.
            unsafe { libc::_exit(0) };
        }
        let mut status = 0;
        // SAFETY: waiting for our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        slowest = slowest.max(t.elapsed());
    }
    println!("forks {n} slowest {} ms", slowest.as_millis());
}

/// Polls `cond` every millisecond until it holds or `limit` has passed.
fn wait_until(cond: impl Fn() -> bool, limit: Duration) {
    let deadline = std::time::Instant::now() + limit;
    while !cond() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Many children alive at once, each with events of its own.
fn storm(n: u64, k: u64) {
    let mut written = [0i32; 2];
    let mut release = [0i32; 2];
    // SAFETY: pipe writes two descriptors into each array.
    unsafe {
        libc::pipe(written.as_mut_ptr());
        libc::pipe(release.as_mut_ptr());
    }
    let mut kids = Vec::new();
    for c in 0..n {
        // SAFETY: fork; the child writes events, then only reads, writes and exits.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            for i in 0..k {
                weft_probe::emit!(TICK(i, c as u32));
            }
            let mut b = 0u8;
            // SAFETY: one byte through pipes created above; then leave without
            // the parent's atexit handlers.
            unsafe {
                libc::write(written[1], (&b as *const u8).cast(), 1);
                libc::close(release[1]);
                libc::read(release[0], (&mut b as *mut u8).cast(), 1);
                libc::_exit(0);
            }
        }
        if pid > 0 {
            kids.push(pid);
        }
    }
    let mut b = 0u8;
    for _ in &kids {
        // SAFETY: reading one byte from our pipe.
        unsafe { libc::read(written[0], (&mut b as *mut u8).cast(), 1) };
    }
    // SAFETY: closing our write end releases every child (they read EOF).
    unsafe { libc::close(release[1]) };
    for &pid in &kids {
        let mut st = 0;
        // SAFETY: waiting for our own children.
        unsafe { libc::waitpid(pid, &mut st, 0) };
    }
    println!("storm {} children {k} ticks", kids.len());
}

fn gettid() -> u32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::syscall(libc::SYS_gettid) as u32 }
}

/// One thread damages its own control page the way a stray pointer would.
fn chaos(kind: &str, n: u64) {
    use weft_probe_abi::layout::*;
    let kind = kind.to_owned();
    let bad = std::thread::spawn(move || {
        // "time" scribbles records the collector has not read yet: right
        // after writing them, in rounds, since a collector draining every
        // 250 µs may have read one whole round already.
        let rounds = if kind == "time" { 20 } else { 1 };
        for r in 0..rounds {
            for i in n * r / rounds..n * (r + 1) / rounds {
                weft_probe::emit!(TICK(i, 9));
            }
            if r + 1 < rounds {
                scribble_times();
            }
        }
        if kind != "time" {
            // Damage comes after the collector has read the first records
            // (a timestamp can only be scribbled on records not read yet).
            std::thread::sleep(Duration::from_millis(100));
        }
        for ctl in weft_probe::debug::thread_control_pages() {
            let at = |off: usize| (ctl + off) as *mut u64;
            // SAFETY: inside our own thread's control page (the point of the test).
            unsafe {
                match kind.as_str() {
                    "zero" => std::ptr::write_bytes(ctl as *mut u8, 0, SLOT_CTL_LEN),
                    "counters" => at(S_ATTEMPTED).write_volatile(u64::MAX),
                    "tid" => (at(S_OWNER) as *mut u32).write_volatile(4_000_000),
                    "gen" => {
                        let g = at(S_SWITCH_GEN).read_volatile();
                        at(S_SWITCH_GEN).write_volatile(g + 1000);
                    }
                    "time" => scribble_times(),
                    _ => {}
                }
            }
        }
        ticks_after_damage(n);
        gettid()
    });
    let good = undisturbed_threads(n);
    let bad = bad.join().unwrap_or(0);
    let good: Vec<String> = good.into_iter().map(|h| h.join().unwrap_or(0).to_string()).collect();
    println!("chaos bad {bad} good {} main {}", good.join(" "), gettid());
}

/// Every committed record still in this thread's sub-buffers (weft record
/// makes 8 per thread) gets a timestamp two centuries away, with a matching
/// check byte, as a program that means it would write: only the time is
/// wrong.
fn scribble_times() {
    use weft_probe_abi::layout::*;
    for (addr, len) in weft_probe::debug::thread_buffers() {
        let size = len / 8;
        for sb in (0..len).step_by(size) {
            let mut pos = GUARD_LEN;
            while pos + RECORD_HEADER_LEN <= size - GUARD_LEN {
                let rec = addr + sb + pos;
                // SAFETY: inside our own thread's buffer (the point of the test).
                unsafe {
                    let w0 = (rec as *const u64).read_volatile();
                    let rlen = (w0 as u32 & RECORD_LEN_MASK) as usize;
                    let ss = ((rec + R_SEQ_STATE) as *const u64).read_volatile();
                    if rlen < RECORD_HEADER_LEN || ss as u8 != STATE_COMMITTED {
                        break;
                    }
                    let tsc = u64::MAX / 3;
                    let w0 = record_word0(rlen as u32, (w0 >> 32) as u32, ss >> 8, tsc);
                    (rec as *mut u64).write_volatile(w0);
                    ((rec + R_TSC) as *mut u64).write_volatile(tsc);
                    pos += rlen;
                }
            }
        }
    }
}

/// The memfd behind `addr` (opened through /proc/self/map_files) and the
/// file offset of `addr` in it.
fn memfd_of(addr: usize) -> Option<(std::fs::File, u64)> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    for l in maps.lines() {
        let mut f = l.split_whitespace();
        let range = f.next()?;
        let (a, b) = range.split_once('-')?;
        let (a, b) = (usize::from_str_radix(a, 16).ok()?, usize::from_str_radix(b, 16).ok()?);
        if (a..b).contains(&addr) {
            let off = u64::from_str_radix(f.nth(1)?, 16).ok()?;
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(format!("/proc/self/map_files/{range}"))
                .ok()?;
            return Some((file, off + (addr - a) as u64));
        }
    }
    None
}

/// A thread attacks its own buffer memory the ways the seals allow and the
/// ones they do not, while other threads write on.
fn punch(n: u64) {
    use std::os::fd::AsRawFd;
    let bad = std::thread::spawn(move || {
        for i in 0..n {
            weft_probe::emit!(TICK(i, 9));
        }
        // Let the collector read the first part.
        std::thread::sleep(Duration::from_millis(100));
        let mut said = Vec::new();
        for (addr, len) in weft_probe::debug::thread_buffers() {
            let Some((file, off)) = memfd_of(addr) else {
                said.push("no memfd".to_string());
                continue;
            };
            // SAFETY: plain syscalls on our own descriptor and mapping.
            unsafe {
                let shrink = libc::ftruncate(file.as_raw_fd(), 4096);
                said.push(format!("ftruncate {}", if shrink == 0 { "done" } else { "refused" }));
                let hole = libc::fallocate(
                    file.as_raw_fd(),
                    libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                    off as libc::off_t,
                    (len / 2) as libc::off_t,
                );
                said.push(format!("punch {}", if hole == 0 { "done" } else { "refused" }));
                let page = (addr + len / 2 + 4095) & !4095;
                let rm = libc::madvise(page as *mut libc::c_void, 4096, libc::MADV_REMOVE);
                said.push(format!("madv_remove {}", if rm == 0 { "done" } else { "refused" }));
            }
        }
        ticks_after_damage(n);
        (gettid(), said.join(", "))
    });
    let good = undisturbed_threads(n);
    let (bad, said) = bad.join().unwrap_or((0, String::new()));
    let good: Vec<String> = good.into_iter().map(|h| h.join().unwrap_or(0).to_string()).collect();
    println!("punch bad {bad} good {} ({said})", good.join(" "));
}

/// Forks from several writer threads at once: each child's events must be
/// its own, and none may land in the parent's streams.
fn forkmany(t: u64, f: u64, k: u64) {
    let hs: Vec<_> = (0..t)
        .map(|th| {
            std::thread::spawn(move || {
                for i in 0..f {
                    for n in 0..k {
                        weft_probe::emit!(TICK(n, th as u32));
                    }
                    let tag = 1000 + (th * f + i) as u32;
                    // SAFETY: fork; the child writes events and leaves with _exit.
                    let pid = unsafe { libc::fork() };
                    if pid == 0 {
                        for n in 0..k {
                            weft_probe::emit!(TICK(n, tag));
                        }
                        // SAFETY: leaving without the parent's atexit handlers.
                        unsafe { libc::_exit(0) };
                    }
                    if pid > 0 {
                        let mut st = 0;
                        // SAFETY: waiting for our own child.
                        unsafe { libc::waitpid(pid, &mut st, 0) };
                    }
                }
            })
        })
        .collect();
    for h in hs {
        let _ = h.join();
    }
    println!("forkmany {t} {f} {k}");
}

/// A thread that keeps writing while it flips random bytes of its own
/// buffers, for `ms` milliseconds; three others write undisturbed.
fn chaosloop(ms: u64) {
    let bad = std::thread::spawn(move || {
        let end = std::time::Instant::now() + Duration::from_millis(ms);
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let (mut i, mut flips) = (0u64, 0u64);
        while std::time::Instant::now() < end {
            for _ in 0..64 {
                weft_probe::emit!(TICK(i, 9));
                i += 1;
            }
            let mut regions: Vec<(usize, usize)> = weft_probe::debug::thread_buffers();
            regions.extend(
                weft_probe::debug::thread_control_pages()
                    .into_iter()
                    .map(|c| (c, weft_probe_abi::layout::SLOT_CTL_LEN)),
            );
            for (addr, len) in regions {
                let off = (next() as usize % len) & !7;
                // SAFETY: inside our own thread's buffer mapping (that is the point of the test).
                unsafe {
                    let p = (addr + off) as *mut u64;
                    p.write_volatile(p.read_volatile() ^ (1 << (next() % 64)));
                }
                flips += 1;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        (gettid(), i, flips)
    });
    let good: Vec<_> = (0..3)
        .map(|k| {
            std::thread::spawn(move || {
                let mut n = 0;
                let end = std::time::Instant::now() + Duration::from_millis(ms);
                while std::time::Instant::now() < end {
                    weft_probe::emit!(TICK(n, k));
                    n += 1;
                    if n % 64 == 0 {
                        std::thread::sleep(Duration::from_micros(100));
                    }
                }
                (gettid(), n)
            })
        })
        .collect();
    let (bad, written, flips) = bad.join().unwrap_or((0, 0, 0));
    let good: Vec<String> = good
        .into_iter()
        .map(|h| {
            let (t, n) = h.join().unwrap_or((0, 0));
            format!("{t}:{n}")
        })
        .collect();
    println!(
        "chaosloop bad {bad} wrote {written} flips {flips} good {}",
        good.join(" ")
    );
}

/// How long each write takes while whatever happens to the recorder
/// happens (it may be stopped, killed, slow): the program must never wait.
fn latency(secs: u64) {
    let end = std::time::Instant::now() + Duration::from_secs(secs);
    let mut times: Vec<u64> = Vec::with_capacity((secs * 50_000) as usize);
    let mut i = 0u64;
    while std::time::Instant::now() < end {
        let t0 = std::time::Instant::now();
        weft_probe::emit!(TICK(i, 0));
        times.push(t0.elapsed().as_nanos() as u64);
        i += 1;
        let pause = std::time::Instant::now() + Duration::from_micros(20);
        while std::time::Instant::now() < pause {
            std::hint::spin_loop();
        }
    }
    times.sort_unstable();
    let q = |f: f64| {
        times
            .get(((times.len() as f64 - 1.0) * f) as usize)
            .copied()
            .unwrap_or(0)
    };
    println!(
        "latency writes {} p50 {} p99 {} p99.99 {} max {} ns",
        times.len(),
        q(0.5),
        q(0.99),
        q(0.9999),
        times.last().copied().unwrap_or(0)
    );
}

/// `t` threads writing `n` demo:tick each, as fast as they can.
/// `t` threads started `gap_ms` apart, each writing `n` ticks at once.
fn wave(t: u64, n: u64, gap_ms: u64) {
    let mut hs = Vec::new();
    for k in 0..t {
        hs.push(std::thread::spawn(move || {
            for i in 0..n {
                weft_probe::emit!(TICK(i, k as u32));
            }
        }));
        std::thread::sleep(Duration::from_millis(gap_ms));
    }
    for h in hs {
        let _ = h.join();
    }
}

fn tick_threads(t: u64, n: u64) {
    let hs: Vec<_> = (0..t)
        .map(|k| {
            std::thread::spawn(move || {
                for i in 0..n {
                    weft_probe::emit!(TICK(i, k as u32));
                }
            })
        })
        .collect();
    for h in hs {
        let _ = h.join();
    }
}

use std::sync::atomic::AtomicU64 as TortureCounter;
/// Attempts made by the torture scenarios' writers (the program's own tally).
static TORTURE_ATTEMPTS: TortureCounter = TortureCounter::new(0);
static TORTURE_DEPTH: TortureCounter = TortureCounter::new(0);

/// Writes a number and a newline to stdout with write(2) alone (from a handler).
fn write_number(prefix: &[u8], n: u64) {
    let mut buf = [0u8; 64];
    buf[..prefix.len()].copy_from_slice(prefix);
    let mut digits = [0u8; 20];
    let (mut k, mut v) = (0, n);
    loop {
        digits[k] = b'0' + (v % 10) as u8;
        k += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    let mut at = prefix.len();
    for d in digits[..k].iter().rev() {
        buf[at] = *d;
        at += 1;
    }
    buf[at] = b'\n';
    // SAFETY: write(2) of a local buffer (async-signal-safe).
    unsafe { libc::write(1, buf.as_ptr().cast(), at + 1) };
}

extern "C" fn on_usr1_thread_exit(_: i32) {
    TORTURE_ATTEMPTS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    weft_probe::emit!(NOTE("in handler", 1, 0.5, false));
    // SAFETY: ends only this thread, in the kernel, without unwinding.
    unsafe { libc::syscall(libc::SYS_exit, 0) };
}

extern "C" fn on_usr1_process_exit(_: i32) {
    let n = TORTURE_ATTEMPTS.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
    weft_probe::emit!(NOTE("in handler", 1, 0.5, false));
    write_number(b"torture exit attempts ", n);
    // SAFETY: _exit is async-signal-safe.
    unsafe { libc::_exit(3) };
}

extern "C" fn on_usr1_nest(_: i32) {
    TORTURE_ATTEMPTS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    weft_probe::emit!(NOTE("nested", 1, 0.5, false));
    if TORTURE_DEPTH.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 200 {
        // SAFETY: raise is async-signal-safe; SA_NODEFER lets it nest.
        unsafe { libc::raise(libc::SIGUSR1) };
    }
}

/// Handlers that never return to the write they interrupted: one ends its
/// thread, one ends the process, one nests 200 deep, each mid-stream.
fn torture(kind: &str, n: u64) {
    use std::sync::atomic::Ordering::SeqCst;
    let handler = match kind {
        "altstack" => return torture_altstack(n, false),
        "altstack-above" => return torture_altstack(n, true),
        "swapcontext" => return torture_swapcontext(n),
        "threadexit" => on_usr1_thread_exit as *const () as usize,
        "exit" => on_usr1_process_exit as *const () as usize,
        "nest" => on_usr1_nest as *const () as usize,
        _ => usage(),
    };
    // SAFETY: installing a handler for SIGUSR1.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = handler;
        sa.sa_flags = libc::SA_NODEFER;
        libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut());
    }
    let nest = kind == "nest";
    static WORKER: TortureCounter = TortureCounter::new(0);
    let worker = std::thread::spawn(move || {
        WORKER.store(u64::from(gettid()), SeqCst);
        for i in 0..n {
            TORTURE_ATTEMPTS.fetch_add(1, SeqCst);
            weft_probe::emit!(TICK(i, 1));
            if i == n / 2 && !nest {
                // Let the main thread signal us mid-stream, then keep going.
                while TORTURE_DEPTH.load(SeqCst) == 0 {
                    std::hint::spin_loop();
                }
            }
            if nest && i % 1000 == 999 {
                TORTURE_DEPTH.store(0, SeqCst);
                // SAFETY: raise is async-signal-safe.
                unsafe { libc::raise(libc::SIGUSR1) };
            }
        }
    });
    if kind != "nest" {
        while TORTURE_ATTEMPTS.load(SeqCst) < n / 2 {
            std::hint::spin_loop();
        }
        use std::os::unix::thread::JoinHandleExt;
        // SAFETY: signalling a live thread of ours.
        unsafe { libc::pthread_kill(worker.as_pthread_t(), libc::SIGUSR1) };
        TORTURE_DEPTH.store(1, SeqCst);
    }
    if kind == "threadexit" {
        // The thread left through the kernel: nothing for join to collect.
        let task = format!("/proc/self/task/{}", WORKER.load(SeqCst));
        while std::path::Path::new(&task).exists() {
            std::thread::sleep(Duration::from_millis(1));
        }
        std::mem::forget(worker);
    } else {
        let _ = worker.join();
    }
    println!("torture {kind} attempts {}", TORTURE_ATTEMPTS.load(SeqCst));
}

/// How deep `on_usr2_write` handlers are nested now.
static ALT_DEPTH: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Handlers nested deeper than this return without writing: with
/// SA_NODEFER every signal that lands in a handler nests, and a debug
/// build's write takes 5-10 KiB of the alternate stack per level.
const ALT_DEPTH_MAX: usize = 32;

/// Bytes of each alternate stack: room for `ALT_DEPTH_MAX` levels.
const ALT_STACK: usize = 2 << 20;

extern "C" fn on_usr2_write(_: i32) {
    use std::sync::atomic::Ordering::SeqCst;
    if ALT_DEPTH.fetch_add(1, SeqCst) < ALT_DEPTH_MAX {
        TORTURE_ATTEMPTS.fetch_add(1, SeqCst);
        weft_probe::emit!(NOTE("on another stack", 2, 0.25, true));
    }
    ALT_DEPTH.fetch_sub(1, SeqCst);
}

/// A thread whose writes are interrupted, every 50 us, by a handler that
/// writes from an alternate signal stack (sigaltstack, SA_ONSTACK).
fn torture_altstack(n: u64, above: bool) {
    /// An alternate stack mapped above the thread's own stack (where a
    /// handler's frames have higher addresses than the frames it interrupts).
    fn alternate_stack_above() {
        let top = stack_top();
        let len = ALT_STACK;
        for step in 1..4096usize {
            let want = (top + (step << 20)) & !0xfff;
            // SAFETY: a fresh anonymous mapping at a free address (NOREPLACE
            // fails rather than replace anything).
            let p = unsafe {
                libc::mmap(
                    want as *mut libc::c_void,
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
                    -1,
                    0,
                )
            };
            if p != libc::MAP_FAILED {
                let ss = libc::stack_t {
                    ss_sp: p,
                    ss_flags: 0,
                    ss_size: len,
                };
                // SAFETY: registering a live mapping, never unmapped, as this thread's alternate stack.
                unsafe { libc::sigaltstack(&ss, std::ptr::null_mut()) };
                return;
            }
        }
        eprintln!("no room above the thread's stack for an alternate stack");
        std::process::exit(2);
    }
    /// The highest address of this thread's stack.
    fn stack_top() -> usize {
        // SAFETY: reading this thread's own attributes into a zeroed struct.
        unsafe {
            let mut attr: libc::pthread_attr_t = std::mem::zeroed();
            libc::pthread_getattr_np(libc::pthread_self(), &mut attr);
            let (mut addr, mut size) = (std::ptr::null_mut(), 0usize);
            libc::pthread_attr_getstack(&attr, &mut addr, &mut size);
            libc::pthread_attr_destroy(&mut attr);
            addr as usize + size
        }
    }
    fn alternate_stack() {
        // A heap allocation as the alternate stack, leaked: the thread may
        // be interrupted on it until it ends.
        let stack = Box::leak(vec![0u8; ALT_STACK].into_boxed_slice());
        let ss = libc::stack_t {
            ss_sp: stack.as_mut_ptr().cast(),
            ss_flags: 0,
            ss_size: stack.len(),
        };
        // SAFETY: registering a live, leaked buffer as this thread's alternate stack.
        unsafe { libc::sigaltstack(&ss, std::ptr::null_mut()) };
    }
    let setup: fn() = if above { alternate_stack_above } else { alternate_stack };
    let sent = under_signals(n, on_usr2_write, libc::SA_ONSTACK | libc::SA_NODEFER, setup);
    println!(
        "torture {} attempts {} signals {sent}",
        if above { "altstack-above" } else { "altstack" },
        TORTURE_ATTEMPTS.load(std::sync::atomic::Ordering::SeqCst)
    );
}

/// A thread writes `n` ticks (after `setup`) while the main thread sends it
/// SIGUSR2, handled by `handler`, every 50 us. Returns the signals sent.
fn under_signals(n: u64, handler: extern "C" fn(i32), flags: i32, setup: fn()) -> u64 {
    use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
    static DONE: AtomicBool = AtomicBool::new(false);
    // SAFETY: installing a handler for SIGUSR2.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = handler as *const () as usize;
        sa.sa_flags = flags;
        libc::sigaction(libc::SIGUSR2, &sa, std::ptr::null_mut());
    }
    static READY: AtomicBool = AtomicBool::new(false);
    let worker = std::thread::spawn(move || {
        setup();
        READY.store(true, SeqCst);
        for i in 0..n {
            TORTURE_ATTEMPTS.fetch_add(1, SeqCst);
            weft_probe::emit!(TICK(i, 1));
        }
        DONE.store(true, SeqCst);
    });
    use std::os::unix::thread::JoinHandleExt;
    let t = worker.as_pthread_t();
    // Not before `setup`: until it has run, an SA_ONSTACK handler runs on
    // the small alternate stack Rust's runtime gives every thread (for its
    // stack overflow message), and a debug build's write nested there
    // overflowed it (SIGSEGV in about 1 run in 40).
    while !READY.load(SeqCst) {
        std::thread::yield_now();
    }
    let mut sent = 0u64;
    while !DONE.load(SeqCst) {
        // SAFETY: signalling our own live thread (it sets DONE before it ends).
        unsafe { libc::pthread_kill(t, libc::SIGUSR2) };
        sent += 1;
        std::thread::sleep(Duration::from_micros(50));
    }
    let _ = worker.join();
    sent
}

// The handler's context and the other one it switches to (statics: the
// handler cannot allocate).
static mut HANDLER_CTX: std::mem::MaybeUninit<libc::ucontext_t> = std::mem::MaybeUninit::uninit();
static mut OTHER_CTX: std::mem::MaybeUninit<libc::ucontext_t> = std::mem::MaybeUninit::uninit();
static mut OTHER_STACK: [u8; 128 << 10] = [0; 128 << 10];

extern "C" fn other_context() {
    for _ in 0..4 {
        TORTURE_ATTEMPTS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        weft_probe::emit!(NOTE("in another context", 3, 0.75, true));
    }
    // SAFETY: both contexts are statics filled by the handler below.
    unsafe {
        libc::swapcontext(
            std::ptr::addr_of_mut!(OTHER_CTX).cast(),
            std::ptr::addr_of!(HANDLER_CTX).cast(),
        )
    };
}

extern "C" fn on_usr2_swap(_: i32) {
    // SAFETY: one handler at a time uses the statics (SIGUSR2 is blocked
    // while it runs); the other context runs on its own static stack.
    unsafe {
        let other = std::ptr::addr_of_mut!(OTHER_CTX).cast::<libc::ucontext_t>();
        libc::getcontext(other);
        (*other).uc_stack.ss_sp = std::ptr::addr_of_mut!(OTHER_STACK).cast();
        (*other).uc_stack.ss_size = 128 << 10;
        (*other).uc_link = std::ptr::null_mut();
        libc::makecontext(other, other_context, 0);
        libc::swapcontext(std::ptr::addr_of_mut!(HANDLER_CTX).cast(), other);
    }
}

/// A thread whose writes are interrupted, every 50 us, by a handler that
/// switches to another context (swapcontext) on another stack, writes
/// there, and comes back.
fn torture_swapcontext(n: u64) {
    // SIGUSR2 stays blocked while the handler runs: one uses the statics at a time.
    let sent = under_signals(n, on_usr2_swap, 0, || {});
    println!(
        "torture swapcontext attempts {} signals {sent}",
        TORTURE_ATTEMPTS.load(std::sync::atomic::Ordering::SeqCst)
    );
}

/// Three threads writing `n` demo:tick each (thread = 0, 1, 2), beside one
/// that damages its buffers; each returns its tid.
fn undisturbed_threads(n: u64) -> Vec<std::thread::JoinHandle<u32>> {
    (0..3)
        .map(|k| {
            std::thread::spawn(move || {
                for i in 0..n {
                    weft_probe::emit!(TICK(i, k));
                    if i % 64 == 0 {
                        std::thread::yield_now();
                    }
                }
                gettid()
            })
        })
        .collect()
}

/// The damaging thread's writes after the damage (n = 1 000 000 + i,
/// thread 9), slowly enough for the collector to read along.
fn ticks_after_damage(n: u64) {
    for i in 0..n {
        weft_probe::emit!(TICK(1_000_000 + i, 9));
        if i % 64 == 63 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}
