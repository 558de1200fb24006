// `concat`: concatenates all the task's data dependencies, in the order the task lists them,
// into its first expected output. Payload: ignored. Same behaviour as the Rust guest
// `guests/concat`.
import { armonikWorker, Output } from '../src/armonik_wasm.js';

export const task = armonikWorker((taskHandler) => {
  if (taskHandler.expectedResults.length === 0) {
    return new Output('this task has no expected result');
  }
  const parts = [...taskHandler.dataDependencies.values()];
  const data = new Uint8Array(parts.reduce((n, part) => n + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    data.set(part, offset);
    offset += part.length;
  }
  taskHandler.sendResults([[taskHandler.expectedResults[0], data]]);
  return new Output();
});
