/*
 * armonik_task.h: a small helper for ArmoniK tasks written in C, on top of the bindings that
 * `wit-bindgen c` generates for the armonik:worker world (worker.h).
 *
 * A task implements one function:
 *
 *     bool armonik_process(armonik_task_t *task);
 *
 * returning true to complete the task, or `armonik_fail(task, "...")` (which returns false) to
 * fail it for good with that message. A trap (abort(), out-of-bounds access...) makes ArmoniK
 * retry the task, up to its max_retries.
 *
 * Data flows through files of the data folder (/data), named by result id: the payload and the
 * data dependencies are read from them; a result is written to its file, then notified to the
 * agent (armonik_send_result does both). Other agent operations are the generated
 * `armonik_worker_agent_*` functions; armonik_agent_failed turns their error into the task's.
 */
#ifndef ARMONIK_TASK_H
#define ARMONIK_TASK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "worker.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Everything the host tells the task about itself (ids, options, data folder). */
typedef exports_armonik_worker_task_task_context_t armonik_task_context_t;

/* A running task: its context, and its error message once it failed. */
typedef struct armonik_task {
    const armonik_task_context_t *ctx;
    /* Set by armonik_fail (malloc'ed UTF-8, error_len bytes), NULL while the task has not
     * failed. */
    char *error;
    size_t error_len;
} armonik_task_t;

/* Bytes read from a file (malloc'ed, with a NUL after the last byte for convenience). */
typedef struct armonik_bytes {
    uint8_t *data;
    size_t len;
} armonik_bytes_t;

/* The task's code, implemented by the guest. */
bool armonik_process(armonik_task_t *task);

/* Fails the task with a printf-style message (invalid UTF-8 is replaced); returns false. */
bool armonik_fail(armonik_task_t *task, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

/* Fails the task with `len` bytes as its message (invalid UTF-8 replaced); returns false. */
bool armonik_fail_bytes(armonik_task_t *task, const uint8_t *message, size_t len);

/* Fails the task with the error of agent call `call` (its WIT name), e.g.
 * "agent call submit-tasks failed: not-found: ..."; frees `error`; returns false. */
bool armonik_agent_failed(armonik_task_t *task, const char *call,
                          armonik_worker_agent_agent_error_t *error);

/* Reads the task's payload into `out`; false (the task failed) on an I/O error. */
bool armonik_read_payload(armonik_task_t *task, armonik_bytes_t *out);

/* Reads data dependency number `index` (in the order the task lists them). */
bool armonik_read_dependency(armonik_task_t *task, size_t index, armonik_bytes_t *out);

/* Reads the file of result `id` in the data folder. */
bool armonik_read_result_file(armonik_task_t *task, const worker_string_t *id,
                              armonik_bytes_t *out);

/* The first expected result of the task, or NULL (and the task failed) if it has none. */
const worker_string_t *armonik_first_expected_result(armonik_task_t *task);

/* Produces result `id`: writes `data` to its file (created or truncated), then notifies it. */
bool armonik_send_result(armonik_task_t *task, const worker_string_t *id, const uint8_t *data,
                         size_t len);

/* Writes the file of result `id` (created or truncated), without notifying it. */
bool armonik_write_result_file(armonik_task_t *task, const worker_string_t *id,
                               const uint8_t *data, size_t len);

/* Frees bytes read by this helper (and empties `bytes`). */
void armonik_bytes_free(armonik_bytes_t *bytes);

/* A NUL-terminated, malloc'ed copy of a WIT string. */
char *armonik_cstr(const worker_string_t *s);

/* Whether `len` bytes at `data` are valid UTF-8. */
bool armonik_utf8_valid(const uint8_t *data, size_t len);

/* A malloc'ed, NUL-terminated UTF-8 copy of `data`, each invalid sequence replaced by U+FFFD
 * (as Rust's String::from_utf8_lossy does); its length in `out_len` if not NULL. */
char *armonik_utf8_lossy(const uint8_t *data, size_t len, size_t *out_len);

#ifdef __cplusplus
}
#endif

#endif /* ARMONIK_TASK_H */
