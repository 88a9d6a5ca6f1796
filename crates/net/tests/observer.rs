//! The reply observer: told the source of every reply a trace accepts, on the probing thread.
//! Traces go to loopback only. Needs root (raw sockets), like the rest of the suite.

use edgetrace_net::{Prober, ReplyObserver, Sockets, TraceRequest};
use edgetrace_probe::Options;
use edgetrace_wire::Protocol;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

#[test]
fn the_observer_sees_the_source_of_every_accepted_reply() {
    let seen = Arc::new(Mutex::new(Vec::<(IpAddr, String)>::new()));
    let observer: ReplyObserver = {
        let seen = seen.clone();
        Arc::new(move |ip| {
            let thread = std::thread::current().name().unwrap_or("").to_string();
            seen.lock().unwrap().push((ip, thread));
        })
    };
    let prober = Prober::start_with(Some(Sockets::open().unwrap()), Some(observer)).unwrap();
    for target in ["127.0.0.1", "::1"] {
        let target: IpAddr = target.parse().unwrap();
        let request = TraceRequest {
            protocol: Protocol::Icmp,
            target,
            options: Options::default(),
        };
        let outcome = prober
            .trace(request)
            .unwrap()
            .blocking_recv()
            .unwrap()
            .unwrap();
        let answered = outcome.hops.iter().map(|h| h.received() as usize).sum();
        let mut seen = seen.lock().unwrap();
        // A call per accepted reply, from the probing thread, before the outcome. Probes sent
        // beyond the target's TTL (the window runs ahead) answer too, so there may be more
        // calls than answers in the outcome.
        assert!(seen.len() >= answered, "{target}: {answered} {seen:?}");
        assert!(answered >= 1);
        assert!(
            seen.iter()
                .all(|(ip, thread)| *ip == target && thread == "edgetrace-prober"),
            "{seen:?}"
        );
        seen.clear();
    }
    // The plain constructor still works, without an observer.
    drop(prober);
    Prober::start(None).unwrap();
}
