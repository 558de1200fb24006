// `fanout`: a fan-out / fan-in computing 0² + 1² + ... + (n-1)² with subtasks. Same payloads
// and results as the Rust guest `guests/fanout` (UTF-8 text, words separated by whitespace):
//
// - `fanout <n>` (the root): creates the payloads `part <i>` (results named `part-payload-<i>`)
//   and `sum` (`sum-payload`) with createResults, the part outputs (`part-output-<i>`) with
//   createResultsMetadata, then submits in one call the n part tasks and one aggregation task
//   whose expected output is the root's own: the root delegates its output.
//   `fanout <n> fail <k>` makes part k fail.
// - `part <i>`: writes the decimal text of i*i; `part <i> fail` fails.
// - `sum`: writes the sum of its data dependencies, each a decimal integer.
import { armonikWorker, ArmoniKWasmError, Output } from '../src/armonik_wasm.js';

function uint(text) {
  if (!/^\+?[0-9]+$/.test(text)) throw new ArmoniKWasmError('invalid digit found in string');
  return BigInt(text.replace(/^\+/, ''));
}

function firstExpectedResult(taskHandler) {
  if (taskHandler.expectedResults.length === 0) {
    throw new ArmoniKWasmError('this task has no expected result');
  }
  return taskHandler.expectedResults[0];
}

function fanOut(taskHandler, n, failing) {
  const output = firstExpectedResult(taskHandler);
  const payloads = [];
  for (let i = 0; i < n; i++) {
    payloads.push([`part-payload-${i}`, `part ${i}${failing === i ? ' fail' : ''}`]);
  }
  payloads.push(['sum-payload', 'sum']);
  const created = taskHandler.createResults(payloads);
  const names = Array.from({ length: n }, (_, i) => `part-output-${i}`);
  const outputs = taskHandler.createResultsMetadata(names);
  const partOutputs = names.map((name) => outputs[name].resultId);
  const tasks = partOutputs.map((partOutput, i) => ({
    payloadId: created[`part-payload-${i}`].resultId,
    expectedOutputIds: [partOutput],
  }));
  tasks.push({
    payloadId: created['sum-payload'].resultId,
    dataDependencies: partOutputs,
    expectedOutputIds: [output],
  });
  taskHandler.submitTasks(tasks);
  return new Output();
}

export const task = armonikWorker((taskHandler) => {
  let payload;
  try {
    payload = new TextDecoder('utf-8', { fatal: true }).decode(taskHandler.payload);
  } catch (e) {
    return new Output(`invalid utf-8 sequence: ${e}`);
  }
  const words = payload.split(/\s+/).filter((w) => w !== '');
  const is = (...pattern) =>
    words.length === pattern.length && pattern.every((p, i) => p === null || p === words[i]);
  let value;
  if (is('fanout', null)) {
    return fanOut(taskHandler, Number(uint(words[1])), null);
  } else if (is('fanout', null, 'fail', null)) {
    return fanOut(taskHandler, Number(uint(words[1])), Number(uint(words[3])));
  } else if (is('part', null)) {
    value = uint(words[1]) ** 2n;
  } else if (is('part', null, 'fail')) {
    return new Output(`part ${words[1]} fails on purpose`);
  } else if (is('sum')) {
    value = 0n;
    for (const data of taskHandler.dataDependencies.values()) {
      value += uint(new TextDecoder().decode(data).trim());
    }
  } else {
    return new Output(`fanout: unknown payload ${JSON.stringify(payload)}`);
  }
  taskHandler.sendResults([[firstExpectedResult(taskHandler), value.toString()]]);
  return new Output();
});
