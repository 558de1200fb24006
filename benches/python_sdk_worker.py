"""The baseline of the `languages` benchmark (benches/bench.rs): ArmoniK's official Python SDK
worker (PyPI `armonik`, `armonik.worker`) running the Python guest's own echo task,
guests/python/examples/echo.py (read the payload, write it to the first expected output,
notify it with one `send_results` call), so that both sides run the same task code.

The guest's helper package `armonik_wasm` mirrors the SDK's names (`armonik_worker`,
`TaskHandler`, `Output`): bound here to the SDK's own, echo.py runs unchanged as an SDK
worker. Its `armonik_worker` decorator is then the SDK's, as in ArmoniK's Python SDK examples:
it serves the Worker contract at ComputePlane__WorkerChannel__Address / __SocketType and calls
the agent at ComputePlane__AgentChannel__Address / __SocketType, read from the environment as
under a polling agent. Logging is the SDK's default: two lines at start-up, nothing per task
(a received task is logged at debug level), as armonik-wasm under the benchmark's
RUST_LOG=warn. Run by the benchmark with the tools venv's Python.
"""

import sys
import types
from pathlib import Path

from armonik.common import Output
from armonik.worker import TaskHandler, armonik_worker

sdk = types.ModuleType("armonik_wasm")
sdk.Output = Output
sdk.TaskHandler = TaskHandler
sdk.armonik_worker = armonik_worker
sys.modules["armonik_wasm"] = sdk
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "guests" / "python" / "examples"))

import echo  # noqa: E402 (after the SDK took the helper's place)

if __name__ == "__main__":
    echo.processor.run()
