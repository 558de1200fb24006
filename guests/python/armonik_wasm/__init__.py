"""Write ArmoniK tasks in Python, as WebAssembly components run by armonik-wasm.

The API mirrors the worker side of ArmoniK's official Python SDK (``armonik.worker.TaskHandler``,
``armonik.common.TaskOptions``, ``TaskDefinition`` and ``Output``), so task code moves between
the two with few changes::

    from armonik_wasm import Output, TaskHandler, armonik_worker

    @armonik_worker()
    def processor(task_handler: TaskHandler) -> Output:
        payload = task_handler.payload
        task_handler.send_results({task_handler.expected_results[0]: payload})
        return Output()

    Task = processor  # componentize-py exports the class named `Task`

Build the module with ``componentize-py -d wit -w armonik:worker/worker componentize <module>
-p <dir of the module> -p guests/python -o task.wasm`` (see ``guests/python/build.sh``).

Data flows through files: the payload and the data dependencies are files named after their
result ids in the data folder (``/data``); ``send_results`` writes ``<data folder>/<id>`` and
notifies the agent. Files up to 256 MiB are read and written whole in one host call (the
world's ``data-folder`` interface), larger ones through WASI. What a task creates, notifies or submits takes effect only if it succeeds.

Outcomes: returning ``Output()`` (or ``None``) completes the task; ``Output(error=...)`` fails it
for good with that message, and so does an error of this module's agent calls
(:class:`ArmoniKWasmError`); any other exception traps, and ArmoniK retries the task up to its
``max_retries``, as it does when an SDK worker raises.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Callable, Dict, Iterator, List, Optional

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import agent
from wit_world.imports import armonik_worker_types as wit
from wit_world.imports import data_folder

__all__ = [
    "AgentError",
    "ArmoniKWasmError",
    "Output",
    "ResultMetadata",
    "ResultStatus",
    "SubmittedTask",
    "TaskDefinition",
    "TaskHandler",
    "TaskOptions",
    "armonik_worker",
]

#: A result as the agent created it: ``session_id``, ``result_id``, ``name``, ``status``,
#: ``created_at_unix_ms``.
ResultMetadata = wit.ResultMetadata
#: Lifecycle of a result (``ResultStatus.CREATED``...).
ResultStatus = wit.ResultStatus
#: A task the agent accepted: ``task_id``, ``payload_id``, ``data_dependencies``,
#: ``expected_output_ids``.
SubmittedTask = wit.SubmittedTask

_AGENT_ERROR_KINDS = {
    wit.AgentError_InvalidArgument: "invalid-argument",
    wit.AgentError_NotFound: "not-found",
    wit.AgentError_Unavailable: "unavailable",
    wit.AgentError_DeadlineExceeded: "deadline-exceeded",
    wit.AgentError_Internal: "internal",
}


#: Files up to this size go through one ``data-folder`` call each, read or written whole;
#: larger ones through WASI a part at a time, so that a task never holds two copies of them.
_WHOLE_FILE_MAX = 256 << 20


class ArmoniKWasmError(Exception):
    """A failure of this module's operations; raised out of a task, it fails the task for good
    with ``str(error)`` as its message."""


class AgentError(ArmoniKWasmError):
    """An agent call failed. ``call`` is its WIT name (``submit-tasks``...), ``kind`` one of
    ``invalid-argument``, ``not-found``, ``unavailable``, ``deadline-exceeded``, ``internal``."""

    def __init__(self, call: str, kind: str, message: str):
        super().__init__(f"agent call {call} failed: {kind}: {message}")
        self.call = call
        self.kind = kind
        self.message = message


@dataclass
class TaskOptions:
    """Options of a task (ArmoniK ``TaskOptions``). Fields left ``None`` (or 0) take the
    session's defaults when submitted."""

    max_duration: Optional[timedelta] = None
    priority: int = 0
    max_retries: int = 0
    partition_id: Optional[str] = None
    application_name: Optional[str] = None
    application_version: Optional[str] = None
    application_namespace: Optional[str] = None
    application_service: Optional[str] = None
    engine_type: Optional[str] = None
    options: Dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_wit(cls, o: wit.TaskOptions) -> "TaskOptions":
        return cls(
            max_duration=None
            if o.max_duration_ms is None
            else timedelta(milliseconds=o.max_duration_ms),
            priority=o.priority,
            max_retries=o.max_retries,
            partition_id=o.partition_id,
            application_name=o.application_name,
            application_version=o.application_version,
            application_namespace=o.application_namespace,
            application_service=o.application_service,
            engine_type=o.engine_type,
            options=dict(o.options),
        )

    def to_wit(self) -> wit.TaskOptions:
        duration = self.max_duration
        return wit.TaskOptions(
            options=list(self.options.items()),
            max_duration_ms=None if duration is None else int(duration / timedelta(milliseconds=1)),
            max_retries=self.max_retries,
            priority=self.priority,
            partition_id=self.partition_id or "",
            application_name=self.application_name or "",
            application_version=self.application_version or "",
            application_namespace=self.application_namespace or "",
            application_service=self.application_service or "",
            engine_type=self.engine_type or "",
        )


