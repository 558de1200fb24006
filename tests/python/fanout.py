"""A graph with subtasks: `fanout <n>` sums i² for i < n through n + 1 subtasks."""

import sys

from armonik.common import Task, TaskStatus

from common import Client, check, done

n = int(sys.argv[1])
c = Client()
sid = c.session()
lib = c.upload_component(sid, "fanout")
root, out = c.submit(sid, lib, [f"fanout {n}".encode()])[0]
outcome = c.wait(out, sid, timeout=120)
check(outcome == "completed", f"the root's output is available ({outcome})")
total = c.results.download_result_data(out, sid).decode()
expected = sum(i * i for i in range(n))
print(f"sum: {total}")
check(total.strip() == str(expected), f"sum {total!r} == {expected}")
count, tasks = c.tasks.list_tasks(Task.session_id == sid)
check(count == n + 2, f"{count} tasks in the session (root + {n} parts + sum)")
check(all(t.status == TaskStatus.COMPLETED for t in tasks),
      f"all completed: {sorted({t.status.name for t in tasks})}")
children = [t for t in tasks if t.id != root]
check(all(root in (t.parent_task_ids or []) for t in children),
      "every subtask has the root among its parents")
done()
