//! Concurrency on one container id (issue 11): parallel creates of one id (exactly one
//! wins, the others say the id exists and touch nothing), and start, kill, delete
//! --force, state and list racing each other (and a create) on one id: no hang, every
//! `state` answer whole JSON with a known status, nothing left after `delete --force`.

mod common;
use common::*;

use std::sync::{Arc, Barrier};
use std::time::Duration;

/// A command that takes longer than this is a hang.
const LIMIT: Duration = Duration::from_secs(20);
const ROUNDS: usize = 6;

fn rt_limited(ctx: &Ctx, args: &[&str]) -> Output {
    ctx.rt_limited(args, LIMIT, |_| {})
}

/// A new id, and config.json naming a cgroupsPath of that id's own (every command on
/// the id shares it).
fn id_with_own_cgroup(ctx: &Ctx, tag: &str) -> String {
    let id = ctx.new_id(tag);
    let mut cfg = ctx.config.clone();
    cfg["linux"]["cgroupsPath"] = serde_json::json!(cgroup_path_for(&id));
    std::fs::write(
        ctx.bundle().join("config.json"),
        serde_json::to_string(&cfg).expect("json"),
    )
    .expect("write config");
    id
}

/// Run every command of `cmds` at once (each in its own thread, released together).
fn race(ctx: &Arc<Ctx>, cmds: Vec<Vec<String>>) -> Vec<(Vec<String>, Output)> {
    let barrier = Arc::new(Barrier::new(cmds.len()));
    let threads: Vec<_> = cmds
        .into_iter()
        .map(|cmd| {
            let ctx = Arc::clone(ctx);
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                let args: Vec<&str> = cmd.iter().map(String::as_str).collect();
                barrier.wait();
                let o = rt_limited(&ctx, &args);
                (cmd, o)
            })
        })
        .collect();
    threads
        .into_iter()
        .map(|t| t.join().expect("a racing command panicked (hang?)"))
        .collect()
}

fn cmd(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// A `state` answer is an error or whole JSON with one of the statuses.
#[track_caller]
fn check_state_answer(o: &Output) {
    if !o.success() {
        return;
    }
    let v: serde_json::Value =
        serde_json::from_str(&o.stdout).unwrap_or_else(|e| panic!("state not JSON ({e}): {o}"));
    let s = v["status"].as_str().unwrap_or("");
    assert!(
        ["creating", "created", "running", "stopped", "paused"].contains(&s),
        "state status {s:?}: {o}"
    );
}

#[test]
fn parallel_creates_of_one_id_exactly_one_wins() {
    let mut ctx = Ctx::new("pcreate");
    ctx.args(&["sleep", "1000"]);
    ctx.write_config();
    let ctx = Arc::new(ctx);
    let b = ctx.bundle().to_string_lossy().into_owned();
    for _ in 0..ROUNDS {
        // All of one id share its cgroupsPath: the losers must not touch it.
        let id = id_with_own_cgroup(&ctx, "pcreate");
        let outs = race(
            &ctx,
            (0..6)
                .map(|_| cmd(&["create", "--bundle", &b, &id]))
                .collect(),
        );
        let winners = outs.iter().filter(|(_, o)| o.success()).count();
        assert_eq!(winners, 1, "creates of one id: {outs:#?}");
        for (_, o) in outs.iter().filter(|(_, o)| !o.success()) {
            o.fails_with_any(&["exists"]);
        }
        let st = rt_limited(&ctx, &["state", &id]);
        st.ok();
        assert!(st.stdout.contains("\"created\""), "{st}");
        rt_limited(&ctx, &["delete", "--force", &id]).ok();
        ctx.assert_nothing_left(&id);
    }
}

#[test]
fn lifecycle_commands_racing_on_one_id() {
    let mut ctx = Ctx::new("prace");
    ctx.args(&["sleep", "1000"]);
    ctx.write_config();
    let ctx = Arc::new(ctx);
    let b = ctx.bundle().to_string_lossy().into_owned();
    for round in 0..ROUNDS {
        let id = id_with_own_cgroup(&ctx, "prace");
        // Odd rounds race a create too (delete --force may meet it half way).
        if round % 2 == 0 {
            rt_limited(&ctx, &["create", "--bundle", &b, &id]).ok();
        }
        let mut cmds = vec![
            cmd(&["start", &id]),
            cmd(&["kill", &id, "KILL"]),
            cmd(&["delete", "--force", &id]),
            cmd(&["state", &id]),
            cmd(&["state", &id]),
            cmd(&["list"]),
        ];
        if round % 2 == 1 {
            cmds.push(cmd(&["create", "--bundle", &b, &id]));
        }
        for (c, o) in race(&ctx, cmds) {
            match c[0].as_str() {
                "state" => check_state_answer(&o),
                "list" => {
                    o.ok();
                }
                _ => {}
            }
        }
        // Whatever won, the id is left in a state that one delete --force clears.
        let st = rt_limited(&ctx, &["state", &id]);
        check_state_answer(&st);
        rt_limited(&ctx, &["delete", "--force", &id]).ok();
        ctx.assert_nothing_left(&id);
    }
}