@dataclass
class TaskDefinition:
    """A task to submit over existing results (as ``armonik.common.TaskDefinition``)."""

    payload_id: str = ""
    expected_output_ids: List[str] = field(default_factory=list)
    data_dependencies: List[str] = field(default_factory=list)
    options: Optional[TaskOptions] = None

    def __post_init__(self):
        if len(self.expected_output_ids) <= 0:
            raise ValueError("expected_output_ids must not be empty")

    def to_wit(self) -> wit.TaskDefinition:
        return wit.TaskDefinition(
            payload_id=self.payload_id,
            data_dependencies=list(self.data_dependencies),
            expected_output_ids=list(self.expected_output_ids),
            options=None if self.options is None else self.options.to_wit(),
        )


@dataclass
class Output:
    """What a task returns: ``Output()`` completes it, ``Output(error=...)`` fails it."""

    error: Optional[str] = None

    @property
    def success(self) -> bool:
        return self.error is None


def _check_id(result_id: str) -> str:
    if result_id in ("", ".", "..") or any(c in result_id for c in "/\\\0"):
        raise ArmoniKWasmError(f"{result_id!r} is not a valid result id (a file name)")
    return result_id


def _call(name: str, function, *args):
    try:
        return function(*args)
    except Err as error:
        kind = _AGENT_ERROR_KINDS.get(type(error.value), "internal")
        raise AgentError(name, kind, getattr(error.value, "value", str(error.value))) from None


class _DataDependencies(Mapping):
    """The task's data dependencies, id -> bytes, each file read on first access."""

    def __init__(self, handler: "TaskHandler", ids: List[str]):
        self._handler = handler
        self._ids = list(ids)
        # Membership in O(1): a fan-in task reads thousands of dependencies.
        self._known = frozenset(self._ids)
        self._cache: Dict[str, bytes] = {}

    def __getitem__(self, result_id: str) -> bytes:
        if result_id not in self._known:
            raise KeyError(result_id)
        if result_id not in self._cache:
            self._cache[result_id] = self._handler._read(result_id)
        return self._cache[result_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids)

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, result_id) -> bool:
        return result_id in self._known


