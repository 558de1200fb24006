"""Cancelling a session with a running task (hostile `sleep`): the task ends CANCELLED, its
output ABORTED, the session CANCELLED, and the waiting client's wait raises."""

import threading

from armonik.common import ResultStatus, SessionStatus, TaskStatus

from common import Client, check, done

c = Client()
sid = c.session()
lib = c.upload_component(sid, "hostile")
task_id, out = c.submit(sid, lib, [b"sleep 60000"], max_duration=120)[0]
task = c.wait_task(task_id, {TaskStatus.PROCESSING}, timeout=30)
check(task.status == TaskStatus.PROCESSING, f"the task is PROCESSING ({task.status!r})")

waited = {}
waiter = threading.Thread(target=lambda: waited.update(outcome=c.wait(out, sid, timeout=30)))
waiter.start()
session = c.sessions.cancel_session(sid)
print(f"cancel_session answered: {session.status!r}")
task = c.wait_task(task_id, {TaskStatus.CANCELLED}, timeout=15)
check(task.status == TaskStatus.CANCELLED, f"the task ends CANCELLED ({task.status!r})")
status = c.results.get_result(out).status
check(status == ResultStatus.ABORTED, f"its output is ABORTED ({status!r})")
status = c.sessions.get_session(sid).status
check(status == SessionStatus.CANCELLED, f"the session is CANCELLED ({status!r})")
waiter.join(35)
outcome = waited.get("outcome", "hang")
print(f"wait: {outcome}")
check(outcome.startswith("raised"), f"the waiting client's wait raises ({outcome})")
done()
