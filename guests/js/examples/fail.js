// `fail`: fails the task, with its payload (UTF-8, invalid sequences replaced) as the error
// message. Same behaviour as the Rust guest `guests/fail`.
import { armonikWorker, Output } from '../src/armonik_wasm.js';

export const task = armonikWorker((taskHandler) => {
  return new Output(new TextDecoder().decode(taskHandler.payload));
});
