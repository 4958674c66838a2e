//! Test guest (answers the gateway's test call, misbehaves on buckets
//! named `hostile*`): asks the host's clock to wait an hour and blocks on
//! it. The wait is a host call, out of the epoch interrupt's reach: the
//! host must refuse it.
#![no_std]
kms_gateway_policy::key_selector!(Policy);
use api::{Decision, Guest, Request};

mod clock {
    wit_bindgen::generate!({
        inline: r#"
            package hostile:sleeps;

            world sleeper {
                import wasi:clocks/monotonic-clock@0.2.0;
            }

            package wasi:io@0.2.0 {
                interface poll {
                    resource pollable {
                        block: func();
                    }
                }
            }
            package wasi:clocks@0.2.0 {
                interface monotonic-clock {
                    use wasi:io/poll@0.2.0.{pollable};
                    type duration = u64;
                    subscribe-duration: func(when: duration) -> pollable;
                }
            }
        "#,
        world: "hostile:sleeps/sleeper",
        generate_all,
    });
}

struct Policy;

impl Guest for Policy {
    fn select(req: Request) -> Decision {
        if req.bucket.starts_with("hostile") {
            clock::wasi::clocks::monotonic_clock::subscribe_duration(3_600_000_000_000).block();
        }
        Decision::Keep
    }
}
