"""`concat`: concatenates all the task's data dependencies, in the order the task lists them,
into its first expected output.

Payload: ignored. Same behaviour as the Rust guest `guests/concat`.
"""

from armonik_wasm import Output, TaskHandler, armonik_worker


@armonik_worker()
def processor(task_handler: TaskHandler) -> Output:
    if not task_handler.expected_results:
        return Output(error="this task has no expected result")
    deps = task_handler.data_dependencies
    data = b"".join(deps[result_id] for result_id in deps)
    task_handler.send_results({task_handler.expected_results[0]: data})
    return Output()


Task = processor
