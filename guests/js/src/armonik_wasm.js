// Write ArmoniK tasks in JavaScript, as WebAssembly components run by armonik-wasm.
//
// The API mirrors the worker side of ArmoniK's official SDKs (the Python SDK's
// `armonik.worker.TaskHandler`), with JavaScript names:
//
//     import { armonikWorker, Output } from './armonik_wasm.js';
//
//     export const task = armonikWorker((taskHandler) => {
//       taskHandler.sendResults({ [taskHandler.expectedResults[0]]: taskHandler.payload });
//       return new Output();
//     });
//
// Build with componentize-js (see `guests/js/build.sh`); the module must export `task`.
//
// Data flows through files: the payload and the data dependencies are files named after their
// result ids in the data folder (`/data`); `sendResults` writes `<data folder>/<id>` and
// notifies the agent. Files up to 256 MiB are read and written whole in one host call (the
// world's `data-folder` interface), larger ones a part at a time through the raw
// `wasi:filesystem` bindings (the engine has no file API of its own), and `chunksOf(id)` hands
// a file over in pieces (16 MiB `read-part` calls above 256 MiB) that `sendResults` writes as
// they come: for data too large to hold twice. What a task creates, notifies or submits takes
// effect only if it succeeds.
//
// Outcomes: returning `new Output()` (or nothing) completes the task; `new Output(message)`
// fails it for good with that message, and so do an error of this module (`ArmoniKWasmError`,
// e.g. a failed agent call) and a thrown string; any other exception traps, and ArmoniK
// retries the task up to its `maxRetries`, as it does when an SDK worker raises.

import * as agent from 'armonik:worker/agent@0.1.0';
import * as dataFolder from 'armonik:worker/data-folder@0.1.0';
import { getDirectories } from 'wasi:filesystem/preopens@0.2.12';

/** Size of the pieces files larger than `WHOLE_FILE_MAX` are written in (WASI calls). */
const CHUNK = 1 << 20;

/** Size of the pieces a file larger than `WHOLE_FILE_MAX` is read in (`read-part`). */
const PIECE = 16 << 20;

/**
 * Files up to this size go through one `data-folder` call each, read or written whole; larger
 * ones through WASI a part at a time, so that a read never holds two copies of them. (A write
 * still costs its size: componentize-js 0.23.0 never frees the copy of a list it passes to the
 * host, so every byte written stays allocated until the task ends; README "Performance".)
 */
const WHOLE_FILE_MAX = 256 * 1024 * 1024;

const encoder = new TextEncoder();

/** A failure of this module's operations; thrown out of a task, it fails the task. */
export class ArmoniKWasmError extends Error {
  constructor(message) {
    super(message);
    this.name = 'ArmoniKWasmError';
  }
}

/** A failed agent call: `call` is its WIT name, `kind` the agent-error case. */
export class AgentError extends ArmoniKWasmError {
  constructor(call, kind, message) {
    super(`agent call ${call} failed: ${kind}: ${message}`);
    this.name = 'AgentError';
    this.call = call;
    this.kind = kind;
    this.agentMessage = message;
  }
}

/** What a task returns: `new Output()` completes it, `new Output(error)` fails it. */
export class Output {
  constructor(error) {
    this.error = error ?? null;
  }

  get success() {
    return this.error === null;
  }
}

function callAgent(name, fn, ...args) {
  try {
    return fn(...args);
  } catch (e) {
    const error = e && e.payload !== undefined ? e.payload : e;
    if (error && typeof error === 'object' && 'tag' in error) {
      throw new AgentError(name, error.tag, error.val);
    }
    throw new AgentError(name, 'internal', String(error));
  }
}

function checkId(id) {
  if (typeof id !== 'string' || id === '' || id === '.' || id === '..' || /[/\\\0]/.test(id)) {
    throw new ArmoniKWasmError(`${JSON.stringify(id)} is not a valid result id (a file name)`);
  }
  return id;
}

