"""The echo component uploaded by streaming, then payloads of the sizes given (bytes) echoed
byte-exact. Payloads up to 1 MiB travel in create_results, larger ones by upload_result_data."""

import sys

from armonik.common import ResultStatus, TaskDefinition

from common import Client, check, done

c = Client()
sid = c.session()
lib = c.upload_component(sid, "echo")
check(c.results.get_result(lib).status == ResultStatus.COMPLETED, "the component is COMPLETED")
for size in map(int, sys.argv[1:]):
    payload = bytes((i * 7 + size) % 251 for i in range(min(size, 1 << 20)))
    payload = (payload * (size // max(len(payload), 1) + 1))[:size]
    if size <= 1 << 20:
        task_id, out = c.submit(sid, lib, [payload])[0]
    else:
        pid = c.results.create_results_metadata(["payload"], sid)["payload"].result_id
        c.results.upload_result_data(pid, sid, payload)
        out = c.results.create_results_metadata(["output"], sid)["output"].result_id
        c.tasks.submit_tasks(
            sid,
            [
                TaskDefinition(
                    payload_id=pid,
                    expected_output_ids=[out],
                    data_dependencies=[lib],
                    options=c.options(lib),
                )
            ],
        )
    outcome = c.wait(out, sid, timeout=120)
    check(outcome == "completed", f"{size} B: the output is available ({outcome})")
    data = c.results.download_result_data(out, sid)
    check(len(data) == size, f"{size} B: downloaded {len(data)} B")
    check(data == payload, f"{size} B: byte-exact")
    check(c.results.get_result(out).size == size, f"{size} B: the result's size")
    print(f"echoed {size}")
done()
