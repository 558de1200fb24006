/*
 * armonik_task.c: see armonik_task.h. Exports the world's `process` function, which builds an
 * armonik_task_t and calls the guest's armonik_process.
 */
#include "armonik_task.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool exports_armonik_worker_task_process(exports_armonik_worker_task_task_context_t *ctx,
                                         worker_string_t *err) {
    armonik_task_t task = {.ctx = ctx, .error = NULL, .error_len = 0};
    bool ok = armonik_process(&task);
    if (!ok) {
        /* The host frees it through the generated post-return function. */
        if (task.error != NULL) {
            worker_string_dup_n(err, task.error, task.error_len);
        } else {
            worker_string_dup(err, "the task failed");
        }
    }
    free(task.error);
    exports_armonik_worker_task_task_context_free(ctx);
    return ok;
}

static void *xmalloc(size_t size) {
    void *p = malloc(size == 0 ? 1 : size);
    if (p == NULL) abort(); /* out of memory: trap, ArmoniK retries */
    return p;
}

bool armonik_fail_bytes(armonik_task_t *task, const uint8_t *message, size_t len) {
    /* Keep the first error: it is the cause. */
    if (task->error == NULL) {
        task->error = armonik_utf8_lossy(message, len, &task->error_len);
    }
    return false;
}

bool armonik_fail(armonik_task_t *task, const char *format, ...) {
    va_list args;
    va_start(args, format);
    int len = vsnprintf(NULL, 0, format, args);
    va_end(args);
    if (len < 0) len = 0;
    char *message = xmalloc((size_t)len + 1);
    va_start(args, format);
    vsnprintf(message, (size_t)len + 1, format, args);
    va_end(args);
    armonik_fail_bytes(task, (const uint8_t *)message, strlen(message));
    free(message);
    return false;
}

bool armonik_agent_failed(armonik_task_t *task, const char *call,
                          armonik_worker_agent_agent_error_t *error) {
    static const char *const kinds[] = {"invalid-argument", "not-found", "unavailable",
                                        "deadline-exceeded", "internal"};
    const char *kind = error->tag < 5 ? kinds[error->tag] : "internal";
    /* Every case carries one string, at the same place. */
    worker_string_t *message = &error->val.internal;
    armonik_fail(task, "agent call %s failed: %s: %.*s", call, kind, (int)message->len,
                 (const char *)message->ptr);
    armonik_worker_agent_agent_error_free(error);
    return false;
}

char *armonik_cstr(const worker_string_t *s) {
    char *out = xmalloc(s->len + 1);
    memcpy(out, s->ptr, s->len);
    out[s->len] = '\0';
    return out;
}

/* `<data folder>/<id>`, or NULL (and the task failed) if `id` is not a plain file name. */
static char *path_of(armonik_task_t *task, const worker_string_t *id) {
    const worker_string_t *folder = &task->ctx->data_folder;
    bool bad = id->len == 0 || memchr(id->ptr, '/', id->len) != NULL ||
               memchr(id->ptr, '\\', id->len) != NULL || memchr(id->ptr, '\0', id->len) != NULL ||
               (id->len == 1 && id->ptr[0] == '.') ||
               (id->len == 2 && id->ptr[0] == '.' && id->ptr[1] == '.');
    if (bad) {
        armonik_fail(task, "\"%.*s\" is not a valid result id (a file name)", (int)id->len,
                     (const char *)id->ptr);
        return NULL;
    }
    char *path = xmalloc(folder->len + 1 + id->len + 1);
    memcpy(path, folder->ptr, folder->len);
    path[folder->len] = '/';
    memcpy(path + folder->len + 1, id->ptr, id->len);
    path[folder->len + 1 + id->len] = '\0';
    return path;
}

/* Opens the file of result `id` with fopen `mode`; on failure fails the task and returns NULL.
 * On success `*path` holds the file's path, for messages, for the caller to free. */
static FILE *open_result_file(armonik_task_t *task, const worker_string_t *id, const char *mode,
                              char **path) {
    *path = path_of(task, id);
    if (*path == NULL) return NULL;
    FILE *file = fopen(*path, mode);
    if (file == NULL) {
        armonik_fail(task, "I/O error on %s: %s", *path, strerror(errno));
        free(*path);
        *path = NULL;
    }
    return file;
}

bool armonik_read_result_file(armonik_task_t *task, const worker_string_t *id,
                              armonik_bytes_t *out) {
    out->data = NULL;
    out->len = 0;
    char *path;
    FILE *file = open_result_file(task, id, "rb", &path);
    if (file == NULL) return false;
    size_t capacity = 64 * 1024, len = 0;
    uint8_t *data = xmalloc(capacity + 1);
    for (;;) {
        if (len == capacity) {
            capacity *= 2;
            data = realloc(data, capacity + 1);
            if (data == NULL) abort();
        }
        size_t n = fread(data + len, 1, capacity - len, file);
        len += n;
        if (n == 0) break;
    }
    bool failed = ferror(file) != 0;
    int error = errno;
    fclose(file);
    if (failed) {
        armonik_fail(task, "I/O error on %s: %s", path, strerror(error));
        free(path);
        free(data);
        return false;
    }
    free(path);
    data[len] = '\0';
    out->data = data;
    out->len = len;
    return true;
}