function toBytes(data) {
  if (data instanceof Uint8Array) return data;
  if (typeof data === 'string') return encoder.encode(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  throw new ArmoniKWasmError(`cannot send ${typeof data} as result data: use bytes or a string`);
}

/** [key, value] pairs of a Map, an array of pairs, or a plain object. */
function entriesOf(items) {
  if (items instanceof Map || Array.isArray(items)) return [...items];
  return Object.entries(items);
}

/** Task options in ArmoniK's shape: `maxDuration` in milliseconds, `options` an object. */
export function taskOptionsFromWit(o) {
  return {
    maxDuration: o.maxDurationMs === undefined ? undefined : Number(o.maxDurationMs),
    priority: o.priority,
    maxRetries: o.maxRetries,
    partitionId: o.partitionId,
    applicationName: o.applicationName,
    applicationVersion: o.applicationVersion,
    applicationNamespace: o.applicationNamespace,
    applicationService: o.applicationService,
    engineType: o.engineType,
    options: Object.fromEntries(o.options),
  };
}

/** The WIT record of task options given in ArmoniK's shape (missing fields: defaults). */
export function taskOptionsToWit(o) {
  return {
    options: entriesOf(o.options ?? {}).map(([k, v]) => [String(k), String(v)]),
    maxDurationMs: o.maxDuration === undefined || o.maxDuration === null ? undefined : BigInt(o.maxDuration),
    maxRetries: o.maxRetries ?? 0,
    priority: o.priority ?? 0,
    partitionId: o.partitionId ?? '',
    applicationName: o.applicationName ?? '',
    applicationVersion: o.applicationVersion ?? '',
    applicationNamespace: o.applicationNamespace ?? '',
    applicationService: o.applicationService ?? '',
    engineType: o.engineType ?? '',
  };
}

/** The preopened directory holding `folder` (the task's data folder). */
function dataDirectory(folder) {
  const clean = folder.replace(/\/+$/, '');
  for (const [descriptor, path] of getDirectories()) {
    if (path.replace(/\/+$/, '') === clean) return descriptor;
  }
  throw new ArmoniKWasmError(`the data folder ${folder} is not a preopened directory`);
}

/**
 * The error of a failed file call, `what` (opening, reading, writing) on `id`. `e` is what
 * the call threw (its error in `payload`) or that error itself: a WASI error code, or a
 * `data-folder` file error `{ tag, val }`, said as `<tag>: <message>`.
 */
function fileError(what, id, e) {
  const error = e && e.payload !== undefined ? e.payload : e;
  const said = error && typeof error === 'object' && 'tag' in error ? `${error.tag}: ${error.val}` : String(error);
  return new ArmoniKWasmError(`I/O error on ${what} ${id}: ${said}`);
}

/**
 * The whole file `id` of directory `dir`, larger than `WHOLE_FILE_MAX`: as many bytes as its
 * size when it is opened (WASI), read in `read-part` pieces straight into one array.
 */
function readFile(dir, id) {
  let size;
  try {
    const file = dir.openAt({}, checkId(id), {}, { read: true });
    try {
      size = Number(file.stat().size);
    } finally {
      file[Symbol.dispose]?.();
    }
  } catch (e) {
    throw fileError('opening', id, e);
  }
  const data = new Uint8Array(size);
  let offset = 0;
  for (const piece of readParts(id, size)) {
    data.set(piece, offset);
    offset += piece.length;
  }
  return offset === size ? data : data.subarray(0, offset);
}

/** File `id` in `read-part` pieces of at most `PIECE` bytes, up to `size` bytes or its end. */
function* readParts(id, size = Infinity) {
  for (let offset = 0; offset < size; ) {
    let piece;
    try {
      piece = dataFolder.readPart(id, BigInt(offset), BigInt(Math.min(PIECE, size - offset)));
    } catch (e) {
      throw fileError('reading', id, e);
    }
    if (piece.length === 0) return;
    yield piece;
    offset += piece.length;
  }
}

/** File `id` of directory `dir`, created or truncated, open for writing. */
function openForWriting(dir, id) {
  try {
    return dir.openAt({}, checkId(id), { create: true, truncate: true }, { write: true });
  } catch (e) {
    throw fileError('opening', id, e);
  }
}

/** Writes `data` at `offset` of `file`, 1 MiB a call; the offset after it. */
function writeAt(file, data, offset) {
  let done = 0;
  while (done < data.length) {
    const end = Math.min(done + CHUNK, data.length);
    done += Number(file.write(data.subarray(done, end), BigInt(offset + done)));
  }
  return offset + done;
}

/** Writes (creates or truncates) file `id` of directory `dir`. */
function writeFile(dir, id, data) {
  const file = openForWriting(dir, id);
  try {
    writeAt(file, data, 0);
  } catch (e) {
    throw fileError('writing', id, e);
  } finally {
    file[Symbol.dispose]?.();
  }
}

/** Whether `data` is pieces of bytes rather than bytes or a string. */
function isPieces(data) {
  return (
    data !== null &&
    typeof data === 'object' &&
    !ArrayBuffer.isView(data) &&
    !(data instanceof ArrayBuffer) &&
    typeof data[Symbol.iterator] === 'function'
  );
}

/** The pieces of one file of the data folder, read as they are asked for (`chunksOf`). */
class FileChunks {
  constructor(handler, id) {
    this._handler = handler;
    this.id = id;
  }

  *[Symbol.iterator]() {
    const whole = this._handler._readWhole(this.id);
    if (whole !== null) yield whole;
    else yield* readParts(this.id);
  }
}

export class DataDependencies {
  constructor(handler, ids) {
    this._handler = handler;
    this._ids = [...ids];
    // Membership in O(1): a fan-in task reads thousands of dependencies.
    this._known = new Set(this._ids);
    this._cache = new Map();
  }

  get size() {
    return this._ids.length;
  }

  has(id) {
    return this._known.has(id);
  }

  /** The bytes of dependency `id` (`undefined` if it is not one). */
  get(id) {
    if (!this.has(id)) return undefined;
    if (!this._cache.has(id)) this._cache.set(id, this._handler._read(id));
    return this._cache.get(id);
  }

  keys() {
    return this._ids[Symbol.iterator]();
  }

  *values() {
    for (const id of this._ids) yield this.get(id);
  }

  *entries() {
    for (const id of this._ids) yield [id, this.get(id)];
  }

  [Symbol.iterator]() {
    return this.entries();
  }
}

/**
 * What a task is given: its ids, options and data, and the ArmoniK Agent's operations (as the
 * official SDKs' TaskHandler; the host adds the communication token itself).
 */
export class TaskHandler {
  constructor(ctx) {
    this.sessionId = ctx.sessionId;
    this.taskId = ctx.taskId;
    this.taskOptions = taskOptionsFromWit(ctx.options);
    this.expectedResults = [...ctx.expectedOutputIds];
    this.payloadId = ctx.payloadId;
    this.dataFolder = ctx.dataFolder;
    this.dataChunkMaxSize = ctx.dataChunkMaxSize;
    /** Data dependency id -> bytes, in the order the task lists them; read lazily. */
    this.dataDependencies = new DataDependencies(this, ctx.dataDependencies);
    this._dir = null;
    this._payload = null;
  }

  /** The task's payload bytes (read on first access). */
  get payload() {
    if (this._payload === null) this._payload = this._read(this.payloadId);
    return this._payload;
  }

  /**
   * File `id` of the data folder (the payload, a data dependency, a result fetched with
   * `getResourceData`) as pieces of bytes, each read when the loop over them asks for it: for
   * data too large to hold at once. A file of at most 256 MiB is one piece (one host call), a
   * larger one comes in 16 MiB pieces (`read-part`). Give it to `sendResults` to write a result as it is read:
   * `sendResults([[out, taskHandler.chunksOf(taskHandler.payloadId)]])`.
   */
  chunksOf(id) {
    return new FileChunks(this, checkId(id));
  }

  /**
   * Writes each result's file (replacing any file there), then notifies them all in one call.
   * `results`: an object, a Map or [id, data] pairs; data are bytes, a string (UTF-8), or
   * pieces of bytes (`chunksOf`, or any iterable of them), written one after the other without
   * holding them all.
   */
  sendResults(results) {
    const entries = entriesOf(results);
    for (const [id, data] of entries) {
      if (isPieces(data)) this._writePieces(id, data);
      else this._write(id, toBytes(data));
    }
    if (entries.length > 0) this.notifyResultData(entries.map(([id]) => id));
  }

  /** Declares results whose files were written in the data folder as complete. */
  notifyResultData(ids) {
    return callAgent('notify-result-data', agent.notifyResultData, [...ids]);
  }

  /** Creates results without data, one per name: { name: metadata (`.resultId`) }. */
  createResultsMetadata(names) {
    const created = callAgent('create-results-metadata', agent.createResultsMetadata, [...names]);
    return Object.fromEntries(created.map((r) => [r.name, r]));
  }

  /** Creates results with their data (at most 4 MiB in all): { name: metadata }. */
  createResults(results) {
    const items = entriesOf(results).map(([name, data]) => [name, toBytes(data)]);
    const created = callAgent('create-results', agent.createResults, items);
    return Object.fromEntries(created.map((r) => [r.name, r]));
  }

  /**
   * Submits subtasks over existing results: each `{ payloadId, expectedOutputIds,
   * dataDependencies, options }`; `defaultTaskOptions` fill the fields a task leaves empty.
   * Listing one of this task's expected results as a subtask's output delegates it.
   */
  submitTasks(tasks, defaultTaskOptions) {
    const definitions = tasks.map((t) => {
      if (!t.expectedOutputIds || t.expectedOutputIds.length === 0) {
        throw new ArmoniKWasmError('expectedOutputIds must not be empty');
      }
      return {
        payloadId: t.payloadId,
        dataDependencies: [...(t.dataDependencies ?? [])],
        expectedOutputIds: [...t.expectedOutputIds],
        options: t.options ? taskOptionsToWit(t.options) : undefined,
      };
    });
    const defaults = defaultTaskOptions ? taskOptionsToWit(defaultTaskOptions) : undefined;
    return callAgent('submit-tasks', agent.submitTasks, definitions, defaults);
  }

  /** Fetches any existing result of the session into the data folder, and reads it. */
  getResourceData(id) {
    callAgent('get-resource-data', agent.getResourceData, checkId(id));
    return this._read(id);
  }

  _directory() {
    if (this._dir === null) this._dir = dataDirectory(this.dataFolder);
    return this._dir;
  }

  _read(id) {
    return this._readWhole(id) ?? readFile(this._directory(), id);
  }

  /** File `id` in one host call, or `null` when it is larger than `WHOLE_FILE_MAX`. */
  _readWhole(id) {
    try {
      return dataFolder.read(checkId(id), BigInt(WHOLE_FILE_MAX));
    } catch (e) {
      if (e instanceof ArmoniKWasmError) throw e;
      const error = e && e.payload !== undefined ? e.payload : e;
      if (error?.tag !== 'too-large') throw fileError('reading', id, error);
      return null;
    }
  }

  /** Writes pieces of bytes as file `id`: one piece in one host call, more through WASI. */
  _writePieces(id, pieces) {
    if (pieces instanceof FileChunks && pieces.id === id) {
      throw new ArmoniKWasmError(`cannot write ${id} from its own pieces: it is read as it is written`);
    }
    const iterator = pieces[Symbol.iterator]();
    const first = iterator.next();
    const second = first.done ? first : iterator.next();
    if (second.done) {
      iterator.return?.();
      this._write(id, first.done ? new Uint8Array(0) : toBytes(first.value));
      return;
    }
    const file = openForWriting(this._directory(), id);
    try {
      let offset = 0;
      for (let next = first; !next.done; next = next === first ? second : iterator.next()) {
        offset = writeAt(file, toBytes(next.value), offset);
      }
    } catch (e) {
      if (e instanceof ArmoniKWasmError) throw e;
      throw fileError('writing', id, e);
    } finally {
      iterator.return?.();
      file[Symbol.dispose]?.();
    }
  }

  _write(id, data) {
    if (data.length > WHOLE_FILE_MAX) {
      writeFile(this._directory(), id, data);
      return;
    }
    try {
      dataFolder.write(checkId(id), data);
    } catch (e) {
      if (e instanceof ArmoniKWasmError) throw e;
      throw fileError('writing', id, e);
    }
  }
}

/**
 * Turns `processor(taskHandler) -> Output` into the `task` export of the world:
 * `export const task = armonikWorker(processor);`.
 */
export function armonikWorker(processor) {
  return {
    process(ctx) {
      let output;
      try {
        output = processor(new TaskHandler(ctx));
      } catch (e) {
        // This module's errors, and thrown strings, fail the task for good (`err`).
        if (e instanceof ArmoniKWasmError) throw e.message;
        if (typeof e === 'string') throw e;
        // Anything else traps (the binding accepts only a string), so ArmoniK retries the
        // task, as it does when an SDK worker raises; say what it was first.
        console.error(`uncaught exception: ${e && e.stack ? `${e}\n${e.stack}` : e}`);
        throw e;
      }
      if (output && output.error !== null && output.error !== undefined) {
        throw String(output.error);
      }
    },
  };
}
