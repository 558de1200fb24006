"""Shared by the workflow scripts of tests/dev_python.rs: the official `armonik` client against
`armonik-wasm dev`, and small checks that report every failure (not only the first).

Environment (set by tests/dev_python.rs):
  ARMONIK_ENDPOINT   host:port of `armonik-wasm dev`
  ARMONIK_GUESTS     folder of the guest components (<name>.wasm)
"""

import os
import sys
import threading
import time
from datetime import timedelta

import grpc
from armonik.client import (
    ArmoniKEvents,
    ArmoniKResults,
    ArmoniKSessions,
    ArmoniKTasks,
)
from armonik.common import TaskDefinition, TaskOptions

ENDPOINT = os.environ["ARMONIK_ENDPOINT"]
GUESTS = os.environ["ARMONIK_GUESTS"]

_failures = []


def check(condition, what):
    """Records `what` as passed or failed (printed either way); `done` exits non-zero if any
    failed."""
    if condition:
        print(f"ok: {what}", flush=True)
    else:
        print(f"FAIL: {what}", flush=True)
        _failures.append(what)
    return condition


def done():
    if _failures:
        print(f"{len(_failures)} check(s) failed:", file=sys.stderr)
        for what in _failures:
            print(f"  FAIL: {what}", file=sys.stderr)
        sys.exit(1)
    print("PASS", flush=True)


def grpc_code(call):
    """Runs `call`; returns (the gRPC status code it raised, its details), or (None, its value)."""
    try:
        return None, call()
    except grpc.RpcError as error:
        return error.code(), error.details()


class Client:
    """The four clients of the example in the README, over one channel."""

    def __init__(self):
        self.channel = grpc.insecure_channel(ENDPOINT)
        self.sessions = ArmoniKSessions(self.channel)
        self.results = ArmoniKResults(self.channel)
        self.tasks = ArmoniKTasks(self.channel)
        self.events = ArmoniKEvents(self.channel)

    def session(self, max_retries=2, priority=1, **kwargs):
        return self.sessions.create_session(
            TaskOptions(
                max_duration=timedelta(seconds=60),
                priority=priority,
                max_retries=max_retries,
                **kwargs,
            )
        )

    def upload_component(self, session_id, guest):
        """Uploads guests/<guest>.wasm by streaming (upload_result_data); returns its result id."""
        lib = self.results.create_results_metadata(["component"], session_id)["component"]
        with open(os.path.join(GUESTS, f"{guest}.wasm"), "rb") as wasm:
            self.results.upload_result_data(lib.result_id, session_id, wasm.read())
        return lib.result_id

    @staticmethod
    def options(lib, max_retries=2, max_duration=60, priority=1, **kwargs):
        """Task options selecting the component `lib` (ArmoniK's dynamic-worker convention)."""
        options = {"ConventionVersion": "v1", "LibraryBlobId": lib}
        options.update(kwargs.pop("options", {}))
        return TaskOptions(
            max_duration=timedelta(seconds=max_duration),
            priority=priority,
            max_retries=max_retries,
            options=options,
            **kwargs,
        )

    def submit(self, session_id, lib, payloads, **option_args):
        """Submits one task per payload (bytes), in one submit_tasks call; returns
        [(task id, output id)]."""
        names = [f"payload-{i}" for i in range(len(payloads))]
        created = {}
        # create_results sends one request per result by default: batch them.
        created.update(
            self.results.create_results(
                dict(zip(names, payloads)), session_id, batch_size=100
            )
        )
        outputs = self.results.create_results_metadata(
            [f"output-{i}" for i in range(len(payloads))], session_id
        )
        definitions = [
            TaskDefinition(
                payload_id=created[f"payload-{i}"].result_id,
                expected_output_ids=[outputs[f"output-{i}"].result_id],
                data_dependencies=[lib],
                options=self.options(lib, **option_args),
            )
            for i in range(len(payloads))
        ]
        submitted = self.tasks.submit_tasks(
            session_id, definitions, chunk_size=max(1, len(definitions))
        )
        return [(task.id, task.expected_output_ids[0]) for task in submitted]

    def wait(self, result_id, session_id, timeout=60):
        """wait_for_result_availability in a thread, bounded: returns "completed",
        "raised: <exception>" or "hang"."""
        outcome = ["hang"]

        def waiter():
            try:
                self.events.wait_for_result_availability(result_id, session_id)
                outcome[0] = "completed"
            except Exception as error:  # noqa: BLE001 - any exception is the answer
                outcome[0] = f"raised: {type(error).__name__}: {error}"

        thread = threading.Thread(target=waiter, daemon=True)
        thread.start()
        thread.join(timeout)
        return outcome[0]

    def wait_task(self, task_id, statuses, timeout=60):
        """Polls get_task until its status is one of `statuses`; returns the last task seen."""
        deadline = time.monotonic() + timeout
        while True:
            task = self.tasks.get_task(task_id)
            if task.status in statuses or time.monotonic() > deadline:
                return task
            time.sleep(0.1)
