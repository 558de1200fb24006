"""Bad input gets a clear gRPC status, and dev still answers afterwards."""

from datetime import timedelta

import grpc
from armonik.common import ResultStatus, TaskDefinition, TaskOptions, TaskStatus

from common import Client, check, done, grpc_code

c = Client()
sid = c.session()
echo = c.upload_component(sid, "echo")
UNKNOWN = "00000000-0000-0000-0000-000000000000"


def expect(name, call, code):
    got, details = grpc_code(call)
    print(f"{name}: {got} {details!r}")
    check(got == code, f"{name}: {code} (got {got}: {details!r})")
    check(c.sessions.get_session(sid).session_id == sid, f"dev still answers after {name}")


expect("get_session(unknown)", lambda: c.sessions.get_session(UNKNOWN),
       grpc.StatusCode.NOT_FOUND)
expect("cancel_session(unknown)", lambda: c.sessions.cancel_session(UNKNOWN),
       grpc.StatusCode.NOT_FOUND)
expect("get_result(unknown)", lambda: c.results.get_result(UNKNOWN), grpc.StatusCode.NOT_FOUND)
expect("download_result_data(unknown)",
       lambda: c.results.download_result_data(UNKNOWN, sid), grpc.StatusCode.NOT_FOUND)
expect("get_task(unknown)", lambda: c.tasks.get_task(UNKNOWN), grpc.StatusCode.NOT_FOUND)
expect("create_results_metadata(unknown session)",
       lambda: c.results.create_results_metadata(["x"], UNKNOWN), grpc.StatusCode.NOT_FOUND)

# Upload to a completed result.
done_id = c.results.create_results({"done": b"data"}, sid)["done"].result_id
expect("upload_result_data(completed result)",
       lambda: c.results.upload_result_data(done_id, sid, b"again"),
       grpc.StatusCode.FAILED_PRECONDITION)
check(c.results.download_result_data(done_id, sid) == b"data", "the completed result is intact")

# Create a session with priority 0.
expect("create_session(priority=0)",
       lambda: c.sessions.create_session(
           TaskOptions(max_duration=timedelta(seconds=60), priority=0, max_retries=2)),
       grpc.StatusCode.INVALID_ARGUMENT)

# A task whose library blob is not a component.
not_wasm = c.results.create_results({"lib": b"this is not a component"}, sid)["lib"].result_id
task_id, out = c.submit(sid, not_wasm, [b"hello"], max_retries=1)[0]
outcome = c.wait(out, sid, timeout=30)
check(outcome.startswith("raised"), f"not a component: the wait raises ({outcome})")
task = c.wait_task(task_id, {TaskStatus.ERROR}, timeout=10)
error = task.output.error if task.output else ""
print(f"not a component: {task.status!r} {error!r}")
check(task.status == TaskStatus.ERROR, f"not a component: the task is ERROR ({task.status!r})")
check("not a" in error.lower() and "component" in error.lower(),
      f"not a component: its message says so ({error!r})")
check(c.results.get_result(out).status == ResultStatus.ABORTED, "not a component: output ABORTED")

# Submit to a closed session.
closed = c.session()
lib = c.upload_component(closed, "echo")
payload = c.results.create_results({"p": b"late"}, closed)["p"].result_id
output = c.results.create_results_metadata(["o"], closed)["o"].result_id
c.sessions.close_session(closed)
expect("submit_tasks(closed session)",
       lambda: c.tasks.submit_tasks(closed, [TaskDefinition(
           payload_id=payload, expected_output_ids=[output], data_dependencies=[lib],
           options=c.options(lib))]),
       grpc.StatusCode.FAILED_PRECONDITION)

# And everything still works.
_, out = c.submit(sid, echo, [b"still alive"])[0]
check(c.wait(out, sid) == "completed", "a task after all that completes")
check(c.results.download_result_data(out, sid) == b"still alive", "and its output is right")
done()
