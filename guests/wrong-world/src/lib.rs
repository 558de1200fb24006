//! `wrong-world`: a valid component that is not an ArmoniK task: it exports a function of
//! its own world and not `armonik:worker/task`. The host must refuse it with a clear message.

#[allow(missing_docs)]
mod bindings {
    wit_bindgen::generate!({
        inline: "
            package test:other;
            world other {
                export answer: func() -> u32;
            }
        ",
    });
}

/// The component.
struct Other;

impl bindings::Guest for Other {
    fn answer() -> u32 {
        42
    }
}

bindings::export!(Other with_types_in bindings);
