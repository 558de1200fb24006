"""A trapping task with max_retries=2: three attempts (<id>, <id>###1, <id>###2), RETRIED,
RETRIED, ERROR, and its output aborted."""

import sys

from armonik.common import Direction, ResultStatus, Task, TaskStatus

from common import Client, check, done

mode = sys.argv[1]
c = Client()
sid = c.session()
lib = c.upload_component(sid, "hostile")
task_id, out = c.submit(sid, lib, [mode.encode()], max_retries=2)[0]
outcome = c.wait(out, sid, timeout=60)
print(f"wait: {outcome}")
check(outcome.startswith("raised"), f"the wait raises ({outcome})")
status = c.results.get_result(out).status
check(status == ResultStatus.ABORTED, f"the output is ABORTED ({status!r})")
last = c.wait_task(f"{task_id}###2", {TaskStatus.ERROR}, timeout=10)
count, tasks = c.tasks.list_tasks(Task.session_id == sid, with_errors=True,
                                  sort_field=Task.created_at, sort_direction=Direction.ASC)
attempts = [(t.id, t.status.name) for t in tasks]
print(f"attempts: {attempts}")
check(attempts == [(task_id, "RETRIED"), (f"{task_id}###1", "RETRIED"),
                   (f"{task_id}###2", "ERROR")], f"three attempts: {attempts}")
check(all(t.output and t.output.error for t in tasks),
      f"each attempt has an error: {[t.output.error if t.output else None for t in tasks]}")
check(tasks[-1:] and tasks[-1].retry_of_ids == [task_id, f"{task_id}###1"]
      if len(tasks) == 3 else False, f"retry_of_ids of the last: "
      f"{tasks[-1].retry_of_ids if tasks else None}")
done()
