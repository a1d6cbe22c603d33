/*
 * gen_vectors.c - writes the shared wire-contract test vectors.
 *
 * For every case below it writes NAME.json (the JSON message) and NAME.avro
 * (the exact single-object-encoded bytes libinferq produces for it), plus
 * manifest.json listing the cases and the schema fingerprints. Every client
 * language tests against these files, so they are generated, never edited:
 *
 *   ninja ifq-gen-vectors && ./bin/ifq-gen-vectors /path/to/schemas/vectors
 *
 * The JSON texts use only numbers that binary floating point represents
 * exactly (0.5, 0.25, ...), so the JSON embedded in the Avro strings is the
 * same whichever serializer wrote it.
 */
#include "avro_codec.h"

#include <jansson.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *name;
    ifq_avro_kind_t kind;
    const char *description;
    const char *json;
} vector_case_t;

static const vector_case_t cases[] = {
    {"request_minimal_chat", IFQ_AVRO_REQUEST,
     "Smallest chat request: the four OpenAI batch fields, no inferq fields.",
     "{\"custom_id\": \"req-1\", \"method\": \"POST\", \"url\": \"/v1/chat/completions\","
     " \"body\": {\"model\": \"chat-default\", \"messages\": [{\"role\": \"user\", \"content\": "
     "\"Hi\"}], \"max_tokens\": 64}}"},

    {"request_all_fields", IFQ_AVRO_REQUEST,
     "Every optional inferq field set: reply_to, priority, deadline_ms, metadata and a prompt "
     "template reference used instead of literal messages.",
     "{\"custom_id\": \"req-all-1\", \"method\": \"POST\", \"url\": \"/v1/chat/completions\","
     " \"body\": {\"model\": \"chat-default\", \"max_tokens\": 256, \"temperature\": 0.5},"
     " \"reply_to\": \"inferq.replies.support\", \"priority\": \"high\","
     " \"deadline_ms\": 1767225600000,"
     " \"metadata\": {\"ticket\": \"T-1001\", \"user\": \"u-42\"},"
     " \"prompt\": {\"id\": \"support-answer\", \"version\": 3, \"variables\": {\"question\": "
     "\"How do I reset my password?\", \"tone\": \"friendly\"}}}"},

    {"request_prompt_label", IFQ_AVRO_REQUEST,
     "A prompt template picked by label instead of version; low priority.",
     "{\"custom_id\": \"req-label-1\", \"method\": \"POST\", \"url\": \"/v1/chat/completions\","
     " \"body\": {\"model\": \"auto\"}, \"priority\": \"low\","
     " \"prompt\": {\"id\": \"summarize\", \"label\": \"production\", \"variables\": "
     "{\"text\": \"Kafka is a distributed log.\"}}}"},

    {"request_embeddings", IFQ_AVRO_REQUEST, "Embeddings request with two inputs.",
     "{\"custom_id\": \"emb-1\", \"method\": \"POST\", \"url\": \"/v1/embeddings\","
     " \"body\": {\"model\": \"embed-default\", \"input\": [\"The food was delicious\", "
     "\"Kafka keeps an ordered log\"]}}"},

    {"request_completions", IFQ_AVRO_REQUEST,
     "Legacy completions request; note body.prompt (a string for the model) is unrelated to "
     "the top-level prompt field.",
     "{\"custom_id\": \"cmpl-1\", \"method\": \"POST\", \"url\": \"/v1/completions\","
     " \"body\": {\"model\": \"chat-default\", \"prompt\": \"Once upon a time\", "
     "\"max_tokens\": 32, \"stop\": [\"\\n\\n\"]}}"},

    {"request_unicode", IFQ_AVRO_REQUEST,
     "Non-ASCII text in custom_id, metadata keys and values and message content (2-, 3- and "
     "4-byte UTF-8, a ZWJ sequence, right-to-left script), plus characters JSON must escape.",
     "{\"custom_id\": \"r\\u00e9sum\\u00e9-\\u4e16\\u754c-1\", \"method\": \"POST\","
     " \"url\": \"/v1/chat/completions\","
     " \"body\": {\"model\": \"chat-default\", \"messages\": [{\"role\": \"user\", \"content\": "
     "\"Gr\\u00fc\\u00dfe, \\u4e16\\u754c! \\ud83d\\ude80 \\ud83d\\udc69\\u200d\\ud83d\\udcbb "
     "\\u05e9\\u05dc\\u05d5\\u05dd \\u2014 tab\\there, line\\nbreak, \\\"quoted\\\", "
     "back\\\\slash\"}]},"
     " \"metadata\": {\"\\u00e9quipe\": \"caf\\u00e9 \\u2615\", \"emoji\": \"\\ud83c\\udf89\"}}"},

    {"result_success", IFQ_AVRO_RESULT,
     "Successful chat completion with the inferq extension; metadata echoed back.",
     "{\"id\": \"ifq_3f9a1c0e5b7d2468ace13579\", \"custom_id\": \"req-1\","
     " \"response\": {\"status_code\": 200, \"request_id\": \"req_7f3c2a9d\", \"body\": "
     "{\"id\": \"chatcmpl-123\", \"object\": \"chat.completion\", \"created\": 1767225600,"
     " \"model\": \"llama-8b-local\", \"choices\": [{\"index\": 0, \"message\": {\"role\": "
     "\"assistant\", \"content\": \"Hello! How can I help?\"}, \"finish_reason\": \"stop\"}],"
     " \"usage\": {\"prompt_tokens\": 9, \"completion_tokens\": 7, \"total_tokens\": 16}}},"
     " \"error\": null,"
     " \"inferq\": {\"status\": \"succeeded\", \"model_requested\": \"chat-default\","
     " \"deployment\": \"llama-8b-local\", \"attempts\": [{\"deployment\": \"llama-8b-local\","
     " \"status_code\": 200, \"latency_ms\": 412}], \"usage\": {\"prompt_tokens\": 9,"
     " \"completion_tokens\": 7, \"total_tokens\": 16}, \"cost_usd\": 0.0,"
     " \"metadata\": {\"ticket\": \"T-1001\"}, \"timings_ms\": {\"queue\": 3, \"broker\": 1,"
     " \"upstream\": 412, \"total\": 420}, \"trace_id\": \"4bf92f3577b34da6a3ce929d0e0e4736\"}}"},

    {"result_embeddings", IFQ_AVRO_RESULT,
     "Successful embeddings result from a paid deployment after one failover.",
     "{\"id\": \"ifq_8c41d2e6f0a3b5c7d9e1f246\", \"custom_id\": \"emb-1\","
     " \"response\": {\"status_code\": 200, \"request_id\": \"req_91ab\", \"body\": "
     "{\"object\": \"list\", \"data\": [{\"object\": \"embedding\", \"index\": 0, "
     "\"embedding\": [0.5, -0.25, 0.125]}, {\"object\": \"embedding\", \"index\": 1, "
     "\"embedding\": [0.0, 1.0, -0.5]}], \"model\": \"text-embedding-3-small\", \"usage\": "
     "{\"prompt_tokens\": 10, \"total_tokens\": 10}}},"
     " \"error\": null,"
     " \"inferq\": {\"status\": \"succeeded\", \"model_requested\": \"embed-default\","
     " \"deployment\": \"openai-embed-small\", \"attempts\": [{\"deployment\": "
     "\"embed-local\", \"status_code\": 503, \"latency_ms\": 20}, {\"deployment\": "
     "\"openai-embed-small\", \"status_code\": 200, \"latency_ms\": 180}], \"usage\": "
     "{\"prompt_tokens\": 10, \"total_tokens\": 10}, \"cost_usd\": 0.001953125,"
     " \"metadata\": {}, \"timings_ms\": {\"queue\": 5, \"broker\": 1, \"upstream\": 200, "
     "\"total\": 207}, \"trace_id\": \"0af7651916cd43dd8448eb211c80319c\"}}"},

    {"result_error", IFQ_AVRO_RESULT,
     "Rejected request: response is null, error carries a stable code.",
     "{\"id\": \"ifq_a7e3b9c1d5f20468b1c3d5e7\", \"custom_id\": \"req-2\","
     " \"response\": null,"
     " \"error\": {\"code\": \"model_not_found\", \"message\": \"model 'gpt-9' is not in the "
     "catalog\"},"
     " \"inferq\": {\"status\": \"rejected\", \"model_requested\": \"gpt-9\", \"deployment\": null,"
     " \"attempts\": [], \"usage\": {\"prompt_tokens\": 0, \"completion_tokens\": 0, "
     "\"total_tokens\": 0}, \"cost_usd\": 0.0, \"metadata\": {}, \"timings_ms\": {\"broker\": 1,"
     " \"total\": 1}, \"trace_id\": \"5b8efff798038103d269b633813fc60c\"}}"},

    {"result_expired", IFQ_AVRO_RESULT,
     "Request whose deadline_ms passed before a deployment answered.",
     "{\"id\": \"ifq_0d6b8f2a4c1e3579bdf02468\", \"custom_id\": \"req-all-1\","
     " \"response\": null,"
     " \"error\": {\"code\": \"batch_expired\", \"message\": \"deadline 1767225600000 passed "
     "before the request completed\"},"
     " \"inferq\": {\"status\": \"expired\", \"model_requested\": \"chat-default\","
     " \"deployment\": \"llama-8b-local\", \"attempts\": [{\"deployment\": \"llama-8b-local\","
     " \"status_code\": 429, \"latency_ms\": 15}], \"usage\": {\"prompt_tokens\": 0,"
     " \"completion_tokens\": 0, \"total_tokens\": 0}, \"cost_usd\": 0.0, \"metadata\": "
     "{\"ticket\": \"T-1001\", \"user\": \"u-42\"}, \"timings_ms\": {\"queue\": 60000, "
     "\"total\": 60016}, \"trace_id\": \"6e0c63257de34c926f9efcd03899a5a8\"}}"},
};

