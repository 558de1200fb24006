"""Listing and counting tasks with the client's filter helpers, sorting and paging."""

import time
from datetime import datetime, timedelta, timezone

from armonik.common import (
    Direction, Result, ResultStatus, Session, SessionStatus, Task, TaskStatus,
)

from common import Client, check, done

c = Client()
sid = c.session()
other = c.session()  # its tasks must never show up in this session's lists
echo = c.upload_component(sid, "echo")
fail = c.upload_component(sid, "fail")
c.submit(other, c.upload_component(other, "echo"), [b"elsewhere"])

a = c.submit(sid, echo, [b"a0", b"a1", b"a2"], options={"Kind": "a"})
time.sleep(0.05)
before_b = datetime.now(timezone.utc)
time.sleep(0.05)
b = c.submit(sid, echo, [b"b0", b"b1"], options={"Kind": "b"}, priority=2)
f = c.submit(sid, fail, [b"failing on purpose"], options={"Kind": "f"})
everything = a + b + f
c.wait([out for _, out in a + b], sid, timeout=60)
c.wait_task(f[0][0], {TaskStatus.ERROR}, timeout=30)
ids = lambda tasks: sorted(t.id for t in tasks)  # noqa: E731
in_session = Task.session_id == sid


def listed(name, task_filter, expected, **kwargs):
    total, tasks = c.tasks.list_tasks(task_filter, **kwargs)
    check(total == len(expected) and ids(tasks) == sorted(expected),
          f"{name}: {total} tasks, expected {len(expected)}")
    return tasks


listed("session_id ==", in_session, [t for t, _ in everything])
listed("status == COMPLETED", in_session & (Task.status == TaskStatus.COMPLETED),
       [t for t, _ in a + b])
listed("status == ERROR", in_session & (Task.status == TaskStatus.ERROR), [f[0][0]])
listed("task_id ==", Task.id == a[1][0], [a[1][0]])
listed("options[Kind] == a", in_session & (Task.options["Kind"] == "a"), [t for t, _ in a])
listed("Kind == a | Kind == b", in_session & ((Task.options["Kind"] == "a")
                                              | (Task.options["Kind"] == "b")),
       [t for t, _ in a + b])
listed("options.priority == 2", in_session & (Task.options.priority == 2), [t for t, _ in b])
listed("options.max_retries == 2", in_session & (Task.options.max_retries == 2),
       [t for t, _ in everything])
listed("created_at > before b", in_session & (Task.created_at > before_b),
       [t for t, _ in b + f])
listed("created_at < before b", in_session & (Task.created_at < before_b), [t for t, _ in a])
listed("created_at > tomorrow",
       in_session & (Task.created_at > datetime.now(timezone.utc) + timedelta(days=1)), [])
listed("output.error != ''", in_session & (Task.output.error != ""), [f[0][0]])

# Sorting and paging.
ab = in_session & ((Task.options["Kind"] == "a") | (Task.options["Kind"] == "b"))
_, up = c.tasks.list_tasks(ab, sort_field=Task.id, sort_direction=Direction.ASC)
_, down = c.tasks.list_tasks(ab, sort_field=Task.id, sort_direction=Direction.DESC)
check([t.id for t in up] == sorted(t for t, _ in a + b), "sorted by id, ascending")
check([t.id for t in down] == sorted((t for t, _ in a + b), reverse=True),
      "sorted by id, descending")
_, by_time = c.tasks.list_tasks(ab, sort_field=Task.created_at, sort_direction=Direction.DESC)
check({t.id for t in by_time[:2]} == {t for t, _ in b}, "sorted by created_at, descending")
total0, page0 = c.tasks.list_tasks(ab, page=0, page_size=2, sort_field=Task.id)
total1, page1 = c.tasks.list_tasks(ab, page=1, page_size=2, sort_field=Task.id)
total2, page2 = c.tasks.list_tasks(ab, page=2, page_size=2, sort_field=Task.id)
total3, page3 = c.tasks.list_tasks(ab, page=3, page_size=2, sort_field=Task.id)
check((total0, total1, total2, total3) == (5, 5, 5, 5),
      f"the total counts every page: {(total0, total1, total2, total3)}")
check([t.id for t in page0 + page1 + page2] == [t.id for t in up],
      f"pages 0, 1, 2 of size 2: {len(page0)}, {len(page1)}, {len(page2)}, past the end "
      f"{len(page3)}")
check(len(page3) == 0, "a page past the end is empty")
_, summaries = c.tasks.list_tasks(ab, page_size=2, detailed=False)
check(len(summaries) == 2, "ListTasks (not detailed) pages too")

counts = c.tasks.count_tasks_by_status(in_session)
check(counts == {TaskStatus.COMPLETED: 5, TaskStatus.ERROR: 1},
      f"count_tasks_by_status: {dict((s.name, k) for s, k in counts.items())}")
counts = c.tasks.count_tasks_by_status(in_session & (Task.options["Kind"] == "b"))
check(counts == {TaskStatus.COMPLETED: 2},
      f"count_tasks_by_status, Kind == b: {dict((s.name, k) for s, k in counts.items())}")

# Results and sessions.
total, _ = c.results.list_results((Result.session_id == sid)
                                  & (Result.status == ResultStatus.ABORTED))
check(total == 1, f"results ABORTED in the session: {total}")
total, results = c.results.list_results((Result.session_id == sid) & (Result.name == "output-0"))
check(total == 3, f"results named output-0 in the session: {total}")
total, sessions = c.sessions.list_sessions((Session.session_id == sid)
                                           | (Session.session_id == other))
check(total == 2 and {s.session_id for s in sessions} == {sid, other},
      f"sessions id == a | id == b: {total}")
c.sessions.cancel_session(other)
total, sessions = c.sessions.list_sessions(Session.status == SessionStatus.CANCELLED)
check(other in {s.session_id for s in sessions} and sid not in {s.session_id for s in sessions},
      "sessions status == CANCELLED")
done()
