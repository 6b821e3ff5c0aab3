//! Real plaidhook processes beside a test's `World`, for what only a process can show (a kill,
//! a signal, memory of its own).

use std::process::{Child, Command, Stdio};

use testkit::world::World;

/// A `plaidhook worker` process on `world`'s database, broker namespace and simulator.
pub fn worker_process(world: &World) -> Child {
    Command::new(env!("CARGO_BIN_EXE_plaidhook"))
        .arg("worker")
        .env("PLAIDHOOK_ENVIRONMENT", "test")
        .envs(world.env())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the worker binary starts")
}
