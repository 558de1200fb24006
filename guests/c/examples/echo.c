/* `echo`: writes the task's payload, unchanged, to its first expected output.
 * Payload: any bytes. Same behaviour as the Rust guest `guests/echo`. */
#include "armonik_task.h"

bool armonik_process(armonik_task_t *task) {
    armonik_bytes_t payload;
    if (!armonik_read_payload(task, &payload)) return false;
    const worker_string_t *output = armonik_first_expected_result(task);
    bool ok = output != NULL && armonik_send_result(task, output, payload.data, payload.len);
    armonik_bytes_free(&payload);
    return ok;
}