bool armonik_read_payload(armonik_task_t *task, armonik_bytes_t *out) {
    return armonik_read_result_file(task, &task->ctx->payload_id, out);
}

bool armonik_read_dependency(armonik_task_t *task, size_t index, armonik_bytes_t *out) {
    if (index >= task->ctx->data_dependencies.len) {
        out->data = NULL;
        out->len = 0;
        return armonik_fail(task, "the task has no data dependency number %zu", index);
    }
    return armonik_read_result_file(task, &task->ctx->data_dependencies.ptr[index], out);
}

const worker_string_t *armonik_first_expected_result(armonik_task_t *task) {
    if (task->ctx->expected_output_ids.len == 0) {
        armonik_fail(task, "this task has no expected result");
        return NULL;
    }
    return &task->ctx->expected_output_ids.ptr[0];
}

bool armonik_write_result_file(armonik_task_t *task, const worker_string_t *id,
                               const uint8_t *data, size_t len) {
    char *path;
    FILE *file = open_result_file(task, id, "wb", &path);
    if (file == NULL) return false;
    size_t written = len == 0 ? 0 : fwrite(data, 1, len, file);
    int error = errno;
    bool failed = written != len;
    if (fclose(file) != 0 && !failed) {
        failed = true;
        error = errno;
    }
    if (failed) {
        armonik_fail(task, "I/O error on %s: %s", path, strerror(error));
    }
    free(path);
    return !failed;
}

bool armonik_send_result(armonik_task_t *task, const worker_string_t *id, const uint8_t *data,
                         size_t len) {
    if (!armonik_write_result_file(task, id, data, len)) return false;
    /* The bindings take the list by pointer and do not keep it. */
    worker_list_string_t ids = {.ptr = (worker_string_t *)id, .len = 1};
    worker_list_string_t acknowledged;
    armonik_worker_agent_agent_error_t error;
    if (!armonik_worker_agent_notify_result_data(&ids, &acknowledged, &error)) {
        return armonik_agent_failed(task, "notify-result-data", &error);
    }
    worker_list_string_free(&acknowledged);
    return true;
}

void armonik_bytes_free(armonik_bytes_t *bytes) {
    free(bytes->data);
    bytes->data = NULL;
    bytes->len = 0;
}

/* Length of the valid UTF-8 sequence at data[i..len), or 0 if it is invalid; in that case
 * `*skip` is the length of its maximal invalid prefix (at least 1), what one U+FFFD replaces
 * (the Unicode "maximal subpart" practice, as Rust and the WHATWG decoder do). */
static size_t utf8_sequence(const uint8_t *data, size_t len, size_t i, size_t *skip) {
    uint8_t b = data[i];
    size_t need;
    uint8_t lo = 0x80, hi = 0xBF; /* range of the second byte */
    if (b < 0x80) return 1;
    if (b >= 0xC2 && b <= 0xDF) {
        need = 1;
    } else if (b >= 0xE0 && b <= 0xEF) {
        need = 2;
        if (b == 0xE0) lo = 0xA0;
        if (b == 0xED) hi = 0x9F;
    } else if (b >= 0xF0 && b <= 0xF4) {
        need = 3;
        if (b == 0xF0) lo = 0x90;
        if (b == 0xF4) hi = 0x8F;
    } else {
        *skip = 1;
        return 0;
    }
    size_t k;
    for (k = 1; k <= need; k++) {
        if (i + k >= len) break;
        uint8_t c = data[i + k];
        uint8_t min = k == 1 ? lo : 0x80, max = k == 1 ? hi : 0xBF;
        if (c < min || c > max) break;
    }
    if (k > need) return need + 1;
    *skip = k;
    return 0;
}

bool armonik_utf8_valid(const uint8_t *data, size_t len) {
    size_t i = 0, skip;
    while (i < len) {
        size_t n = utf8_sequence(data, len, i, &skip);
        if (n == 0) return false;
        i += n;
    }
    return true;
}

char *armonik_utf8_lossy(const uint8_t *data, size_t len, size_t *out_len) {
    /* Each invalid byte becomes at most 3 bytes. */
    char *out = xmalloc(len * 3 + 1);
    size_t i = 0, o = 0, skip;
    while (i < len) {
        size_t n = utf8_sequence(data, len, i, &skip);
        if (n > 0) {
            memcpy(out + o, data + i, n);
            o += n;
            i += n;
        } else {
            memcpy(out + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i += skip;
        }
    }
    out[o] = '\0';
    if (out_len != NULL) *out_len = o;
    return out;
}
