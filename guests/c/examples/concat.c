/* `concat`: concatenates all the task's data dependencies, in the order the task lists them,
 * into its first expected output. Payload: ignored. Same behaviour as the Rust guest
 * `guests/concat`. */
#include <stdlib.h>
#include <string.h>

#include "armonik_task.h"

bool armonik_process(armonik_task_t *task) {
    const worker_string_t *output = armonik_first_expected_result(task);
    if (output == NULL) return false;
    uint8_t *data = NULL;
    size_t len = 0;
    for (size_t i = 0; i < task->ctx->data_dependencies.len; i++) {
        armonik_bytes_t dependency;
        if (!armonik_read_dependency(task, i, &dependency)) {
            free(data);
            return false;
        }
        data = realloc(data, len + dependency.len + 1);
        if (data == NULL) abort();
        memcpy(data + len, dependency.data, dependency.len);
        len += dependency.len;
        armonik_bytes_free(&dependency);
    }
    bool ok = armonik_send_result(task, output, data, len);
    free(data);
    return ok;
}
