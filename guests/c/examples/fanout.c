/* `fanout`: a fan-out / fan-in computing 0² + 1² + ... + (n-1)² with subtasks. Same payloads
 * and results as the Rust guest `guests/fanout` (UTF-8 text, words separated by whitespace):
 *
 * - `fanout <n>` (the root): creates the payloads `part <i>` (results named `part-payload-<i>`)
 *   and `sum` (`sum-payload`) with create-results, the part outputs (`part-output-<i>`) with
 *   create-results-metadata, then submits in one call the n part tasks and one aggregation
 *   task whose expected output is the root's own: the root delegates its output.
 *   `fanout <n> fail <k>` makes part k fail.
 * - `part <i>`: writes the decimal text of i*i; `part <i> fail` fails.
 * - `sum`: writes the sum of its data dependencies, each a decimal integer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "armonik_task.h"

typedef unsigned __int128 u128;

#define U64_MAX ((u128)UINT64_MAX)
#define U128_MAX (~(u128)0)

static bool is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Splits `text` in place on whitespace; returns the number of words (at most max + 1, so a
 * caller sees there were too many). */
static size_t split_words(char *text, char *words[], size_t max) {
    size_t count = 0;
    char *p = text;
    while (*p != '\0') {
        while (is_space(*p)) *p++ = '\0';
        if (*p == '\0') break;
        if (count <= max) words[count] = p;
        count++;
        while (*p != '\0' && !is_space(*p)) p++;
    }
    return count > max ? max + 1 : count;
}

/* Parses a decimal integer no larger than `max`, with the messages of Rust's `str::parse`. */
static bool parse_uint(armonik_task_t *task, const char *s, u128 max, u128 *out) {
    if (*s == '+') s++;
    if (*s == '\0') return armonik_fail(task, "cannot parse integer from empty string");
    u128 value = 0;
    bool overflow = false;
    for (const char *p = s; *p != '\0'; p++) {
        if (*p < '0' || *p > '9') return armonik_fail(task, "invalid digit found in string");
        unsigned digit = (unsigned)(*p - '0');
        if (value > (max - digit) / 10) overflow = true;
        if (!overflow) value = value * 10 + digit;
    }
    if (overflow) return armonik_fail(task, "number too large to fit in target type");
    *out = value;
    return true;
}

/* Decimal text of `value` into `buf` (at least 40 bytes); returns its length. */
static size_t u128_text(u128 value, char *buf) {
    char digits[40];
    size_t n = 0;
    do {
        digits[n++] = (char)('0' + (unsigned)(value % 10));
        value /= 10;
    } while (value != 0);
    for (size_t i = 0; i < n; i++) buf[i] = digits[n - 1 - i];
    buf[n] = '\0';
    return n;
}

/* The payload quoted as Rust's `{:?}` does for common text. */
static char *quote(const char *text) {
    size_t len = strlen(text);
    char *out = malloc(len * 6 + 3);
    if (out == NULL) abort();
    size_t o = 0;
    out[o++] = '"';
    for (const unsigned char *p = (const unsigned char *)text; *p != '\0'; p++) {
        switch (*p) {
        case '"': out[o++] = '\\'; out[o++] = '"'; break;
        case '\\': out[o++] = '\\'; out[o++] = '\\'; break;
        case '\n': out[o++] = '\\'; out[o++] = 'n'; break;
        case '\r': out[o++] = '\\'; out[o++] = 'r'; break;
        case '\t': out[o++] = '\\'; out[o++] = 't'; break;
        default:
            if (*p < 0x20 || *p == 0x7f) {
                o += (size_t)sprintf(out + o, "\\u{%x}", *p);
            } else {
                out[o++] = (char)*p;
            }
        }
    }
    out[o++] = '"';
    out[o] = '\0';
    return out;
}

static void set_string(worker_string_t *s, const char *text) {
    worker_string_dup(s, text);
}