static int write_file(const char *dir, const char *name, const char *ext, const void *data,
                      size_t len)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s%s", dir, name, ext);
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        return -1;
    }
    int ok = fwrite(data, 1, len, f) == len;
    ok = (fclose(f) == 0) && ok;
    if (!ok)
        fprintf(stderr, "%s: write failed\n", path);
    return ok ? 0 : -1;
}

/* Writes text plus a final newline, like any text file. */
static int write_text(const char *dir, const char *name, const char *ext, const char *text)
{
    size_t n = strlen(text);
    char *buf = malloc(n + 1);
    if (!buf)
        return -1;
    memcpy(buf, text, n);
    buf[n] = '\n';
    int rc = write_file(dir, name, ext, buf, n + 1);
    free(buf);
    return rc;
}

static void hex(char *out, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", p[i]);
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "schemas/vectors";
    char errstr[512];
    ifq_avro_t *codec = ifq_avro_new(errstr, sizeof(errstr));
    if (!codec) {
        fprintf(stderr, "ifq_avro_new: %s\n", errstr);
        return 1;
    }

    json_t *manifest_cases = json_array();
    char fp_le[2][17] = {"", ""};
    char fp_value[2][24] = {"", ""};
    int rc = 0;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const vector_case_t *c = &cases[i];
        json_error_t jerr;
        json_t *msg = json_loads(c->json, 0, &jerr);
        if (!msg) {
            fprintf(stderr, "%s: bad JSON in table: %s\n", c->name, jerr.text);
            rc = 1;
            continue;
        }
        void *avro = NULL;
        size_t avro_len = 0;
        if (ifq_avro_encode(codec, c->kind, msg, &avro, &avro_len, errstr, sizeof(errstr))) {
            fprintf(stderr, "%s: encode: %s\n", c->name, errstr);
            json_decref(msg);
            rc = 1;
            continue;
        }
        hex(fp_le[c->kind], (const uint8_t *)avro + 2, 8);
        uint64_t fp = 0;
        for (int b = 0; b < 8; b++)
            fp |= (uint64_t)((const uint8_t *)avro)[2 + b] << (8 * b);
        snprintf(fp_value[c->kind], sizeof(fp_value[c->kind]), "0x%016" PRIx64, fp);
        char *pretty = json_dumps(msg, JSON_INDENT(2));
        if (!pretty || write_text(dir, c->name, ".json", pretty) ||
            write_file(dir, c->name, ".avro", avro, avro_len))
            rc = 1;
        char name_json[256], name_avro[256];
        snprintf(name_json, sizeof(name_json), "%s.json", c->name);
        snprintf(name_avro, sizeof(name_avro), "%s.avro", c->name);
        json_array_append_new(manifest_cases,
                              json_pack("{s:s, s:s, s:s, s:s, s:s, s:I}", "name", c->name, "kind",
                                        c->kind == IFQ_AVRO_REQUEST ? "request" : "result",
                                        "description", c->description, "json", name_json, "avro",
                                        name_avro, "avro_size", (json_int_t)avro_len));
        free(pretty);
        free(avro);
        json_decref(msg);
    }

    static const char how_to_use[] =
        "For each case: decoding the .avro bytes must give a value equal to the .json message "
        "(compare parsed JSON, not text; the JSON embedded in body/prompt/inferq is compared "
        "parsed too), and encoding the .json message must give the .avro bytes. Requests decode "
        "with absent optional fields left out; results always carry response and error (null "
        "when unset). See docs/wire-contract.md.";
    json_t *schemas = json_object();
    json_object_set_new(schemas, "request",
                        json_pack("{s:s, s:s, s:s, s:s}", "file", "../request.avsc", "name",
                                  "io.inferq.v1.Request", "fingerprint", fp_value[IFQ_AVRO_REQUEST],
                                  "fingerprint_le_hex", fp_le[IFQ_AVRO_REQUEST]));
    json_object_set_new(schemas, "result",
                        json_pack("{s:s, s:s, s:s, s:s}", "file", "../result.avsc", "name",
                                  "io.inferq.v1.Result", "fingerprint", fp_value[IFQ_AVRO_RESULT],
                                  "fingerprint_le_hex", fp_le[IFQ_AVRO_RESULT]));
    json_t *manifest =
        json_pack("{s:s, s:s, s:o, s:o}", "format", "inferq wire-contract test vectors v1",
                  "how_to_use", how_to_use, "schemas", schemas, "cases", manifest_cases);
    char *text = manifest ? json_dumps(manifest, JSON_INDENT(2)) : NULL;
    if (!text || write_text(dir, "manifest", ".json", text)) {
        fprintf(stderr, "manifest: cannot write\n");
        rc = 1;
    }
    free(text);
    json_decref(manifest);
    ifq_avro_destroy(codec);
    if (rc == 0)
        printf("wrote %zu cases to %s\n", sizeof(cases) / sizeof(cases[0]), dir);
    return rc;
}
