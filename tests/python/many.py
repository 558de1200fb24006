"""Many echo tasks in one submit_tasks call: all outputs completed and right."""

import sys

from armonik.common import Result, ResultStatus, Task, TaskStatus

from common import Client, check, done

n = int(sys.argv[1])
c = Client()
sid = c.session()
lib = c.upload_component(sid, "echo")
payloads = [f"task {i}".encode() for i in range(n)]
submitted = c.submit(sid, lib, payloads)
check(len(submitted) == n, f"{len(submitted)} tasks submitted in one call")
outs = [out for _, out in submitted]
outcome = c.wait(outs, sid, timeout=300)
check(outcome == "completed", f"all outputs available ({outcome})")
wrong = [i for i, out in enumerate(outs) if c.results.download_result_data(out, sid) != payloads[i]]
check(not wrong, f"every output is its payload (wrong: {wrong[:10]})")
counts = c.tasks.count_tasks_by_status(Task.session_id == sid)
print(f"counts: {dict((s.name, k) for s, k in counts.items())}")
check(counts == {TaskStatus.COMPLETED: n}, f"{n} COMPLETED")
total, _ = c.results.list_results(
    (Result.session_id == sid) & (Result.status == ResultStatus.COMPLETED), page_size=1
)
check(total == 2 * n + 1, f"{total} completed results (payloads, outputs, component)")
done()
