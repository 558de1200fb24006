"""Prices a European call on ArmoniK with the pricer component, through ArmoniK's official
Python client (`pip install armonik`), unchanged whether ArmoniK is a cluster or
`armonik-wasm dev` on this machine.

    python examples/price.py [--endpoint 127.0.0.1:5001] [--component pricer.wasm] [PARAMS]

PARAMS default to `assets=1 paths=1000000 slices=8`. The root task fans out one subtask per
slice and an aggregation task; the price is the aggregation's output.
"""

import argparse
import sys
from datetime import timedelta

import grpc
from armonik.client import ArmoniKEvents, ArmoniKResults, ArmoniKSessions, ArmoniKTasks
from armonik.common import TaskDefinition, TaskOptions


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", default="127.0.0.1:5001")
    parser.add_argument(
        "--component", default="guests/target/wasm32-wasip2/release/pricer.wasm"
    )
    parser.add_argument("params", nargs="*", default=["assets=1", "paths=1000000", "slices=8"])
    args = parser.parse_args()

    channel = grpc.insecure_channel(args.endpoint)
    sessions, results = ArmoniKSessions(channel), ArmoniKResults(channel)
    tasks, events = ArmoniKTasks(channel), ArmoniKEvents(channel)

    options = TaskOptions(max_duration=timedelta(minutes=10), priority=1, max_retries=2)
    session = sessions.create_session(options)
    # Code ships as data: the component is a result of the session, named by the task options
    # of ArmoniK's dynamic workers (subtasks inherit them).
    component = results.create_results_metadata(["pricer.wasm"], session)["pricer.wasm"]
    with open(args.component, "rb") as wasm:
        results.upload_result_data(component.result_id, session, wasm.read())
    payload = results.create_results(
        {"payload": ("price " + " ".join(args.params)).encode()}, session
    )["payload"]
    price = results.create_results_metadata(["price"], session)["price"]
    task_options = TaskOptions(
        max_duration=timedelta(minutes=10),
        priority=1,
        max_retries=2,
        options={"ConventionVersion": "v1", "LibraryBlobId": component.result_id},
    )
    tasks.submit_tasks(
        session,
        [
            TaskDefinition(
                payload_id=payload.result_id,
                expected_output_ids=[price.result_id],
                data_dependencies=[component.result_id],
                options=task_options,
            )
        ],
    )
    try:
        events.wait_for_result_availability(price.result_id, session)
    except RuntimeError as error:
        print(f"the price was not computed: {error}", file=sys.stderr)
        return 1
    print(results.download_result_data(price.result_id, session).decode().strip())
    sessions.close_session(session)
    return 0


if __name__ == "__main__":
    sys.exit(main())
