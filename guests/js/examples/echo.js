// `echo`: writes the task's payload, unchanged, to its first expected output.
// Payload: any bytes. Same behaviour as the Rust guest `guests/echo`.
import { armonikWorker, Output } from '../src/armonik_wasm.js';

export const task = armonikWorker((taskHandler) => {
  if (taskHandler.expectedResults.length === 0) {
    return new Output('this task has no expected result');
  }
  taskHandler.sendResults([[taskHandler.expectedResults[0], taskHandler.payload]]);
  return new Output();
});