/* The result named `name` among `results`, or NULL (and the task failed). */
static const armonik_worker_agent_result_metadata_t *
find(armonik_task_t *task, const armonik_worker_agent_list_result_metadata_t *results,
     const char *name) {
    size_t len = strlen(name);
    for (size_t i = 0; i < results->len; i++) {
        const worker_string_t *n = &results->ptr[i].name;
        if (n->len == len && memcmp(n->ptr, name, len) == 0) return &results->ptr[i];
    }
    armonik_fail(task, "the agent returned no result named %s", name);
    return NULL;
}

/* The root: creates the parts' payloads and outputs, then submits parts and aggregation. */
static bool fan_out(armonik_task_t *task, size_t n, bool has_failing, size_t failing) {
    const worker_string_t *output = armonik_first_expected_result(task);
    if (output == NULL) return false;
    char name[64], text[64];
    bool ok = false;

    worker_list_tuple2_string_list_u8_t items = {
        .ptr = calloc(n + 1, sizeof(worker_tuple2_string_list_u8_t)), .len = n + 1};
    worker_list_string_t names = {.ptr = calloc(n + 1, sizeof(worker_string_t)), .len = n};
    armonik_worker_agent_task_definition_t *definitions =
        calloc(n + 1, sizeof(armonik_worker_agent_task_definition_t));
    worker_string_t *part_outputs = calloc(n + 1, sizeof(worker_string_t));
    if (items.ptr == NULL || names.ptr == NULL || definitions == NULL || part_outputs == NULL) {
        abort();
    }
    for (size_t i = 0; i <= n; i++) {
        if (i < n) {
            snprintf(name, sizeof name, "part-payload-%zu", i);
            snprintf(text, sizeof text, "part %zu%s", i, has_failing && failing == i ? " fail" : "");
        } else {
            snprintf(name, sizeof name, "sum-payload");
            snprintf(text, sizeof text, "sum");
        }
        set_string(&items.ptr[i].f0, name);
        size_t len = strlen(text);
        items.ptr[i].f1.ptr = malloc(len + 1);
        if (items.ptr[i].f1.ptr == NULL) abort();
        memcpy(items.ptr[i].f1.ptr, text, len);
        items.ptr[i].f1.len = len;
    }
    for (size_t i = 0; i < n; i++) {
        snprintf(name, sizeof name, "part-output-%zu", i);
        set_string(&names.ptr[i], name);
    }

    armonik_worker_agent_list_result_metadata_t payloads = {0}, outputs = {0};
    armonik_worker_agent_list_submitted_task_t submitted = {0};
    armonik_worker_agent_agent_error_t error;
    if (!armonik_worker_agent_create_results(&items, &payloads, &error)) {
        armonik_agent_failed(task, "create-results", &error);
        goto done;
    }
    if (!armonik_worker_agent_create_results_metadata(&names, &outputs, &error)) {
        armonik_agent_failed(task, "create-results-metadata", &error);
        goto done;
    }
    /* Task definitions borrow the ids of the results just created. */
    for (size_t i = 0; i < n; i++) {
        snprintf(name, sizeof name, "part-output-%zu", i);
        const armonik_worker_agent_result_metadata_t *out = find(task, &outputs, name);
        snprintf(name, sizeof name, "part-payload-%zu", i);
        const armonik_worker_agent_result_metadata_t *payload = find(task, &payloads, name);
        if (out == NULL || payload == NULL) goto done;
        part_outputs[i] = out->result_id;
        definitions[i].payload_id = payload->result_id;
        definitions[i].expected_output_ids.ptr = &part_outputs[i];
        definitions[i].expected_output_ids.len = 1;
    }
    const armonik_worker_agent_result_metadata_t *sum = find(task, &payloads, "sum-payload");
    if (sum == NULL) goto done;
    definitions[n].payload_id = sum->result_id;
    definitions[n].data_dependencies.ptr = part_outputs;
    definitions[n].data_dependencies.len = n;
    definitions[n].expected_output_ids.ptr = (worker_string_t *)output;
    definitions[n].expected_output_ids.len = 1;
    armonik_worker_agent_list_task_definition_t tasks = {.ptr = definitions, .len = n + 1};
    if (!armonik_worker_agent_submit_tasks(&tasks, NULL, &submitted, &error)) {
        armonik_agent_failed(task, "submit-tasks", &error);
        goto done;
    }
    ok = true;

done:
    armonik_worker_agent_list_submitted_task_free(&submitted);
    armonik_worker_agent_list_result_metadata_free(&payloads);
    armonik_worker_agent_list_result_metadata_free(&outputs);
    worker_list_tuple2_string_list_u8_free(&items);
    worker_list_string_free(&names);
    free(definitions);
    free(part_outputs);
    return ok;
}

