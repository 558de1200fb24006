"""Throughput of `armonik-wasm dev` as ArmoniK's official Python client sees it (run by
benches/scheduler.rs). Prints one line: `tasks=<n> seconds=<s>`.

    python dev_throughput.py ENDPOINT COMPONENT many N    # N no-op tasks in one submit call
    python dev_throughput.py ENDPOINT COMPONENT fanout N  # one root task fanning out N subtasks

`many` submits N echo tasks of an empty payload in one `submit_tasks` call and waits for
their N outputs through the event stream (`wait_for_result_availability`). `fanout` submits
the fanout guest's root task (`fanout N`: N parts and a sum) and counts the N + 2 completed
tasks through the event stream. The time runs from the submission to the last completion seen.
"""

import sys
import threading
import time
from datetime import timedelta

import grpc
from armonik.client import ArmoniKEvents, ArmoniKResults, ArmoniKSessions, ArmoniKTasks
from armonik.common import TaskDefinition, TaskOptions, TaskStatus
from armonik.common.events import NewTaskEvent, TaskStatusUpdateEvent
from armonik.common.enumwrapper import EventTypes


def main() -> None:
    endpoint, component, mode, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    channel = grpc.insecure_channel(endpoint)
    sessions, results = ArmoniKSessions(channel), ArmoniKResults(channel)
    tasks, events = ArmoniKTasks(channel), ArmoniKEvents(channel)
    session = sessions.create_session(
        TaskOptions(max_duration=timedelta(minutes=10), priority=1, max_retries=1)
    )
    library = results.create_results_metadata(["component"], session)["component"].result_id
    with open(component, "rb") as wasm:
        results.upload_result_data(library, session, wasm.read())
    options = TaskOptions(
        max_duration=timedelta(minutes=10),
        priority=1,
        max_retries=1,
        options={"ConventionVersion": "v1", "LibraryBlobId": library},
    )
    if mode == "many":
        payload = results.create_results({"payload": b""}, session)["payload"].result_id
        names = [f"out-{i}" for i in range(n)]
        created = results.create_results_metadata(names, session, batch_size=n)
        outputs = [created[name].result_id for name in names]
        definitions = [
            TaskDefinition(
                payload_id=payload,
                expected_output_ids=[out],
                data_dependencies=[library],
                options=options,
            )
            for out in outputs
        ]
        started = time.perf_counter()
        tasks.submit_tasks(session, definitions, chunk_size=n)
        events.wait_for_result_availability(outputs, session, bucket_size=n)
        seen = n
    else:
        payload = results.create_results({"payload": f"fanout {n}".encode()}, session)[
            "payload"
        ].result_id
        output = results.create_results_metadata(["output"], session)["output"].result_id
        total = n + 2
        completed = set()
        subscribed = threading.Event()
        done = threading.Event()

        def handler(_session, _kind, event) -> bool:
            subscribed.set()
            if isinstance(event, (NewTaskEvent, TaskStatusUpdateEvent)):
                if event.status == TaskStatus.COMPLETED:
                    completed.add(event.task_id)
            return len(completed) >= total

        def follow() -> None:
            events.get_events(
                session, [EventTypes.NEW_TASK, EventTypes.TASK_STATUS_UPDATE], [handler]
            )
            done.set()

        threading.Thread(target=follow, daemon=True).start()
        time.sleep(0.2)  # the subscription is open (its replay would catch up anyway)
        started = time.perf_counter()
        tasks.submit_tasks(
            session,
            [
                TaskDefinition(
                    payload_id=payload,
                    expected_output_ids=[output],
                    data_dependencies=[library],
                    options=options,
                )
            ],
        )
        if not done.wait(timeout=600):
            sys.exit(f"only {len(completed)} of {total} tasks completed in 600 s")
        seen = len(completed)
    elapsed = time.perf_counter() - started
    print(f"tasks={seen} seconds={elapsed:.3f}")
    sessions.close_session(session)


if __name__ == "__main__":
    main()
