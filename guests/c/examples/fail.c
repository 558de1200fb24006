/* `fail`: fails the task, with its payload (UTF-8, invalid sequences replaced) as the error
 * message. Same behaviour as the Rust guest `guests/fail`. */
#include "armonik_task.h"

bool armonik_process(armonik_task_t *task) {
    armonik_bytes_t payload;
    if (!armonik_read_payload(task, &payload)) return false;
    armonik_fail_bytes(task, payload.data, payload.len);
    armonik_bytes_free(&payload);
    return false;
}