static bool send_number(armonik_task_t *task, u128 value) {
    const worker_string_t *output = armonik_first_expected_result(task);
    if (output == NULL) return false;
    char text[40];
    size_t len = u128_text(value, text);
    return armonik_send_result(task, output, (const uint8_t *)text, len);
}

/* The sum of the data dependencies, each a decimal integer (whitespace around allowed). */
static bool sum_dependencies(armonik_task_t *task, u128 *total) {
    *total = 0;
    for (size_t i = 0; i < task->ctx->data_dependencies.len; i++) {
        armonik_bytes_t data;
        if (!armonik_read_dependency(task, i, &data)) return false;
        if (!armonik_utf8_valid(data.data, data.len)) {
            armonik_bytes_free(&data);
            return armonik_fail(task, "invalid utf-8 in data dependency %zu", i);
        }
        char *text = (char *)data.data;
        size_t len = strlen(text);
        while (len > 0 && is_space(text[len - 1])) text[--len] = '\0';
        while (is_space(*text)) text++;
        u128 value;
        bool ok = parse_uint(task, text, U128_MAX, &value);
        armonik_bytes_free(&data);
        if (!ok) return false;
        if (value > U128_MAX - *total) return armonik_fail(task, "the sum overflows");
        *total += value;
    }
    return true;
}

bool armonik_process(armonik_task_t *task) {
    armonik_bytes_t payload;
    if (!armonik_read_payload(task, &payload)) return false;
    bool ok = false;
    if (!armonik_utf8_valid(payload.data, payload.len) ||
        memchr(payload.data, '\0', payload.len) != NULL) {
        ok = armonik_fail(task, "invalid utf-8 sequence in the payload");
        armonik_bytes_free(&payload);
        return ok;
    }
    char *text = armonik_cstr(&(worker_string_t){.ptr = payload.data, .len = payload.len});
    char *words[5];
    size_t count = split_words((char *)payload.data, words, 4);
    u128 a, b;
    if (count == 2 && strcmp(words[0], "fanout") == 0) {
        ok = parse_uint(task, words[1], SIZE_MAX, &a) && fan_out(task, (size_t)a, false, 0);
    } else if (count == 4 && strcmp(words[0], "fanout") == 0 && strcmp(words[2], "fail") == 0) {
        ok = parse_uint(task, words[1], SIZE_MAX, &a) && parse_uint(task, words[3], SIZE_MAX, &b) &&
             fan_out(task, (size_t)a, true, (size_t)b);
    } else if (count == 2 && strcmp(words[0], "part") == 0) {
        ok = parse_uint(task, words[1], U64_MAX, &a) && send_number(task, a * a);
    } else if (count == 3 && strcmp(words[0], "part") == 0 && strcmp(words[2], "fail") == 0) {
        ok = armonik_fail(task, "part %s fails on purpose", words[1]);
    } else if (count == 1 && strcmp(words[0], "sum") == 0) {
        ok = sum_dependencies(task, &a) && send_number(task, a);
    } else {
        char *quoted = quote(text);
        ok = armonik_fail(task, "fanout: unknown payload %s", quoted);
        free(quoted);
    }
    free(text);
    armonik_bytes_free(&payload);
    return ok;
}
