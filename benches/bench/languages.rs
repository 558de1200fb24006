//! Benchmark 8: Python and JavaScript guests against ArmoniK's Python SDK worker.

use super::*;

/// 8. Languages (issue 14, targets 1 to 3): the Python and JavaScript echo guests under
///    `armonik-wasm serve` against ArmoniK's official Python SDK worker doing the same echo
///    (`benches/python_sdk_worker.py`), all three under the same driver and fake agent,
///    alternating; then each guest's per-task start, in-process.
pub(super) async fn languages(sizes: &Sizes, one_gib: bool) -> anyhow::Result<()> {
    println!(
        "\n8. languages: Python and JavaScript guests under `serve` against ArmoniK's Python SDK \
         worker, echo task"
    );
    let python = match find_python() {
        Ok(python) => python,
        Err(error) => {
            println!(
                "  skipped: no Python SDK worker to compare with: {}",
                error.lines().next().unwrap_or_default()
            );
            return Ok(());
        }
    };
    let agent = FakeAgent::start();
    let agent_socket = unix_socket(&agent)?;
    let script = repo_dir().join("benches").join("python_sdk_worker.py");
    // Configured as the polling agent configures a worker: ArmoniK's variables.
    let sdk = BaselineWorker::start("the Python SDK worker", |socket| {
        let mut command = Command::new(&python);
        command
            .arg(&script)
            .env("ComputePlane__WorkerChannel__Address", socket)
            .env(
                "ComputePlane__WorkerChannel__SocketType",
                "unixdomainsocket",
            )
            .env("ComputePlane__AgentChannel__Address", &agent_socket)
            .env("ComputePlane__AgentChannel__SocketType", "unixdomainsocket");
        command
    })
    .await?;
    let mut guests = Vec::new();
    for lang in [Lang::Python, Lang::Js] {
        match polyglot::try_component(lang, "echo") {
            Ok(wasm) => {
                // The shared cache holds the component compiled by `try_component`; warn
                // level, as in benchmark 1 (the SDK worker logs nothing per task either).
                let worker = Worker::spawn_custom(
                    &wasm,
                    &agent,
                    Transport::Unix,
                    &["--cache-dir", path(&cache_dir())],
                    &[("RUST_LOG", "warn")],
                )
                .await;
                let client = worker.client().await;
                guests.push((lang, worker, client));
            }
            Err(error) => println!(
                "  skipped: the {} guest: {}",
                lang.name(),
                error.lines().next().unwrap_or_default()
            ),
        }
    }
    let mut names = vec!["Python SDK worker".to_owned()];
    names.extend(
        guests
            .iter()
            .map(|(lang, ..)| format!("armonik-wasm ({} guest)", lang.name())),
    );
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut clients = vec![&sdk.client];
    clients.extend(guests.iter().map(|(_, _, client)| client));
    for (name, client) in names.iter().zip(&clients) {
        check_echo(name, client, &agent).await?;
    }
    drive(&clients, &agent, 20, b"", false).await;

    println!(
        "  no-op task (empty payload; its output written and notified), {} tasks each:",
        sizes.language_tasks
    );
    let results = drive(&clients, &agent, sizes.language_tasks, b"", false).await;
    let latencies: Vec<[Duration; 3]> = names
        .iter()
        .zip(results)
        .map(|(name, (mut samples, total))| print_latencies(name, &mut samples, total))
        .collect();
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
    for (name, [p50, p90, _]) in names.iter().zip(&latencies).skip(1) {
        println!(
            "  ratio {name} / Python SDK worker: p50 {:.2}x  p90 {:.2}x  (issue 14: p50 <= 1.0x)",
            ratio(*p50, latencies[0][0]),
            ratio(*p90, latencies[0][1])
        );
    }

    let large = [(sizes.language_echo_bytes, sizes.language_echo_rounds)];
    let huge = one_gib.then_some((1 << 30, sizes.echo_rounds));
    for (bytes, rounds) in large.into_iter().chain(huge) {
        let mib = bytes as f64 / (1 << 20) as f64;
        println!("  echo of {mib:.0} MiB, each round from a written-back page cache:");
        let payload: Vec<u8> = (0..bytes).map(|i| (i % 251) as u8).collect();
        // A first round, not measured: it warms the workers up to buffers of this size, and
        // a worker that cannot echo this much (a guest past its memory limit) is said and
        // left out of the rounds.
        let mut able = Vec::new();
        for (name, client) in names.iter().zip(&clients) {
            let (_, result, _) = echo_task(client, &agent, &payload, false).await;
            agent.clear_records();
            match result {
                Ok(Output::Ok) => able.push((*name, *client)),
                Ok(Output::Error { details: why }) => println!("  skipped: {name}: {why}"),
                Err(status) => println!(
                    "  skipped: {name}: {}",
                    status.message().lines().next().unwrap_or_default()
                ),
            }
        }
        if able.first().map(|(name, _)| *name) != names.first().copied() {
            continue;
        }
        let (able_names, able_clients): (Vec<&str>, Vec<&WorkerClient>) = able.into_iter().unzip();
        let results = drive(&able_clients, &agent, rounds, &payload, true).await;
        let rates = print_rates(&able_names, results, mib);
        for (name, (best, median)) in able_names.iter().zip(&rates).skip(1) {
            println!(
                "  ratio {name} / Python SDK worker throughput: best {:.2}x  median {:.2}x  \
                 (issue 14: >= 1.0x)",
                best / rates[0].0,
                median / rates[0].1
            );
        }
    }
    // The workers are idle from here on; stopped so that they take nothing from what follows.
    drop((guests, sdk));

    println!(
        "  per-task start in the sandbox (pooling, p50 of {}; the `fail` guest: reads its empty \
         payload, returns an error, no agent call): store + instance, back to back; then, \
         {} ms apart as ArmoniK sends tasks, the task with its instance made with it and the \
         task with its instance made ahead, on a guest thread as `serve` runs it (issue 14: <= \
         100 µs)",
        sizes.language_tasks,
        BETWEEN_TASKS.as_millis()
    );
    let context = TaskContext {
        session_id: "session".into(),
        task_id: "task".into(),
        options: task_options_to_wit(&TaskOptions::default()),
        payload_id: "payload".into(),
        data_dependencies: Vec::new(),
        expected_output_ids: vec!["output".into()],
        data_folder: "/data".into(),
        data_chunk_max_size: 1 << 20,
    };
    let n = sizes.language_tasks;
    // Rust first, for reference: what the sandbox costs a guest with next to no runtime.
    let mut guests = vec![("Rust", Ok(guest("fail")))];
    guests.extend([Lang::Python, Lang::Js].map(|lang| {
        let fail = polyglot::try_component(lang, "fail");
        (lang.name(), fail)
    }));
    for (name, fail) in guests {
        let Ok(fail) = fail else { continue };
        let (mut samples, elapsed) = task_starts(true, &fail, n, None, Duration::ZERO).await?;
        print_latencies(&format!("{name}: store + instance"), &mut samples, elapsed);
        let (mut samples, elapsed) =
            task_starts(true, &fail, n, Some(&context), BETWEEN_TASKS).await?;
        print_latencies(
            &format!("{name}: made with the task"),
            &mut samples,
            elapsed,
        );
        let (mut samples, busy, faults, cpu) = made_ahead_starts(&fail, n, &context).await?;
        print_latencies(&format!("{name}: made ahead"), &mut samples, busy);
        println!(
            "  {name}: made ahead: {faults} page faults per task; CPU per task, with the reset \
             and the making between tasks: {:.0} µs",
            micros(cpu)
        );
    }
    Ok(())
}
