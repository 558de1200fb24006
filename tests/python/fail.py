"""A task that fails (the `fail` guest): ERROR with its message, output ABORTED, and
wait_for_result_availability raises instead of hanging."""

from armonik.common import ResultStatus, Task, TaskStatus

from common import Client, check, done

MESSAGE = "bad input: x < 0"
c = Client()
sid = c.session()
lib = c.upload_component(sid, "fail")
task_id, out = c.submit(sid, lib, [MESSAGE.encode()])[0]
outcome = c.wait(out, sid, timeout=30)
print(f"wait: {outcome}")
check(outcome.startswith("raised") and "aborted" in outcome, f"the wait raises ({outcome})")
task = c.wait_task(task_id, {TaskStatus.ERROR}, timeout=10)
check(task.status == TaskStatus.ERROR, f"the task is ERROR ({task.status!r})")
error = task.output.error if task.output else None
check(error is not None and MESSAGE in error, f"its output carries the message ({error!r})")
status = c.results.get_result(out).status
check(status == ResultStatus.ABORTED, f"its output is ABORTED ({status!r})")
count, _ = c.tasks.list_tasks(Task.session_id == sid)
check(count == 1, f"an error the task returned is not retried ({count} tasks)")
done()
