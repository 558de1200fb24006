"""`fail`: fails the task, with its payload (UTF-8, invalid sequences replaced) as the error
message. Same behaviour as the Rust guest `guests/fail`.
"""

from armonik_wasm import Output, TaskHandler, armonik_worker


@armonik_worker()
def processor(task_handler: TaskHandler) -> Output:
    return Output(error=task_handler.payload.decode("utf-8", errors="replace"))


Task = processor
