"""`fanout`: a fan-out / fan-in computing 0² + 1² + ... + (n-1)² with subtasks.

Same payloads and results as the Rust guest `guests/fanout` (UTF-8 text, words separated by
whitespace):

- `fanout <n>` (the root): creates the payloads `part <i>` (results named `part-payload-<i>`)
  and `sum` (`sum-payload`) with `create_results`, the part outputs (`part-output-<i>`) with
  `create_results_metadata`, then submits in one call the n part tasks and one aggregation
  task whose expected output is the root's own: the root delegates its output.
  `fanout <n> fail <k>` makes part k fail.
- `part <i>`: writes the decimal text of i*i; `part <i> fail` fails.
- `sum`: writes the sum of its data dependencies, each a decimal integer.
"""

import re

from armonik_wasm import ArmoniKWasmError, Output, TaskDefinition, TaskHandler, armonik_worker

_UINT = re.compile(r"\+?[0-9]+")


def _uint(text: str) -> int:
    if not _UINT.fullmatch(text):
        raise ValueError("invalid digit found in string")
    return int(text)


def _quote(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    escaped = escaped.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    return f'"{escaped}"'


def first_expected_result(task_handler: TaskHandler) -> str:
    if not task_handler.expected_results:
        raise ArmoniKWasmError("this task has no expected result")
    return task_handler.expected_results[0]


def fan_out(task_handler: TaskHandler, n: int, failing) -> Output:
    output = first_expected_result(task_handler)
    payloads = {
        f"part-payload-{i}": f"part {i}{' fail' if failing == i else ''}".encode() for i in range(n)
    }
    payloads["sum-payload"] = b"sum"
    payloads = task_handler.create_results(payloads)
    outputs = task_handler.create_results_metadata([f"part-output-{i}" for i in range(n)])
    part_outputs = [outputs[f"part-output-{i}"].result_id for i in range(n)]
    tasks = [
        TaskDefinition(
            payload_id=payloads[f"part-payload-{i}"].result_id,
            expected_output_ids=[part_outputs[i]],
        )
        for i in range(n)
    ]
    tasks.append(
        TaskDefinition(
            payload_id=payloads["sum-payload"].result_id,
            expected_output_ids=[output],
            data_dependencies=part_outputs,
        )
    )
    task_handler.submit_tasks(tasks)
    return Output()


@armonik_worker()
def processor(task_handler: TaskHandler) -> Output:
    try:
        payload = task_handler.payload.decode("utf-8")
    except UnicodeDecodeError as error:
        return Output(error=f"invalid utf-8 sequence: {error}")
    words = payload.split()
    try:
        match words:
            case ["fanout", n]:
                return fan_out(task_handler, _uint(n), None)
            case ["fanout", n, "fail", k]:
                return fan_out(task_handler, _uint(n), _uint(k))
            case ["part", i]:
                value = _uint(i) ** 2
            case ["part", i, "fail"]:
                return Output(error=f"part {i} fails on purpose")
            case ["sum"]:
                deps = task_handler.data_dependencies
                value = sum(_uint(deps[d].decode("utf-8").strip()) for d in deps)
            case _:
                return Output(error=f"fanout: unknown payload {_quote(payload)}")
    except ValueError as error:
        return Output(error=str(error))
    task_handler.send_results({first_expected_result(task_handler): str(value).encode()})
    return Output()


Task = processor