class TaskHandler:
    """What a task is given: its ids, options and data, and the ArmoniK Agent's operations
    (as ``armonik.worker.TaskHandler``; the host adds the communication token itself)."""

    def __init__(self, ctx: wit.TaskContext):
        self.session_id: str = ctx.session_id
        self.task_id: str = ctx.task_id
        self.task_options: TaskOptions = TaskOptions.from_wit(ctx.options)
        self.expected_results: List[str] = list(ctx.expected_output_ids)
        self.payload_id: str = ctx.payload_id
        self.data_folder: str = ctx.data_folder
        self.data_chunk_max_size: int = ctx.data_chunk_max_size
        #: Data dependency id -> bytes, in the order the task lists them; read lazily.
        self.data_dependencies: Mapping = _DataDependencies(self, ctx.data_dependencies)
        self._payload: Optional[bytes] = None

    @property
    def payload(self) -> bytes:
        """The task's payload (read on first access)."""
        if self._payload is None:
            self._payload = self._read(self.payload_id)
        return self._payload

    def path_of(self, result_id: str) -> str:
        """The file of result ``result_id`` in the data folder, to stream large data."""
        return os.path.join(self.data_folder, _check_id(result_id))

    def send_results(self, results_data: Dict[str, bytes]) -> None:
        """Writes each result's file (replacing any file there), then notifies them all in one
        call. The files must stay unchanged until the task returns."""
        for result_id, data in results_data.items():
            self._write(result_id, data)
        if results_data:
            self.notify_result_data(list(results_data.keys()))

    def notify_result_data(self, result_ids: List[str]) -> List[str]:
        """Declares results whose files were written in the data folder as complete."""
        return _call("notify-result-data", agent.notify_result_data, list(result_ids))

    def create_results_metadata(self, result_names: List[str]) -> Dict[str, ResultMetadata]:
        """Creates results without data, one per name: name -> result (``.result_id``)."""
        created = _call("create-results-metadata", agent.create_results_metadata, list(result_names))
        return {r.name: r for r in created}

    def create_results(self, results_data: Dict[str, bytes]) -> Dict[str, ResultMetadata]:
        """Creates results with their data (bytes, or str sent as UTF-8; at most 4 MiB in all):
        name -> result."""
        items = [
            (name, data.encode() if isinstance(data, str) else bytes(data))
            for name, data in results_data.items()
        ]
        created = _call("create-results", agent.create_results, items)
        return {r.name: r for r in created}

    def submit_tasks(
        self,
        tasks: List[TaskDefinition],
        default_task_options: Optional[TaskOptions] = None,
    ) -> List[SubmittedTask]:
        """Submits subtasks over existing results; ``default_task_options`` fill the fields a
        task leaves empty. Listing one of this task's expected results as a subtask's output
        delegates it."""
        defaults = None if default_task_options is None else default_task_options.to_wit()
        return _call("submit-tasks", agent.submit_tasks, [t.to_wit() for t in tasks], defaults)

    def get_resource_data(self, result_id: str) -> bytes:
        """Fetches any existing result of the session into the data folder, and reads it."""
        _call("get-resource-data", agent.get_resource_data, _check_id(result_id))
        return self._read(result_id)

    def _read(self, result_id: str) -> bytes:
        try:
            return data_folder.read(_check_id(result_id), _WHOLE_FILE_MAX)
        except Err as error:
            if not isinstance(error.value, data_folder.FileError_TooLarge):
                raise _file_error(result_id, error.value) from None
        with open(self.path_of(result_id), "rb") as f:
            return f.read()

    def _write(self, result_id: str, data: bytes) -> None:
        # Any bytes-like object, as `open(...).write` takes (an int or a str is a TypeError),
        # measured in bytes and copied only when it is not `bytes` already.
        view = memoryview(data).cast("B")
        if view.nbytes > _WHOLE_FILE_MAX:
            with open(self.path_of(result_id), "wb") as f:
                f.write(view)
            return
        try:
            data_folder.write(_check_id(result_id), data if type(data) is bytes else bytes(view))
        except Err as error:
            raise _file_error(result_id, error.value) from None


def _file_error(result_id: str, error) -> Exception:
    """A ``data-folder`` error as Python raises it for ``open``: a name that is not a plain
    file fails the task for good, any other error traps (and is retried)."""
    message = f"{result_id}: {error.value}"
    if isinstance(error, data_folder.FileError_NotFound):
        return FileNotFoundError(errno.ENOENT, message)
    if isinstance(error, data_folder.FileError_InvalidName):
        return ArmoniKWasmError(message)
    return OSError(errno.EIO, message)


def armonik_worker() -> Callable[[Callable[[TaskHandler], Optional[Output]]], type]:
    """Turns ``processor(task_handler) -> Output`` into the class componentize-py exports:
    bind it to the module-level name ``Task``."""

    def wrap(processor: Callable[[TaskHandler], Optional[Output]]) -> type:
        class Task(exports.Task):
            def process(self, ctx: wit.TaskContext) -> None:
                try:
                    output = processor(TaskHandler(ctx))
                except ArmoniKWasmError as error:
                    raise Err(str(error)) from None
                if output is not None and output.error is not None:
                    raise Err(output.error)

        Task.__doc__ = processor.__doc__
        Task.processor = staticmethod(processor)
        return Task

    return wrap
