"""`echo`: writes the task's payload, unchanged, to its first expected output.

Payload: any bytes. Same behaviour as the Rust guest `guests/echo`.
"""

from armonik_wasm import Output, TaskHandler, armonik_worker


@armonik_worker()
def processor(task_handler: TaskHandler) -> Output:
    if not task_handler.expected_results:
        return Output(error="this task has no expected result")
    task_handler.send_results({task_handler.expected_results[0]: task_handler.payload})
    return Output()


Task = processor
