// `echo`: writes the task's payload, unchanged, to its first expected output.
// Payload: any bytes. Same behaviour as the Rust guest `guests/echo`.
import { armonikWorker, Output } from '../src/armonik_wasm.js';

export const task = armonikWorker((taskHandler) => {
  if (taskHandler.expectedResults.length === 0) {
    return new Output('this task has no expected result');
  }
  // The payload's pieces, written as they are read: a payload of any size fits in memory.
  taskHandler.sendResults([[taskHandler.expectedResults[0], taskHandler.chunksOf(taskHandler.payloadId)]]);
  return new Output();
});
